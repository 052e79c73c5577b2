import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardStore
import Synchronization
import Testing

@Suite("Group commit of writes: batched under load, each caller answered as if it wrote alone")
struct BatchedWritesTests {
    struct Refused: Error {}

    /// Records the batches a write was given.
    final class Batches: Sendable {
        let sizes = Mutex<[Int]>([])
        func record(_ count: Int) { sizes.withLock { $0.append(count) } }
    }

    @Test("400 concurrent submits: every caller gets its own item's outcome, in batches of at most maxBatch")
    func everyCallerGetsItsOwnOutcome() async throws {
        let batches = Batches()
        let commit = GroupCommit<Int, Int>(maxBatch: 32) { items in
            batches.record(items.count)
            try await Task.sleep(for: .milliseconds(2))
            return items.map { $0 * 10 }
        }
        let answers = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for item in 0..<400 { group.addTask { (item, try await commit.submit(item)) } }
            return try await group.reduce(into: [(Int, Int)]()) { $0.append($1) }
        }
        #expect(answers.count == 400)
        #expect(answers.allSatisfy { $0.1 == $0.0 * 10 })
        let sizes = batches.sizes.withLock { $0 }
        #expect(sizes.reduce(0, +) == 400)
        #expect(sizes.allSatisfy { $0 <= 32 })
        #expect(sizes.count < 400, "concurrent writes were never batched")
        // The lead was laid down: a later lone submit is written at once, alone.
        #expect(try await commit.submit(7) == 70)
        #expect(batches.sizes.withLock { $0.last } == 1)
    }

    @Test("a leader whose task is cancelled mid-batch (its client hung up) still writes the others' items")
    func cancelledLeaderDoesNotFailItsBatch() async throws {
        let commit = GroupCommit<Int, Int>(maxBatch: 64) { items in
            try await Task.sleep(for: .milliseconds(200))
            return items
        }
        // 0 leads alone; 1, 2 and 3 queue behind it and 1 leads their batch.
        let first = Task { try await commit.submit(0) }
        try await Task.sleep(for: .milliseconds(30))
        let leader = Task { try await commit.submit(1) }
        try await Task.sleep(for: .milliseconds(30))
        let others = [Task { try await commit.submit(2) }, Task { try await commit.submit(3) }]
        _ = try await first.value
        try await Task.sleep(for: .milliseconds(50))
        leader.cancel()
        for (index, other) in others.enumerated() {
            #expect(try await other.value == index + 2)
        }
        _ = try? await leader.value
    }

    @Test("a batch the database refuses is written again one item at a time: only the offending item fails")
    func refusedBatchFailsOnlyTheOffender() async throws {
        let commit = GroupCommit<Int, Int>(maxBatch: 64) { items in
            try await Task.sleep(for: .milliseconds(2))
            if items.contains(13) { throw Refused() }
            return items
        }
        let results = await withTaskGroup(of: (Int, Bool).self) { group in
            for item in 0..<100 {
                group.addTask {
                    do {
                        return (item, try await commit.submit(item) == item)
                    } catch {
                        return (item, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 100)
        #expect(results.filter { !$0.value }.map(\.key) == [13])
    }

    @Test(
        "runs created at once by many callers: each stored whole (steps, first event) and answered with its own id; a run that cannot be stored fails alone"
    )
    func runsCreatedInBatches() async throws {
        try await withTestStore { store in
            try await store.apply(
                """
                kind: Workflow
                name: pair
                timeout: 1h
                steps:
                  - id: a
                    transform: "a"
                  - id: b
                    needs: [a]
                    transform: "b"
                """)
            let stored = try #require(try await store.resources.find(kind: .workflow, name: "pair", tenant: store.tenant.id))
            guard case .workflow(let spec) = stored.resource else { throw Refused() }
            let runs = store.runs  // one repository: one group commit
            let created = await withTaskGroup(of: (Int, RunRecord?).self) { group in
                for index in 0..<120 {
                    group.addTask {
                        // Run 60 names a tenant that does not exist: its row cannot be stored.
                        let tenant = index == 60 ? UUID() : store.tenant.id
                        let run = try? await runs.createRun(
                            tenant: tenant, workflow: "pair", version: stored.version, spec: spec, input: ["n": .int(index)], idempotencyKey: nil)
                        return (index, run?.run)
                    }
                }
                return await group.reduce(into: [Int: RunRecord?]()) { $0[$1.0] = $1.1 }
            }
            #expect(created.count == 120)
            // Every run's deadline is the workflow's timeout from its creation.
            let deadlines = try await store.database.query(
                "SELECT count(*) FROM runs WHERE deadline BETWEEN created_at + interval '59 minutes' AND created_at + interval '61 minutes'",
                logger: store.database.logger
            ).first(decoding: Int.self)
            #expect(deadlines == 119)
            #expect(created.filter { $0.value == nil }.map(\.key) == [60])
            for (index, run) in created {
                guard let run else { continue }
                let read = try #require(try await store.runs.run(run.id, tenant: store.tenant.id))
                #expect(read.input == ["n": .int(index)])
                #expect(read.status == .queued)
                #expect(read.steps.map(\.id) == ["a", "b"])
                #expect(read.steps.map(\.status) == [.ready, .pending])
                let events = try await store.events(of: run.id)
                #expect(events.map(\.seq) == [1])
                #expect(events.first?.type == RunEventType.runCreated.rawValue)
            }
        }
    }
}
