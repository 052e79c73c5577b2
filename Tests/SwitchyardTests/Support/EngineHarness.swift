import Foundation
import Logging
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools
import Testing

/// A fresh database with a tenant, and helpers to apply YAML and start runs.
struct TestStore: Sendable {
    let database: Database
    let tenant: Tenant
    let apiKey: String
    var tenants: TenantRepository { TenantRepository(database: database) }
    var resources: ResourceRepository { ResourceRepository(database: database) }
    var runs: RunRepository { RunRepository(database: database) }

    /// Validates and stores YAML documents for the tenant, as `POST /v1/apply` does.
    @discardableResult
    func apply(_ yaml: String, file: String = "test.yaml") async throws -> [AppliedResource] {
        let catalog = try await resources.catalog(tenant: tenant.id)
        let documents = try ResourceLoader().loadAndValidate(yaml, file: file, catalog: catalog)
        return try await resources.apply(documents, tenant: tenant.id)
    }

    /// Starts a run of the latest version of a workflow.
    func start(_ workflow: String, input: JSONValue = [:], idempotencyKey: String? = nil) async throws -> RunRecord {
        guard let stored = try await resources.find(kind: .workflow, name: workflow, tenant: tenant.id), case .workflow(let spec) = stored.resource
        else {
            throw TestFailure("no workflow \(workflow)")
        }
        let resolved = try spec.resolveInputs(input)
        return try await runs.createRun(
            tenant: tenant.id, workflow: workflow, version: stored.version, spec: spec, input: resolved, idempotencyKey: idempotencyKey
        ).run
    }

    /// Polls until the run reaches one of `statuses` (any final status by default).
    func wait(
        for id: UUID, until statuses: Set<RunStatus> = [.succeeded, .failed, .cancelled], timeout: Duration = .seconds(20)
    ) async throws -> RunRecord {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let run = try await runs.run(id, tenant: tenant.id), statuses.contains(run.status) { return run }
            try await Task.sleep(for: .milliseconds(10))
        }
        let run = try await runs.run(id, tenant: tenant.id)
        throw TestFailure("run \(id) is \(run?.status.rawValue ?? "missing"), not \(statuses.map(\.rawValue).sorted()) after \(timeout)")
    }

    /// Polls until a step of the run has one of `statuses`.
    func wait(forStep step: String, of id: UUID, until statuses: Set<StepStatus>, timeout: Duration = .seconds(20)) async throws -> StepRecord {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = try await runs.run(id, tenant: tenant.id)?.steps.first(where: { $0.id == step }), statuses.contains(found.status) {
                return found
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("step \(step) of run \(id) did not reach \(statuses.map(\.rawValue).sorted())")
    }

    func events(of id: UUID) async throws -> [RunEvent] {
        try await runs.events(of: id, tenant: tenant.id, after: 0, limit: 10_000)
    }

    func modelCalls(of id: UUID) async throws -> [(step: String, attempt: Int, call: Int, startedAt: Date, latency: Int)] {
        var rows: [(String, Int, Int, Date, Int)] = []
        for try await row in try await database.client.query(
            "SELECT step_id, attempt, call_index, started_at, latency_ms FROM model_calls WHERE tenant_id = \(tenant.id) AND run_id = \(id) ORDER BY started_at",
            logger: database.logger
        ).decode((String, Int, Int, Date, Int).self) {
            rows.append(row)
        }
        return rows.map { (step: $0.0, attempt: $0.1, call: $0.2, startedAt: $0.3, latency: $0.4) }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Quiet loggers for tests; set LOG_LEVEL=debug to see everything.
func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .critical
    return logger
}

/// Bounds how many tests hold a database (and usually an engine or a server) at once.
/// Swift Testing starts every test at the same time; on a small machine hundreds of
/// engines polling at once starve each other past the tests' own time limits.
actor TestSlots {
    static let shared = TestSlots(limit: 12)

    private let limit: Int
    private var inUse = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) {
        self.limit = limit
    }

    func acquire() async {
        if inUse < limit {
            inUse += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            inUse -= 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

/// Runs `body` with a new database (migrated, with one tenant) whose pool is running.
func withTestStore<T: Sendable>(_ body: @Sendable (TestStore) async throws -> T) async throws -> T {
    await TestSlots.shared.acquire()
    do {
        let result = try await withTestStoreSlot(body)
        await TestSlots.shared.release()
        return result
    } catch {
        await TestSlots.shared.release()
        throw error
    }
}

private func withTestStoreSlot<T: Sendable>(_ body: @Sendable (TestStore) async throws -> T) async throws -> T {
    let configuration = try await TestCluster.shared.makeDatabase()
    let database = Database(configuration: configuration, logger: testLogger("test.db"))
    do {
        let result = try await database.withRunningPool {
            let (tenant, key) = try await TenantRepository(database: database).createTenant(
                name: "tenant-\(UUID().uuidString.prefix(8).lowercased())")
            return try await body(TestStore(database: database, tenant: tenant, apiKey: key))
        }
        await TestCluster.shared.dropDatabase(configuration)
        return result
    } catch {
        await TestCluster.shared.dropDatabase(configuration)
        throw error
    }
}

/// The secret key of every test engine and server (tests seal secrets with it).
let testSecretKey = SecretKey.generate()

/// Engine settings that make timers fast enough for tests.
func fastEngineConfiguration(lease: Duration = .seconds(5)) -> EngineConfiguration {
    var configuration = EngineConfiguration()
    configuration.concurrency = 16
    configuration.lease = lease
    configuration.idlePoll = .milliseconds(200)
    configuration.maintenanceInterval = .milliseconds(100)
    return configuration
}

/// Runs `body` with a fresh store and an engine whose `flash` and `pro` experts answer
/// from the given scripted rules.
func withEngine<T: Sendable>(
    script: String = "[]", configuration: EngineConfiguration = fastEngineConfiguration(), egress: [String] = [], logger: Logger? = nil,
    _ body: @Sendable (TestStore, Engine) async throws -> T
) async throws -> T {
    try await withTestStore { store in
        try await withEngine(on: store, script: script, configuration: configuration, egress: egress, logger: logger) { engine in
            try await body(store, engine)
        }
    }
}

/// Runs an engine on an existing store while `body` runs, then stops it: a second call
/// on the same store is a restarted server.
func withEngine<T: Sendable>(
    on store: TestStore, script: String = "[]", configuration: EngineConfiguration = fastEngineConfiguration(), egress: [String] = [],
    logger: Logger? = nil, _ body: @Sendable (Engine) async throws -> T
) async throws -> T {
    let rules = try ScriptedExpert.parseRules(script, file: "test-script.yaml")
    let experts = ExpertPool([
        ScriptedExpert(name: "flash", model: "scripted-flash", rules: rules),
        ScriptedExpert(name: "pro", model: "scripted-pro", rules: rules),
    ])
    let logger = logger ?? testLogger("test.engine")
    let tools = ToolEnvironment(
        runner: ToolRunner(logger: logger), secretBox: SecretBox(current: testSecretKey), egress: try EgressPolicy(allowing: egress))
    let engine = Engine(database: store.database, experts: experts, tools: tools, configuration: configuration, logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await engine.run() }
        defer { group.cancelAll() }
        return try await body(engine)
    }
}
