import Foundation
import Logging
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardGate
import SwitchyardStore
import SwitchyardTools
import Synchronization
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A PostgreSQL cluster of one fault test's own, which the test restarts, stalls or
/// stops without disturbing the shared test cluster.
struct PrivateCluster: Sendable {
    let running: EmbeddedPostgres.Running
    let root: String

    /// Starts a new cluster under `/tmp`, runs `body` with a migrated database on it
    /// and a tenant, and removes the cluster afterwards, whatever happens.
    static func withStore<T: Sendable>(
        _ name: String, configure: @Sendable (inout DatabaseConfiguration) -> Void = { _ in },
        _ body: @Sendable (PrivateCluster, TestStore) async throws -> T
    ) async throws -> T {
        let root = "/tmp/switchyard-fault-\(getuid())-\(getpid())-\(name)"
        try? FileManager.default.removeItem(atPath: root)
        let running = try EmbeddedPostgres(dataDirectory: root + "/postgres", database: "switchyard", maxConnections: 200).start()
        let cluster = PrivateCluster(running: running, root: root)
        defer {
            running.signalAll(SIGCONT)
            running.stop()
            try? FileManager.default.removeItem(atPath: root)
        }
        var configuration = running.configuration
        configuration.maxConnections = 16
        configure(&configuration)
        let database = Database(configuration: configuration, logger: testLogger("fault.db"))
        return try await database.withRunningPool {
            try await ProjectFiles.prepare(database)
            let (tenant, key) = try await TenantRepository(database: database).createTenant(name: "fault-\(name.lowercased())")
            return try await body(cluster, TestStore(database: database, tenant: tenant, apiKey: key))
        }
    }

    /// Restarts the server, on a thread of its own: `pg_ctl` takes a second or two,
    /// which must not hold one of the few threads the engines under test run on.
    func restart(_ mode: EmbeddedPostgres.Running.ShutdownMode) async throws {
        let running = self.running
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                do {
                    try running.restart(mode)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
    }

    /// Stalls every PostgreSQL process (connections stay open; nothing answers).
    func pause() { running.signalAll(SIGSTOP) }
    func resume() { running.signalAll(SIGCONT) }
}

/// What must hold after any fault: every run final (and, for these workloads,
/// succeeded), no step's outcome committed twice, event logs gapless, one ledger row
/// per model call, no reservation left, no step left running.
enum FaultInvariants {
    struct Report: CustomStringConvertible {
        var runs = 0
        var succeeded = 0
        var secondsToFinal = 0.0
        var ledgerRows = 0
        var estimatedRows = 0
        var retriedSteps = 0
        var description: String {
            "\(runs) runs, \(succeeded) succeeded, all final \(String(format: "%.1f", secondsToFinal)) s after the last fault; "
                + "\(ledgerRows) ledger rows (\(estimatedRows) estimated), \(retriedSteps) steps run more than once"
        }
    }

    /// Waits up to `within` for `runs` to be final, then checks every invariant.
    static func check(_ store: TestStore, runs: [UUID], within: Duration, expectAllSucceeded: Bool = true) async throws -> Report {
        let database = store.database
        let tenant = store.tenant.id
        var report = Report(runs: runs.count)
        let start = ContinuousClock.now
        let deadline = start + within
        var live = Int.max
        while ContinuousClock.now < deadline {
            live = try await scalar(
                database,
                "SELECT count(*)::int8 FROM runs WHERE tenant_id = \(tenant) AND id = ANY(\(runs)) AND status NOT IN ('succeeded', 'failed', 'cancelled')"
            )
            if live == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let elapsed = ContinuousClock.now - start
        report.secondsToFinal = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        if live != 0 {
            let steps = try await database.query(
                "SELECT status, count(*)::int8 FROM steps WHERE tenant_id = \(tenant) AND run_id = ANY(\(runs)) GROUP BY status ORDER BY status"
            ).decode((String, Int).self).reduce(into: "") { $0 += "\($1.0): \($1.1) " }
            Issue.record("\(live) of \(runs.count) runs are not final after \(within); their steps: \(steps)")
        }
        report.succeeded = try await scalar(
            database, "SELECT count(*)::int8 FROM runs WHERE tenant_id = \(tenant) AND id = ANY(\(runs)) AND status = 'succeeded'")
        if expectAllSucceeded {
            let failures = try await database.query(
                """
                SELECT r.status, coalesce(s.step_id, ''), coalesce(s.error->>'code', ''), coalesce(s.error->>'message', '')
                FROM runs r LEFT JOIN steps s ON s.tenant_id = r.tenant_id AND s.run_id = r.id AND s.status <> 'succeeded'
                WHERE r.tenant_id = \(tenant) AND r.id = ANY(\(runs)) AND r.status <> 'succeeded' LIMIT 5
                """
            ).collect().map { row in (try? row.decode((String, String, String, String).self)).map { "\($0)" } ?? "?" }
            #expect(report.succeeded == runs.count, "not every run succeeded; for example: \(failures)")
        }
        // No step's outcome was committed twice.
        let doubled = try await scalar(
            database,
            """
            SELECT count(*)::int8 FROM (
                SELECT run_id, step_id FROM run_events
                WHERE tenant_id = \(tenant) AND type IN ('step.succeeded', 'step.failed', 'step.skipped')
                GROUP BY run_id, step_id HAVING count(*) > 1) d
            """)
        #expect(doubled == 0, "\(doubled) steps have more than one final event")
        // Every run's event log is gapless and in order.
        let gapped = try await scalar(
            database,
            "SELECT count(*)::int8 FROM (SELECT run_id FROM run_events WHERE tenant_id = \(tenant) GROUP BY run_id HAVING max(seq) <> count(*)) g")
        #expect(gapped == 0, "\(gapped) runs have gaps in their event logs")
        // One ledger row per call, and a succeeded model step's final attempt has
        // exactly the rows of its calls (the key is the primary key; this checks that
        // no settled call went missing). Reservations are all settled or swept.
        let reservationsBy = ContinuousClock.now + .seconds(15)
        var reservations = 0
        repeat {
            reservations = try await scalar(database, "SELECT count(*)::int8 FROM reservations WHERE tenant_id = \(tenant)")
            if reservations == 0 { break }
            try await Task.sleep(for: .milliseconds(200))
        } while ContinuousClock.now < reservationsBy
        #expect(reservations == 0, "\(reservations) reservations were never settled")
        report.ledgerRows = try await scalar(database, "SELECT count(*)::int8 FROM model_calls WHERE tenant_id = \(tenant)")
        report.estimatedRows = try await scalar(database, "SELECT count(*)::int8 FROM model_calls WHERE tenant_id = \(tenant) AND NOT usage_known")
        let unbilledModelSteps = try await scalar(
            database,
            """
            SELECT count(*)::int8 FROM steps s
            WHERE s.tenant_id = \(tenant) AND s.status = 'succeeded' AND s.expert IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM model_calls c WHERE c.tenant_id = s.tenant_id AND c.run_id = s.run_id
                              AND c.step_id = s.step_id AND c.attempt = s.attempt AND c.usage_known)
            """)
        #expect(unbilledModelSteps == 0, "\(unbilledModelSteps) succeeded model steps have no exact ledger row for their attempt")
        // Nothing is left running, so nothing holds a lease without an owner at work.
        let running = try await scalar(database, "SELECT count(*)::int8 FROM steps WHERE tenant_id = \(tenant) AND status = 'running'")
        #expect(running == 0, "\(running) steps are still running after every run ended")
        report.retriedSteps = try await scalar(database, "SELECT count(*)::int8 FROM steps WHERE tenant_id = \(tenant) AND attempt > 1")
        return report
    }

    static func scalar(_ database: Database, _ query: PostgresQuery) async throws -> Int {
        for try await value in try await database.query(query).decode(Int.self) { return value }
        return 0
    }
}

/// Starts runs like a client would: a request that fails because the database is
/// unavailable is sent again (with the same idempotency key, so a request that did
/// commit is not started twice).
func startRuns(_ store: TestStore, workflow: String, count: Int, input: JSONValue = [:]) async throws -> [UUID] {
    try await withThrowingTaskGroup(of: UUID.self) { group in
        for index in 0..<count {
            group.addTask {
                let key = "fault-\(UUID().uuidString)-\(index)"
                let deadline = ContinuousClock.now + .seconds(60)
                while true {
                    do {
                        return try await store.start(workflow, input: input, idempotencyKey: key).id
                    } catch  where Database.isUnavailable(error) && ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
        }
        var ids: [UUID] = []
        for try await id in group { ids.append(id) }
        return ids
    }
}

/// Runs `body` with `count` engines on `store`'s database, each with a pool of its own
/// (as separate servers have), whose experts answer from `script`.
func withEngines<T: Sendable>(
    _ count: Int, on store: TestStore, script: String, configuration: EngineConfiguration, _ body: @Sendable ([Engine]) async throws -> T
) async throws -> T {
    let databases = (0..<count).map { _ in Database(configuration: store.database.configuration, logger: testLogger("fault.db")) }
    let engines = try databases.map { try makeEngine(on: $0, script: script, configuration: configuration) }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        for database in databases { group.addTask { await database.run() } }
        for engine in engines { group.addTask { try await engine.run() } }
        defer { group.cancelAll() }
        return try await body(engines)
    }
}

/// An engine on `database` whose experts answer from `script`.
func makeEngine(on database: Database, script: String, configuration: EngineConfiguration) throws -> Engine {
    let rules = try ScriptedExpert.parseRules(script, file: "fault-script.yaml")
    let experts = ExpertPool([
        ScriptedExpert(name: "flash", model: "scripted-flash", rules: rules),
        ScriptedExpert(name: "pro", model: "scripted-pro", rules: rules),
    ])
    let logger = testLogger("fault.engine")
    let tools = ToolEnvironment(
        runner: ToolRunner(logger: logger), secretBox: SecretBox(current: testSecretKey), egress: try EgressPolicy(allowing: ["127.0.0.1"]))
    return Engine(database: database, experts: experts, tools: tools, configuration: configuration, logger: logger)
}

/// An upstream that accepts connections (the kernel completes them from the listen
/// backlog) and never reads a byte or answers: a provider or tool that hangs.
final class SilentUpstream: Sendable {
    let port: Int
    private let descriptor: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, 128) == 0 else {
            close(fd)
            throw TestFailure("cannot listen on loopback")
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    var url: String { "http://127.0.0.1:\(port)" }

    deinit { close(descriptor) }
}

/// Counts HTTP statuses seen by a client running beside a fault.
final class StatusTally: Sendable {
    private let tally = Mutex<(counts: [Int: Int], slowest: Duration)>(([:], .zero))

    func record(_ status: Int, took: Duration) {
        tally.withLock {
            $0.counts[status, default: 0] += 1
            $0.slowest = max($0.slowest, took)
        }
    }

    var counts: [Int: Int] { tally.withLock { $0.counts } }
    /// The longest any request took.
    var slowest: Duration { tally.withLock { $0.slowest } }
}
