import Foundation
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import Testing

@Suite("Engine: DAG execution")
struct EngineDAGTests {
    @Test("steps run in dependency order and independent steps run in parallel")
    func orderingAndParallelism() async throws {
        let script = """
            - match: "slow"
              reply: done
              delay: 400ms
            """
        try await withEngine(script: script) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: diamond
                steps:
                  - id: a
                    transform: "start"
                  - id: b
                    needs: [a]
                    prompt: "slow b"
                  - id: c
                    needs: [a]
                    prompt: "slow c"
                  - id: d
                    needs: [b, c]
                    transform: "{{ steps.b.output }}+{{ steps.c.output }}"
                outputs:
                  result: "{{ steps.d.output }}"
                """)
            let started = ContinuousClock.now
            let run = try await store.start("diamond")
            let finished = try await store.wait(for: run.id)
            let elapsed = ContinuousClock.now - started
            #expect(finished.status == .succeeded)
            #expect(finished.output == ["result": "done+done"])
            let steps = Dictionary(uniqueKeysWithValues: finished.steps.map { ($0.id, $0) })
            let a = try #require(steps["a"]), b = try #require(steps["b"]), c = try #require(steps["c"]), d = try #require(steps["d"])
            // b and c overlap: each started before the other finished.
            #expect(try #require(b.startedAt) < #require(c.finishedAt))
            #expect(try #require(c.startedAt) < #require(b.finishedAt))
            #expect(try #require(a.finishedAt) <= #require(b.startedAt))
            #expect(try #require(d.startedAt) >= #require(b.finishedAt))
            #expect(try #require(d.startedAt) >= #require(c.finishedAt))
            // Two 400 ms steps in parallel take well under their sum.
            #expect(elapsed < .milliseconds(790))
            #expect(finished.usage.calls == 2)
        }
    }
}
