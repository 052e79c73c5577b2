import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardObservability
import SwitchyardStore
import SwitchyardTools
import UnixSignals

/// A whole Switchyard server: the connection pool, the engine and the HTTP API, as
/// one service group. `yard serve`, `yard demo` and the tests all build it this way.
public struct SwitchyardServer: Sendable {
    public let database: Database
    public let engine: Engine
    public private(set) var api: APIDependencies
    public let configuration: ServerConfiguration
    /// This server's metrics registry and tracer (none of it process-global).
    public let observability: Observability
    let logger: Logger

    /// Builds the server. The database pool is not running until `run` is.
    public init(configuration: ServerConfiguration, database: DatabaseConfiguration, logger: Logger = Logger(label: "switchyard")) throws {
        let experts: ExpertPool
        do {
            let workflows = ProjectFiles.directory("Workflows", environmentVariable: "SWITCHYARD_WORKFLOWS")
            let entries = configuration.experts.isEmpty ? ServerConfiguration.defaultExperts(workflowsDirectory: workflows) : configuration.experts
            experts = try ExpertPool.make(from: entries, baseDirectory: configuration.baseDirectory)
        }
        self.configuration = configuration
        self.logger = logger
        self.database = Database(configuration: configuration.databasePool.applied(to: database), logger: logger)
        // Without a key the server runs, but refuses to store secrets (and tools that
        // read one fail with a message naming the variable).
        var secretBox = configuration.secretKey.map { SecretBox(current: $0) }
        if secretBox == nil, ProcessInfo.processInfo.environment[SecretKey.environmentVariable] != nil {
            do {
                secretBox = SecretBox(current: try SecretKey.fromEnvironment())
            } catch {
                throw ConfigurationError(error.message)
            }
        }
        let tools = ToolEnvironment(
            runner: ToolRunner(logger: Logger(label: "switchyard.tools")), secretBox: secretBox, egress: configuration.egress)
        let observability = Observability(metrics: SwitchyardMetrics(), tracer: configuration.tracing?.tracer)
        self.observability = observability
        let engine = Engine(
            database: self.database, experts: experts, tools: tools, configuration: configuration.engine, logger: logger, observability: observability
        )
        self.engine = engine
        self.api = APIDependencies(
            database: self.database, events: engine.events, secretBox: secretBox, deltas: engine.deltas,
            runRate: (configuration.runsPerSecond, configuration.runBurst), onRunCreated: { engine.poke() },
            shouldWakeOthers: { engine.shouldWakeOthers() })
        self.api.workflows = engine.workflows
        self.api.eventHeartbeat = configuration.eventHeartbeat
        self.api.observability = observability
        self.api.metricsTopTenants = configuration.metricsTopTenants
        self.api.runningSteps = { engine.runningSteps }
        self.api.yamlParsing = configuration.yamlParsing
        self.api.retention = configuration.retention
        self.api.engineFacts = EngineFacts(
            experts: experts, gateThreshold: configuration.engine.gateThreshold,
            defaultMaxTokens: configuration.engine.defaultMaxTokens)
    }

    /// Runs until SIGTERM or SIGINT, or until `stop` returns, then shuts down gracefully:
    /// the HTTP server stops accepting, the engine lets running steps finish. Migrations
    /// run first; `onListening` receives the bound port once the HTTP server is up.
    public func run(
        onListening: @escaping @Sendable (Int) async -> Void = { _ in },
        until stop: @escaping @Sendable () async -> Void = { await Self.forever() }
    ) async throws {
        let adminKey = configuration.adminKey ?? ProcessInfo.processInfo.environment["YARD_ADMIN_KEY"]
        let router = buildRouter(api, adminKey: adminKey)
        let logger = self.logger
        var app = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "switchyard"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("listening", metadata: ["url": "http://\(channel.localAddress?.ipAddress ?? "127.0.0.1"):\(port)"])
                await onListening(port)
            },
            logger: logger)
        app.addServices(engine, RetentionService(database: self.database, configuration: configuration.retention, logger: logger))
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First in, last out: the exporter flushes the spans of the shutdown too.
        if let tracing = configuration.tracing { services.append(.init(service: tracing.service)) }
        if let metricsPort = configuration.metricsPort {
            let metricsRouter = Router()
            MetricsRoutes(api: api).add(open: metricsRouter)
            let metricsApp = Application(
                router: metricsRouter,
                configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: metricsPort), serverName: "switchyard-metrics"),
                onServerRunning: { channel in
                    logger.info(
                        "metrics listening",
                        metadata: ["url": "http://\(channel.localAddress?.ipAddress ?? "127.0.0.1"):\(channel.localAddress?.port ?? 0)/metrics"])
                },
                logger: logger)
            services.append(.init(service: metricsApp))
        }
        services.append(.init(service: app))
        let database = self.database
        // The pool runs outside the service group so that it outlives the engine's
        // graceful shutdown, and migrations finish before anything claims work.
        try await database.withRunningPool {
            try await database.checkReachable()
            let applied = try await ProjectFiles.prepare(database)
            if !applied.isEmpty { logger.info("applied migrations", metadata: ["versions": "\(applied)"]) }
            let services = ServiceGroup(
                configuration: ServiceGroupConfiguration(
                    services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    await stop()
                    if !Task.isCancelled { await services.triggerGracefulShutdown() }
                }
                try await services.run()
                group.cancelAll()
            }
        }
    }
}

extension SwitchyardServer {
    /// Suspends until the task is cancelled.
    public static func forever() async {
        let (stream, continuation) = AsyncStream<Never>.makeStream()
        await withTaskCancellationHandler {
            for await _ in stream {}
        } onCancel: {
            continuation.finish()
        }
    }
}
