import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import Testing

/// The bounded soak (`yard bench prune` runs the long one): three rounds of 300 runs
/// through the engine, each pruned and vacuumed. Pruning leaves none of the runs' rows,
/// vacuuming leaves (next to) no dead rows, and the tables stop growing: the third
/// round fits in the space the earlier ones freed. (B-tree pages emptied by one VACUUM
/// become reusable at the next one, so the indexes settle at about two rounds' worth
/// after the second round, and stay there.)
@Suite("Retention soak (bounded)")
struct RetentionSoakTests {
    static let roundRuns = 300

    @Test("three rounds of runs, pruned and vacuumed: no rows left, no dead rows, no growth")
    func soak() async throws {
        try await withEngine { store, engine in
            try await store.apply(
                """
                kind: Workflow
                name: chain
                steps:
                  - id: a
                    transform: "{{ inputs.text }}"
                  - id: b
                    needs: [a]
                    transform: "{{ steps.a.output | upper }}"
                  - id: c
                    needs: [b]
                    transform: "{{ steps.b.output | length }}"
                inputs:
                  text: { type: string }
                """)
            let repository = RetentionRepository(database: store.database)
            var configuration = RetentionConfiguration()
            configuration.pause = .milliseconds(5)
            let pruner = Pruner(database: store.database, configuration: configuration)
            var generator = SeededGenerator(seed: 12)
            var afterPush: [Int64] = []
            for round in 1...3 {
                for _ in 0..<Self.roundRuns {
                    let text = String(repeating: "x", count: Int.random(in: 10...400, using: &generator))
                    _ = try await store.start("chain", input: ["text": .string(text)])
                    engine.poke()
                }
                let deadline = ContinuousClock.now + .seconds(240)
                while try await store.runs.liveRunCount(tenant: store.tenant.id) > 0 {
                    guard ContinuousClock.now < deadline else { throw TestFailure("round \(round): runs did not finish") }
                    try await Task.sleep(for: .milliseconds(50))
                }
                afterPush.append(try await repository.tableSizes().reduce(0) { $0 + $1.totalBytes })
                let report = try await pruner.prune(tenant: store.tenant.id, olderThan: TimeSpan(milliseconds: 0))
                #expect(report.counts.runs == Self.roundRuns)
                #expect(report.counts.steps == Self.roundRuns * 3)
                for table in ["runs", "steps", "run_events"] {
                    let left = try await store.database.query(
                        "SELECT count(*)::int8 FROM \(unescaped: table) WHERE tenant_id = \(store.tenant.id)"
                    ).first(decoding: Int.self)
                    #expect(left == 0, "round \(round): \(table) still has rows")
                }
                // As autovacuum would, until no older snapshot (a transaction of the
                // engine, or of another test's database on this busy cluster) holds the
                // deleted rows: then VACUUM removes them all.
                var dead: [String: Int64] = [:]
                for _ in 0..<10 {
                    try await repository.vacuum()
                    dead = [:]
                    for size in try await repository.tableSizes() where ["runs", "steps", "run_events"].contains(size.table) {
                        dead[size.table] = size.deadRows
                    }
                    if dead.values.allSatisfy({ $0 < 200 }) { break }
                    try await Task.sleep(for: .seconds(1))
                }
                #expect(dead.values.allSatisfy { $0 < 200 }, "round \(round): dead rows after VACUUM: \(dead)")
            }
            // Without reuse every round would add a round's worth (the third round's
            // tables about twice the second's); with it the third round fits in the
            // second one's, give or take index pages split by a different interleaving
            // (up to ~16% seen on a busy cluster).
            #expect(Double(afterPush[2]) <= Double(afterPush[1]) * 1.3, "sizes after each round's runs: \(afterPush)")
        }
    }
}

/// A small deterministic generator (SplitMix64), so the soak's payloads are the same every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
