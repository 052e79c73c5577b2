import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Engine: crash recovery")
struct CrashRecoveryTests {
    /// The `yard` binary built beside the test bundle.
    static func yardExecutable() throws -> String {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("yard").path,
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/debug/yard").standardized.path,
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestFailure("cannot find the yard binary (looked at \(candidates))")
        }
        return found
    }

    /// Starts `yard serve` against the test database; its output goes to `log`.
    static func startServer(config: String, database: DatabaseConfiguration, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try yardExecutable())
        process.arguments = ["serve", "--config", config]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.url
        environment["LOG_LEVEL"] = "info"
        process.environment = environment
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    @Test("a server killed with SIGKILL mid-step loses nothing: after a restart the step runs again and the run finishes")
    func sigkillMidStep() async throws {
        try await withTestStore { store in
            let directory = NSTemporaryDirectory() + "switchyard-crash-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try """
            - match: "slow"
              reply: "survived"
              delay: 1500ms
            """.write(toFile: directory + "/script.yaml", atomically: true, encoding: .utf8)
            try """
            port: 0
            admin_key: crash-test
            engine: { lease: 2s, heartbeat: 500ms, poll: 200ms }
            experts:
              flash: { provider: scripted, script: script.yaml }
              pro: { provider: scripted, script: script.yaml }
            """.write(toFile: directory + "/config.yaml", atomically: true, encoding: .utf8)
            try await store.apply(
                """
                kind: Workflow
                name: crashy
                steps:
                  - id: before
                    transform: "first"
                  - id: slow
                    needs: [before]
                    prompt: "slow work"
                  - id: after
                    needs: [slow]
                    transform: "{{ steps.slow.output }}!"
                outputs:
                  result: "{{ steps.after.output }}"
                """)
            let log = directory + "/server.log"
            let first = try Self.startServer(config: directory + "/config.yaml", database: store.database.configuration, log: log)
            let run = try await store.start("crashy")
            // Kill the server while the slow step runs under its lease.
            let running = try await store.wait(forStep: "slow", of: run.id, until: [.running], timeout: .seconds(30))
            #expect(running.attempts == 1)
            // …once its model call is in flight (reserved, so possibly billed).
            let reservedBy = ContinuousClock.now + .seconds(15)
            var reserved = false
            while !reserved, ContinuousClock.now < reservedBy {
                for try await _ in try await store.database.client.query(
                    "SELECT 1 FROM reservations WHERE tenant_id = \(store.tenant.id) AND run_id = \(run.id)", logger: store.database.logger
                ).decode(Int.self) {
                    reserved = true
                }
                if !reserved { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(reserved)
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            #expect(first.terminationReason == .uncaughtSignal)

            let second = try Self.startServer(config: directory + "/config.yaml", database: store.database.configuration, log: log)
            defer {
                second.terminate()
                second.waitUntilExit()
            }
            let finished = try await store.wait(for: run.id, timeout: .seconds(30))
            #expect(finished.status == .succeeded, "server log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            #expect(finished.output == ["result": "survived!"])
            let slow = try #require(finished.steps.first { $0.id == "slow" })
            #expect(slow.attempts == 2)

            // No step was committed twice, and the expired lease is on the record.
            let events = try await store.events(of: run.id)
            let succeeded = events.filter { $0.type == "step.succeeded" }.compactMap(\.stepID)
            #expect(succeeded.sorted() == ["after", "before", "slow"])
            #expect(events.contains { $0.type == "step.lease_expired" && $0.stepID == "slow" })
            #expect(events.map(\.seq) == Array(1...Int64(events.count)))
            // The killed attempt's call may have been billed: its reservation became a
            // ledger row marked as an estimate. The second attempt's call is recorded once.
            // The maintenance sweep turns the orphaned reservation into its row (after a grace).
            var calls = try await store.modelCalls(of: run.id)
            let deadline = ContinuousClock.now + .seconds(15)
            while calls.count < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                calls = try await store.modelCalls(of: run.id)
            }
            #expect(calls.map(\.attempt).sorted() == [1, 2])
            var known: [Int: Bool] = [:]
            for try await (attempt, usageKnown) in try await store.database.client.query(
                "SELECT attempt, usage_known FROM model_calls WHERE tenant_id = \(store.tenant.id) AND run_id = \(run.id)",
                logger: store.database.logger
            ).decode((Int, Bool).self) {
                known[attempt] = usageKnown
            }
            #expect(known == [1: false, 2: true])
        }
    }
}
