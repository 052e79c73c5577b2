import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import Testing

@Suite("Group commit: many steps in one statement, each as if alone")
struct GroupCommitTests {
    static let diamond = """
        kind: Workflow
        name: diamond
        steps:
          - id: a
            transform: "a"
          - id: b
            needs: [a]
            transform: "b{{ steps.a.output }}"
          - id: c
            needs: [a]
            transform: "c{{ steps.a.output }}"
          - id: d
            needs: [b, c]
            transform: "{{ steps.b.output }}+{{ steps.c.output }}"
        outputs:
          result: "{{ steps.d.output }}"
        """

    @Test("two predecessors committed in one batch make their successor ready once; a stale attempt is rejected alone")
    func sharedSuccessorAndStaleAttempt() async throws {
        try await withTestStore { store in
            try await store.apply(Self.diamond)
            let queue = StepQueue(database: store.database)
            let run = try await store.start("diamond")
            let a = try #require(try await queue.claim(limit: 10, lease: .seconds(30)).first)
            let first = try await queue.complete(
                [StepCompletion(step: a, outcome: .succeeded(output: "a", expert: nil), dependents: ["b", "c"])], notifyOthers: false)
            #expect(first.map(\.result) == [.committed(newlyReady: ["b", "c"], runFinished: nil)])

            let claimed = try await queue.claim(limit: 10, lease: .seconds(30)).sorted { $0.stepID < $1.stepID }
            #expect(claimed.map(\.stepID) == ["b", "c"])
            var stale = claimed[0]
            stale.attempt += 1
            let outcomes = try await queue.complete(
                [
                    StepCompletion(step: stale, outcome: .succeeded(output: "stale", expert: nil), dependents: ["d"]),
                    StepCompletion(step: claimed[0], outcome: .succeeded(output: "ba", expert: nil), dependents: ["d"]),
                    StepCompletion(step: claimed[1], outcome: .skipped(reason: "not needed"), dependents: ["d"]),
                ], notifyOthers: false)
            #expect(
                outcomes.map(\.result) == [
                    .rejected, .committed(newlyReady: ["d"], runFinished: nil), .committed(newlyReady: ["d"], runFinished: nil),
                ])
            #expect(outcomes.allSatisfy { !$0.runAwaitsEnd })

            let after = try #require(try await store.runs.run(run.id, tenant: store.tenant.id))
            let steps = Dictionary(uniqueKeysWithValues: after.steps.map { ($0.id, $0) })
            #expect(steps["b"]?.status == .succeeded)
            #expect(steps["b"]?.output == "ba")
            #expect(steps["c"]?.status == .skipped)
            #expect(steps["c"]?.output == nil)
            #expect(steps["d"]?.status == .ready)
            let events = try await store.events(of: run.id)
            #expect(events.map(\.seq) == Array(1...Int64(events.count)))
            #expect(events.suffix(2).map(\.type) == [RunEventType.stepSucceeded.rawValue, RunEventType.stepSkipped.rawValue])
            #expect(events.last?.data == ["reason": "not needed"])
        }
    }

    @Test("the last step's completion ends the run in the same statement when it carries the run's end; else the caller is told to end it")
    func lastStepEndsTheRun() async throws {
        try await withTestStore { store in
            try await store.apply(
                """
                kind: Workflow
                name: one
                steps:
                  - id: only
                    transform: "x"
                """)
            let queue = StepQueue(database: store.database)
            let ended = try await store.start("one")
            let open = try await store.start("one")
            let claimed = try await queue.claim(limit: 10, lease: .seconds(30))
            let byRun = Dictionary(uniqueKeysWithValues: claimed.map { ($0.runID, $0) })
            let outcomes = try await queue.complete(
                [
                    StepCompletion(
                        step: try #require(byRun[ended.id]), outcome: .succeeded(output: "x", expert: nil), dependents: [],
                        runEnd: .succeeded(["answer": "x"])),
                    StepCompletion(step: try #require(byRun[open.id]), outcome: .succeeded(output: "x", expert: nil), dependents: []),
                ], notifyOthers: false)
            #expect(outcomes[0].result == .committed(newlyReady: [], runFinished: .succeeded))
            #expect(!outcomes[0].runAwaitsEnd)
            #expect(outcomes[1].result == .committed(newlyReady: [], runFinished: nil))
            #expect(outcomes[1].runAwaitsEnd)

            let run = try #require(try await store.runs.run(ended.id, tenant: store.tenant.id))
            #expect(run.status == .succeeded)
            #expect(run.output == ["answer": "x"])
            #expect(run.finishedAt != nil)
            let events = try await store.events(of: ended.id)
            #expect(events.map(\.type) == ["run.created", "step.started", "step.succeeded", "run.succeeded"])
            #expect(events.map(\.seq) == [1, 2, 3, 4])
            #expect(events.last?.data == ["output": ["answer": "x"]])
            #expect(try await store.runs.status(of: open.id, tenant: store.tenant.id) == .running)
        }
    }

    @Test("a run cancelled while its last step ran is not ended by the step's batch")
    func cancelledRunStaysCancelled() async throws {
        try await withTestStore { store in
            try await store.apply(
                """
                kind: Workflow
                name: one
                steps:
                  - id: only
                    transform: "x"
                """)
            let queue = StepQueue(database: store.database)
            let run = try await store.start("one")
            let claim = try #require(try await queue.claim(limit: 1, lease: .seconds(30)).first)
            _ = try await store.runs.cancel(run.id, tenant: store.tenant.id)
            let outcomes = try await queue.complete(
                [StepCompletion(step: claim, outcome: .succeeded(output: "x", expert: nil), dependents: [], runEnd: .succeeded([:]))],
                notifyOthers: false)
            #expect(outcomes.map(\.result) == [.rejected])
            #expect(try await store.runs.status(of: run.id, tenant: store.tenant.id) == .cancelled)
            #expect(try await store.events(of: run.id).last?.type == RunEventType.runCancelled.rawValue)
        }
    }

    @Test("300 runs at once through an engine of 64 slots: every log gap-free and in causal order, every output right")
    func manyRunsAtOnce() async throws {
        var configuration = fastEngineConfiguration()
        configuration.concurrency = 64
        try await withEngine(configuration: configuration) { store, _ in
            try await store.apply(Self.diamond)
            var ids: [UUID] = []
            for _ in 0..<300 { ids.append(try await store.start("diamond").id) }
            for id in ids {
                let run = try await store.wait(for: id, timeout: .seconds(60))
                #expect(run.status == .succeeded)
                #expect(run.output == ["result": "ba+ca"])
                let events = try await store.events(of: id)
                #expect(events.map(\.seq) == Array(1...10))
                #expect(events.first?.type == RunEventType.runCreated.rawValue)
                #expect(events.last?.type == RunEventType.runSucceeded.rawValue)
                func position(_ type: RunEventType, _ step: String) -> Int {
                    events.firstIndex { $0.type == type.rawValue && $0.stepID == step } ?? -1
                }
                for step in ["a", "b", "c", "d"] {
                    #expect(position(.stepStarted, step) >= 0)
                    #expect(position(.stepStarted, step) < position(.stepSucceeded, step))
                }
                #expect(position(.stepSucceeded, "a") < position(.stepStarted, "b"))
                #expect(position(.stepSucceeded, "b") < position(.stepStarted, "d"))
                #expect(position(.stepSucceeded, "c") < position(.stepStarted, "d"))
            }
        }
    }

    @Test("heartbeats and a completion batch over the same steps, listed in opposite orders, never deadlock")
    func heartbeatsAndBatchesDoNotDeadlock() async throws {
        try await withTestStore { store in
            try await store.apply(
                """
                kind: Workflow
                name: wide
                steps:
                """ + (0..<8).map { "\n  - id: s\($0)\n    transform: \"\($0)\"" }.joined())
            let queue = StepQueue(database: store.database)
            for _ in 0..<5 {
                for _ in 0..<10 { _ = try await store.start("wide") }
                let claimed = try await queue.claim(limit: 100, lease: .seconds(30))
                #expect(claimed.count == 80)
                // Before steps were listed in one lock order, the reversed heartbeat and
                // the batch took each other's rows: "deadlock detected" after a second.
                let outcomes = try await withThrowingTaskGroup(of: [CompletionOutcome].self) { group in
                    for _ in 0..<3 {
                        group.addTask {
                            try await queue.heartbeat(claimed.reversed(), lease: .seconds(30))
                            return []
                        }
                    }
                    group.addTask {
                        try await queue.complete(
                            claimed.shuffled().map { StepCompletion(step: $0, outcome: .succeeded(output: "x", expert: nil), dependents: []) },
                            notifyOthers: false)
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(outcomes.count == 80)
                #expect(outcomes.allSatisfy { if case .committed = $0.result { true } else { false } })
            }
        }
    }

    @Test("a heartbeat never waits for a row lock: a step another transaction holds is still answered as ours, its lease left as it was")
    func heartbeatSkipsLockedSteps() async throws {
        try await withTestStore { store in
            try await store.apply(
                """
                kind: Workflow
                name: two
                steps:
                  - id: a
                    transform: "a"
                  - id: b
                    transform: "b"
                """)
            let queue = StepQueue(database: store.database)
            let run = try await store.start("two")
            let claimed = try await queue.claim(limit: 10, lease: .seconds(30)).sorted { $0.stepID < $1.stepID }
            #expect(claimed.map(\.stepID) == ["a", "b"])
            @Sendable func leases() async throws -> [String: Double] {
                var result: [String: Double] = [:]
                for try await (step, seconds) in try await store.database.query(
                    "SELECT step_id, extract(epoch FROM lease_expires_at - now())::float8 FROM steps WHERE run_id = \(run.id)",
                    logger: store.database.logger
                ).decode((String, Double).self) {
                    result[step] = seconds
                }
                return result
            }
            let answered = try await store.database.transaction { connection in
                // Step a's row is locked here until this transaction ends.
                try await connection.query(
                    "SELECT 1 FROM steps WHERE run_id = \(run.id) AND step_id = 'a' FOR UPDATE", logger: store.database.logger)
                let answered = try await queue.heartbeat(claimed, lease: .seconds(300))
                let now = try await leases()
                #expect((now["a"] ?? 0) < 60, "the locked step's lease was renewed")
                #expect((now["b"] ?? 0) > 200, "the free step's lease was not renewed")
                return answered
            }
            #expect(answered.map(\.stepID) == ["a", "b"])
            // Once free, the next heartbeat renews it; a step no longer ours is left out.
            try await store.database.query(
                "UPDATE steps SET lease_owner = NULL WHERE run_id = \(run.id) AND step_id = 'b'", logger: store.database.logger)
            #expect(try await queue.heartbeat(claimed, lease: .seconds(300)).map(\.stepID) == ["a"])
            #expect((try await leases()["a"] ?? 0) > 200)
        }
    }

    @Test("a hot table that outgrew its planner statistics is analysed once, then left to autovacuum")
    func staleStatisticsAreRefreshed() async throws {
        try await withTestStore { store in
            try await store.apply(Self.diamond)
            let queue = StepQueue(database: store.database)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<300 { group.addTask { _ = try await store.start("diamond") } }
                try await group.waitForAll()
            }
            // Table statistics reach pg_stat_user_tables within a second or so.
            var analysed: [String] = []
            let deadline = ContinuousClock.now + .seconds(15)
            while !analysed.contains("steps") && ContinuousClock.now < deadline {
                analysed += try await queue.refreshStaleStatistics()
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(analysed.contains("steps"))
            let reltuples = try await store.database.query(
                "SELECT reltuples::int8 FROM pg_class WHERE relname = 'steps' AND relnamespace = current_schema()::regnamespace",
                logger: store.database.logger
            ).first(decoding: Int.self)
            #expect((reltuples ?? 0) >= 1200)
            #expect(try await !queue.refreshStaleStatistics().contains("steps"))
        }
    }
}
