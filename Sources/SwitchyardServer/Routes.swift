import Foundation
import Hummingbird
import Logging
import NIOCore
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools

/// What the routes need: the repositories, the YAML loader, and the engine to wake.
public struct APIDependencies: Sendable {
    public var database: Database
    public var tenants: TenantRepository
    public var resources: ResourceRepository
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

    public init(experts: ExpertPool = ExpertPool([]), gateThreshold: Double = EngineConfiguration().gateThreshold, defaultMaxTokens: Int = EngineConfiguration().defaultMaxTokens) {
        self.experts = experts
        self.gateThreshold = gateThreshold
        self.defaultMaxTokens = defaultMaxTokens
    }
}

// MARK: - Admin

struct AdminRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<AdminRequestContext>) {
        group.post("tenants") { request, _ in
            let body = try await JSONBody.object(of: request)
            guard let name = body["name"]?.stringValue else {
                throw APIError(.unprocessableContent, code: "invalid_request", "`name` (a string) is required")
            }
            guard Self.isValidTenantName(name) else {
                throw APIError(.unprocessableContent, code: "invalid_request", "tenant names are 1-63 characters of a-z, 0-9, - and _, starting with a letter or digit")
            }
            let (tenant, key) = try await api.tenants.createTenant(name: name)
            return JSONBody.response(["tenant": ["id": Render.id(tenant.id), "name": .string(tenant.name)], "api_key": .string(key)], status: .created)
        }
        group.get("tenants") { _, _ in
            let tenants = try await api.tenants.tenants()
            return JSONBody.response(["tenants": .array(tenants.map { ["id": Render.id($0.id), "name": .string($0.name)] })])
        }
        group.post("tenants/:tenant/keys") { _, context in
            guard let id = UUID(uuidString: context.parameters.get("tenant") ?? ""), let key = try await api.tenants.createKey(tenant: id) else {
                throw APIError.notFound("tenant")
            }
            return JSONBody.response(["api_key": .string(key)], status: .created)
        }
    }

    static func isValidTenantName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 63 else { return false }
        let allowed = CharacterSet.lowercaseLetters.union(.decimalDigits).union(CharacterSet(charactersIn: "-_"))
        return name.unicodeScalars.allSatisfy { $0.isASCII && allowed.contains($0) } && first != "-" && first != "_"
    }
}

// MARK: - Resources

struct ResourceRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("apply") { request, context in
            let text = try await JSONBody.text(of: request)
            let files = try Self.files(in: text, request: request)
            let catalog = try await api.resources.catalog(tenant: context.tenant.id)
            let loader = api.loader
            let loaded = try await Self.parse(api.yamlParsing) {
                Result { () throws(ResourceValidationError) in try loader.loadAndValidate(files: files, catalog: catalog) }
            }
            let documents: [ResourceDocument]
            do throws(ResourceValidationError) {
                documents = try loaded.get()
            } catch {
                throw APIError(.unprocessableContent, code: error.code.rawValue, error.message, details: .array(error.issues.map(Self.issue)))
            }
            let applied = try await api.resources.apply(documents, tenant: context.tenant.id)
            return JSONBody.response([
                "applied": .array(applied.map {
                    ["kind": .string($0.kind.rawValue), "name": .string($0.name), "version": .int($0.version), "changed": .bool($0.changed)]
                })
            ])
        }
        group.get("workflows") { _, context in
            let versions = try await api.resources.latest(kind: .workflow, tenant: context.tenant.id)
            return JSONBody.response(["workflows": .array(versions.map(Render.workflowSummary))])
        }
        group.get("workflows/:name") { request, context in
            let name = context.parameters.get("name") ?? ""
            var version: Int?
            if let text = request.uri.queryParameters.get("version") {
                guard let parsed = Int(text), (1...Int(Int32.max)).contains(parsed) else {
                    throw APIError.badRequest("version must be an integer from 1 to \(Int32.max)")
                }
                version = parsed
            }
            guard let stored = try await api.resources.find(kind: .workflow, name: name, version: version, tenant: context.tenant.id) else {
                throw APIError.notFound("workflow \(name)")
            }
            var object = Render.workflowSummary(stored).objectValue ?? [:]
            object["source"] = .string(stored.source)
            if let spec = try? ResourceCoding.encode(stored.resource), let json = try? JSONDecoder().decode(JSONValue.self, from: Data(spec.utf8)) {
                object["spec"] = json
            }
            return JSONBody.response(["workflow": .object(object)])
        }
        group.get("agents") { _, context in
            let versions = try await api.resources.latest(kind: .agent, tenant: context.tenant.id)
            return JSONBody.response(["agents": .array(versions.map { ["name": .string($0.name), "version": .int($0.version)] })])
        }
        group.get("tools") { _, context in
            let versions = try await api.resources.latest(kind: .tool, tenant: context.tenant.id)
            let stored: [JSONValue] = versions.map { ["name": .string($0.name), "version": .int($0.version), "builtin": false] }
            let builtins: [JSONValue] = ToolDefinition.builtins.map {
                ["name": .string($0.name), "description": .string($0.description), "parameters": $0.parameters, "builtin": true]
            }
            return JSONBody.response(["tools": .array(stored + builtins)])
        }
    }

    /// Runs a parse of request YAML through `parsing`, answering its refusals: 422
    /// `yaml_timeout` past the deadline, 503 `parse_busy` (with `Retry-After`) when every
    /// parse slot holds a runaway parse.
    static func parse<T: Sendable>(_ parsing: YAMLParseGuard, _ work: @escaping @Sendable () -> T) async throws -> T {
        do throws(YAMLParseGuard.Refusal) {
            return try await parsing.run(work)
        } catch {
            switch error {
            case .timedOut:
                throw APIError(.unprocessableContent, code: "yaml_timeout", error.description)
            case .busy:
                var refusal = APIError(.serviceUnavailable, code: "parse_busy", error.description)
                let seconds = max(1, Int(parsing.deadline.components.seconds))
                refusal.headers = [.retryAfter: String(seconds)]
                throw refusal
            }
        }
    }

    /// The files of an apply request: a YAML body is one file (named by the
    /// `X-Yard-File` header); a JSON body `{"files": [{"name", "content"}]}` is a batch
    /// applied all or nothing, so that files may refer to each other.
    static func files(in text: String, request: Request) throws -> [(name: String, text: String)] {
        let contentType = request.headers[.contentType] ?? ""
        guard contentType.hasPrefix("application/json") else {
            return [(request.headers[.init("X-Yard-File")!] ?? "request", text)]
        }
        guard let items = try JSONBody.decode(text)["files"]?.arrayValue, !items.isEmpty else {
            throw APIError(.badRequest, code: "invalid_json", "a JSON apply body is {\"files\": [{\"name\": \"…\", \"content\": \"<YAML>\"}]}")
        }
        return try items.enumerated().map { index, item in
            guard let content = item["content"]?.stringValue else {
                throw APIError(.badRequest, code: "invalid_json", "files[\(index)].content must be the file's YAML text")
            }
            return (item["name"]?.stringValue ?? "files[\(index)]", content)
        }
    }

    static func issue(_ issue: ValidationIssue) -> JSONValue {
        ["file": .string(issue.file), "line": .int(issue.line), "column": .int(issue.column), "path": .string(issue.path), "message": .string(issue.message)]
    }
}

// MARK: - Runs

struct RunRoutes {
    let api: APIDependencies
    /// The longest `?wait=` honoured.
    static let maxWait = 300.0

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("workflows/:name/runs") { request, context in
            let name = context.parameters.get("name") ?? ""
            let tenant = context.tenant.id
            let body = try await JSONBody.object(of: request)
            let wait = try Self.waitSeconds(request)
            let idempotencyKey = request.headers[.init("Idempotency-Key")!]
            if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.count > 255 {
                throw APIError.badRequest("Idempotency-Key must be 1-255 characters")
            }
            guard let stored = try await api.resources.find(kind: .workflow, name: name, tenant: tenant), case .workflow(let spec) = stored.resource else {
                throw APIError.notFound("workflow \(name)")
            }
            if let given = body["input"], given != .null, given.objectValue == nil {
                throw APIError(.unprocessableContent, code: "invalid_input", "`input` must be a JSON object")
            }
            let input: JSONValue
            do {
                input = try spec.resolveInputs(.object(body["input"]?.objectValue ?? [:]))
            } catch let error as InputValidationError {
                throw APIError(.unprocessableContent, code: "invalid_input", error.description, details: Self.details(error))
            }
            // Only a valid request takes a token from the tenant's bucket.
            if case .limited(let wait) = try await api.runLimiter.acquire(tenant: tenant) {
                let seconds = max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
                var error = APIError(.tooManyRequests, code: "rate_limited", "this tenant is starting runs faster than its limit; retry after \(seconds) s")
                error.headers = [.retryAfter: String(seconds)]
                throw error
            }
            let (run, created) = try await api.runs.createRun(
                tenant: tenant, workflow: name, version: stored.version, spec: spec, input: input, idempotencyKey: idempotencyKey,
                notify: api.shouldWakeOthers())
            if created { api.onRunCreated() }
            if let wait, !run.status.isFinal {
                // The run as it is when the wait ends: finished (200), or as far as it got.
                // The run exists from here: a database lost during the wait must not turn
                // the answer into a 503 that invites a retry (without a key, a second run).
                let now: RunRecord
                do {
                    now = try await waitForFinish(run.id, tenant: tenant, seconds: wait) ?? run
                } catch where Database.isUnavailable(error) {
                    now = run
                }
                if now.status.isFinal {
                    return JSONBody.response(["run": Render.run(now)], status: .ok)
                }
                return JSONBody.response(["run": Render.run(now)], status: created ? .accepted : .ok)
            }
            return JSONBody.response(["run": Render.run(run)], status: created ? .accepted : .ok)
        }
        group.get("runs") { request, context in
            let query = request.uri.queryParameters
            var status: RunStatus?
            if let text = query.get("status") {
                guard let parsed = RunStatus(rawValue: text) else {
                    throw APIError.badRequest("status must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                status = parsed
            }
            var limit = 50
            if let text = query.get("limit") {
                guard let parsed = Int(text), (1...500).contains(parsed) else { throw APIError.badRequest("limit must be an integer from 1 to 500") }
                limit = parsed
            }
            var cursor: RunCursor?
            if let text = query.get("cursor"), !text.isEmpty {
                guard let parsed = RunCursor(token: text) else { throw APIError.badRequest("cursor is not one this server gave out") }
                cursor = parsed
            }
            let page = try await api.runs.list(tenant: context.tenant.id, status: status, workflow: query.get("workflow"), limit: limit, after: cursor)
            return JSONBody.response([
                "runs": .array(page.runs.map { Render.run($0, withSteps: false) }),
                "next_cursor": page.next.map { .string($0.token) } ?? .null,
            ])
        }
        group.get("runs/:id") { _, context in
            let id = try Self.runID(context)
            guard let run = try await api.runs.run(id, tenant: context.tenant.id) else { throw APIError.notFound("run") }
            return JSONBody.response(["run": Render.run(run)])
        }
        group.post("runs/:id/cancel") { _, context in
            let id = try Self.runID(context)
            guard let status = try await api.runs.cancel(id, tenant: context.tenant.id) else { throw APIError.notFound("run") }
            return JSONBody.response(["run": ["id": Render.id(id), "status": .string(status.rawValue)]], status: .accepted)
        }
        group.post("runs/:id/signals/:signal") { request, context in
            let id = try Self.runID(context)
            let name = context.parameters.get("signal") ?? ""
            guard !name.isEmpty, name.count <= 128 else { throw APIError.badRequest("a signal name is 1-128 characters") }
            guard !name.hasPrefix("__") else { throw APIError.badRequest("signal names starting with __ are reserved for the engine") }
            let body = try await JSONBody.object(of: request)
            guard let delivery = try await api.runs.signal(id, tenant: context.tenant.id, name: name, data: body["data"] ?? .null) else {
                throw APIError.notFound("run")
            }
            switch delivery {
            case .delivered(let resumed):
                if !resumed.isEmpty { api.onRunCreated() }
                return JSONBody.response(["signal": .string(name), "resumed_steps": .array(resumed.map { .string($0) })], status: .accepted)
            case .duplicate:
                throw APIError(.conflict, code: "signal_exists", "the run already received a \(name) signal")
            case .runFinished(let status):
                throw APIError(.conflict, code: "run_finished", "the run is already \(status.rawValue)")
            }
        }
        group.get("runs/:id/events") { request, context in
            let id = try Self.runID(context)
            let tenant = context.tenant.id
            guard try await api.runs.status(of: id, tenant: tenant) != nil else { throw APIError.notFound("run") }
            var lastID: Int64 = 0
            let positions: [(String, String?)] = [
                ("Last-Event-ID", request.headers[.init("Last-Event-ID")!]),
                ("after", request.uri.queryParameters.get("after").map { String($0) }),
            ]
            for (name, text) in positions {
                guard let text else { continue }
                guard let seq = Int64(text.trimmingCharacters(in: .whitespaces)), seq >= 0 else {
                    throw APIError.badRequest("\(name) must be an event sequence number (a non-negative integer)")
                }
                lastID = max(lastID, seq)
            }
            let subscription: RunEventFeed.Subscription
            do {
                subscription = try await api.events.subscribe(run: id, tenant: tenant)
            } catch RunEventFeed.SubscribeError.tooManyStreams(let limit) {
                var error = APIError(
                    .tooManyRequests, code: "too_many_streams",
                    "this tenant already has \(limit) event streams open on this server; close one, or retry after \(Self.streamRetrySeconds) s")
                error.headers = [.retryAfter: String(Self.streamRetrySeconds)]
                throw error
            }
            let followed = Self.wantsDeltas(request) ? api.deltas : nil
            let deltas = followed?.subscribe(run: id)
            if let followed { await followed.announce(run: id) }
            let stream = EventStream(
                run: id, tenant: tenant, after: lastID, runs: api.runs, subscription: subscription, deltas: deltas, heartbeat: api.eventHeartbeat)
            let body = ResponseBody { writer in
                try await stream.write(to: &writer)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
    }

    /// What `Retry-After` says when a tenant has too many streams open.
    static let streamRetrySeconds = 5

    static func wantsDeltas(_ request: Request) -> Bool {
        guard let value = request.uri.queryParameters.get("deltas") else { return false }
        return ["1", "true", "yes"].contains(value.lowercased())
    }

    static func runID(_ context: TenantRequestContext) throws -> UUID {
        // A malformed id answers exactly as an unknown one does.
        guard let id = UUID(uuidString: context.parameters.get("id") ?? "") else { throw APIError.notFound("run") }
        return id
    }

    static func waitSeconds(_ request: Request) throws -> Double? {
        guard let text = request.uri.queryParameters.get("wait") else { return nil }
        guard let seconds = Double(text), seconds >= 0, seconds <= maxWait else {
            throw APIError.badRequest("wait must be a number of seconds from 0 to \(Int(maxWait))")
        }
        return seconds
    }

    static func details(_ error: InputValidationError) -> JSONValue {
        .array(error.details.map { ["path": .string($0.path), "message": .string($0.message)] })
    }

    /// Polls the run until it is final or the time is up; the poll interval grows from
    /// 2 ms so short runs answer fast without hammering the database for long ones.
    func waitForFinish(_ id: UUID, tenant: UUID, seconds: Double) async throws -> RunRecord? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var interval = Duration.milliseconds(2)
        while ContinuousClock.now < deadline {
            if let status = try await api.runs.status(of: id, tenant: tenant), status.isFinal {
                return try await api.runs.run(id, tenant: tenant)
            }
            try await Task.sleep(for: min(interval, deadline - ContinuousClock.now))
            interval = min(interval * 2, .milliseconds(100))
        }
        return try await api.runs.run(id, tenant: tenant)
    }
}

// MARK: - Health

struct HealthRoutes {
    let api: APIDependencies

    func add(to router: Router<AppRequestContext>) {
        router.get("healthz") { _, _ in
            JSONBody.response(["status": "ok"])
        }
        router.get("readyz") { _, _ in
            do throws(DatabaseError) {
                try await api.database.checkReachable(timeout: .seconds(2))
                return JSONBody.response(["status": "ready"])
            } catch {
                return JSONBody.response(["status": "unavailable", "error": .string(error.message)], status: .serviceUnavailable)
            }
        }
    }
}

/// Builds the router of the whole API.
public func buildRouter(_ api: APIDependencies, adminKey: String?) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    let errors = ErrorFormatMiddleware<AppRequestContext>()
    router.add(middleware: errors)
    router.add(middleware: RequestTargetMiddleware())
    HealthRoutes(api: api).add(to: router)
    router.add(middleware: AuthenticationMiddleware(tenants: api.tenants, adminKey: adminKey))
    let v1 = router.group("v1")
    let admin = v1.group("admin", context: AdminRequestContext.self)
    AdminRoutes(api: api).add(to: admin)
    TenantSettingsRoutes(api: api).add(to: admin)
    TenantSettingsRoutes(api: api).addLimits(to: admin)
    let metering = MeteringRoutes(api: api)
    metering.add(admin: admin)
    metering.add(any: v1)
    let tenantRoutes = v1.group(context: TenantRequestContext.self)
    metering.add(tenant: tenantRoutes)
    ResourceRoutes(api: api).add(to: tenantRoutes)
    RunRoutes(api: api).add(to: tenantRoutes)
    PlanRoutes(api: api).add(to: tenantRoutes)
    FeedbackRoutes(api: api).add(to: tenantRoutes)
    SecretRoutes(api: api).add(to: tenantRoutes)
    errors.routes.record(router.routes.map { (path: $0.path, method: $0.method.rawValue) })
    return router
}
