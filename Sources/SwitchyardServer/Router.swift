import Foundation
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardObservability
import SwitchyardStore
import SwitchyardTools

/// What the routes need: the repositories, the YAML loader, and the engine to wake.
public struct APIDependencies: Sendable {
    public var database: Database
    public var tenants: TenantRepository
    public var resources: ResourceRepository
    /// Decoded workflow versions: the engine's cache when there is an engine.
    public var workflows: WorkflowCache
    public var runs: RunRepository
    public var secrets: SecretRepository
    public var gateHistory: GateRepository
    public var metering: MeteringRepository
    /// The token bucket on run creation.
    public var runLimiter: RunRateLimiter
    public var loader: ResourceLoader
    /// Where YAML from requests is parsed: off the request threads, with a deadline
    /// (see ``YAMLParseGuard``). One server-wide guard unless a test gives its own.
    public var yamlParsing: YAMLParseGuard = .shared
    /// Seals tenant secrets; nil when the server has no secret key (secrets are refused).
    public var secretBox: SecretBox?
    /// Live model deltas, for `GET …/events?deltas=1`; nil without a local engine.
    public var deltas: DeltaHub?
    /// Wakes live event streams when their runs change (the engine's).
    public var events: RunEventFeed
    /// How often an event stream writes a keep-alive comment (and so notices a client
    /// that went away) when its run is quiet.
    public var eventHeartbeat: Duration = .seconds(5)
    /// What this server's engine does, for estimates (`POST …/plan`): the experts, the
    /// gate's default threshold and the default completion cap.
    public var engineFacts = EngineFacts()
    /// Metrics and tracing of this server (`GET /metrics`, the `run` span of a trigger).
    public var observability = Observability()
    /// How many tenants `/metrics` names in the queue gauges (the rest are `other`).
    public var metricsTopTenants = 10
    /// How many steps this server's engine is running now, for `/metrics`.
    public var runningSteps: @Sendable () -> Int = { 0 }
    /// The server's retention defaults, for the tenants' effective retention and
    /// `POST /v1/admin/prune`.
    public var retention = RetentionConfiguration()
    /// Called after a run is created, so the local dispatcher starts at once.
    public var onRunCreated: @Sendable () -> Void
    /// Whether a new run should also wake other processes' engines (the local one is
    /// busy); see ``RunRepository/createRun(tenant:workflow:version:spec:input:idempotencyKey:parent:notify:)``.
    public var shouldWakeOthers: @Sendable () -> Bool

    public init(
        database: Database, events: RunEventFeed, loader: ResourceLoader = ResourceLoader(), secretBox: SecretBox? = nil, deltas: DeltaHub? = nil,
        runRate: (perSecond: Double?, burst: Int?) = (nil, nil),
        onRunCreated: @escaping @Sendable () -> Void = {}, shouldWakeOthers: @escaping @Sendable () -> Bool = { true }
    ) {
        self.database = database
        self.tenants = TenantRepository(database: database)
        self.resources = ResourceRepository(database: database)
        self.workflows = WorkflowCache(resources: resources)
        self.runs = RunRepository(database: database)
        self.secrets = SecretRepository(database: database)
        self.gateHistory = GateRepository(database: database)
        self.metering = MeteringRepository(database: database)
        self.runLimiter = RunRateLimiter(database: database, defaultRate: runRate.perSecond, defaultBurst: runRate.burst)
        self.loader = loader
        self.secretBox = secretBox
        self.deltas = deltas
        self.events = events
        self.onRunCreated = onRunCreated
        self.shouldWakeOthers = shouldWakeOthers
    }
}

/// The engine settings a cost estimate must use to bound what the engine will do.
public struct EngineFacts: Sendable {
    /// The server's experts: the models they run, and how many billed answers one call
    /// of theirs may take.
    public var experts = ExpertPool([])
    public var gateThreshold: Double = EngineConfiguration().gateThreshold
    public var defaultMaxTokens: Int = EngineConfiguration().defaultMaxTokens

    public init(
        experts: ExpertPool = ExpertPool([]), gateThreshold: Double = EngineConfiguration().gateThreshold,
        defaultMaxTokens: Int = EngineConfiguration().defaultMaxTokens
    ) {
        self.experts = experts
        self.gateThreshold = gateThreshold
        self.defaultMaxTokens = defaultMaxTokens
    }
}

/// Builds the router of the whole API.
public func buildRouter(_ api: APIDependencies, adminKey: String?) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestLogMiddleware(metrics: api.observability.metrics))
    let errors = ErrorFormatMiddleware<AppRequestContext>()
    router.add(middleware: errors)
    router.add(middleware: RequestTargetMiddleware())
    HealthRoutes(api: api).add(to: router)
    router.add(middleware: AuthenticationMiddleware(tenants: api.tenants, adminKey: adminKey))
    MetricsRoutes(api: api).add(to: router)
    let v1 = router.group("v1")
    let admin = v1.group("admin", context: AdminRequestContext.self)
    TenantRoutes(api: api).add(to: admin)
    RetentionRoutes(api: api).add(to: admin)
    let metering = MeteringRoutes(api: api)
    metering.add(admin: admin)
    metering.add(any: v1)
    let tenantRoutes = v1.group(context: TenantRequestContext.self)
    metering.add(tenant: tenantRoutes)
    ResourceRoutes(api: api).add(to: tenantRoutes)
    RunRoutes(api: api).add(to: tenantRoutes)
    PlanRoutes(api: api).add(to: tenantRoutes)
    SecretRoutes(api: api).add(to: tenantRoutes)
    errors.routes.record(router.routes.map { (path: $0.path, method: $0.method.rawValue) })
    return router
}
