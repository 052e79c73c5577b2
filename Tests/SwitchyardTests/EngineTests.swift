import Foundation
import PostgresNIO
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
            let run = try await store.start("diamond")
            let finished = try await store.wait(for: run.id)
            #expect(finished.status == .succeeded)
            #expect(finished.output == ["result": "done+done"])
            let steps = Dictionary(uniqueKeysWithValues: finished.steps.map { ($0.id, $0) })
            let a = try #require(steps["a"])
            let b = try #require(steps["b"])
            let c = try #require(steps["c"])
            let d = try #require(steps["d"])
            // b and c overlap: each started before the other finished.
            #expect(try #require(b.startedAt) < #require(c.finishedAt))
            #expect(try #require(c.startedAt) < #require(b.finishedAt))
            #expect(try #require(a.finishedAt) <= #require(b.startedAt))
            #expect(try #require(d.startedAt) >= #require(b.finishedAt))
            #expect(try #require(d.startedAt) >= #require(c.finishedAt))
            #expect(finished.usage.calls == 2)
        }
    }
}

@Suite("Engine: conditions, retries and timeouts")
struct EngineControlFlowTests {
    @Test("a false `if` skips the step; a step reading its output is skipped, others still run")
    func ifSkips() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: branches
                inputs:
                  tier: { type: string, default: standard }
                steps:
                  - id: approve
                    if: "{{ inputs.tier == 'enterprise' }}"
                    transform: "approved"
                  - id: uses_output
                    needs: [approve]
                    transform: "{{ steps.approve.output }}"
                  - id: after
                    needs: [approve]
                    transform: "went on"
                """)
            let run = try await store.wait(for: try await store.start("branches").id)
            #expect(run.status == .succeeded)
            let status = Dictionary(uniqueKeysWithValues: run.steps.map { ($0.id, $0.status) })
            #expect(status == ["approve": .skipped, "uses_output": .skipped, "after": .succeeded])

            let enterprise = try await store.wait(for: try await store.start("branches", input: ["tier": "enterprise"]).id)
            #expect(enterprise.steps.map(\.status) == [.succeeded, .succeeded, .succeeded])
        }
    }

    @Test("a failing model call is retried with backoff until it succeeds")
    func retriesWithBackoff() async throws {
        let script = """
            - match: "flaky"
              fail: { status: 503, times: 2 }
            - match: "flaky"
              reply: "finally"
            """
        try await withEngine(script: script) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: flaky
                steps:
                  - id: call
                    model: flash
                    prompt: "flaky call"
                    retry: { max_attempts: 3, backoff: exponential, initial: 200ms, max: 2s }
                """)
            let run = try await store.wait(for: try await store.start("flaky").id)
            #expect(run.status == .succeeded)
            let step = try #require(run.steps.first)
            #expect(step.attempts == 3)
            #expect(step.output == "finally")
            let events = try await store.events(of: run.id)
            let retries = events.filter { $0.type == "step.retrying" }
            #expect(retries.count == 2)
            // Exponential with equal jitter: the second delay is at least half of 400 ms.
            let delays = retries.compactMap { $0.data["delay_ms"]?.intValue }
            #expect(delays.count == 2)
            #expect(delays[0] >= 100 && delays[0] <= 200)
            #expect(delays[1] >= 200 && delays[1] <= 400)
            let starts = events.filter { $0.type == "step.started" }.map(\.createdAt)
            #expect(starts.count == 3)
            #expect(starts[1].timeIntervalSince(starts[0]) >= 0.1)
            #expect(starts[2].timeIntervalSince(starts[1]) >= 0.2)
            // Every attempt's call is on the ledger, the failures too.
            let calls = try await store.modelCalls(of: run.id)
            #expect(calls.map(\.attempt) == [1, 2, 3])
        }
    }

    @Test("a step that exhausts its retries fails the run and cancels what has not run")
    func exhaustedRetriesFailTheRun() async throws {
        let script = """
            - match: "broken"
              fail: { status: 500, times: 100 }
            """
        try await withEngine(script: script) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: broken
                steps:
                  - id: call
                    prompt: "broken"
                    retry: { max_attempts: 2, initial: 10ms }
                  - id: later
                    needs: [call]
                    transform: "never"
                """)
            let run = try await store.wait(for: try await store.start("broken").id)
            #expect(run.status == .failed)
            #expect(run.error?.code == "step_failed")
            #expect(run.steps.map(\.status) == [.failed, .cancelled])
            #expect(run.steps[0].attempts == 2)
            #expect(run.steps[0].error?.code == "model_error")
        }
    }

    @Test("`on_error: continue` lets dependents run after a failed step")
    func onErrorContinue() async throws {
        try await withEngine(script: "- match: broken\n  fail: { status: 500, times: 100 }") { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: tolerant
                steps:
                  - id: call
                    prompt: "broken"
                    on_error: continue
                  - id: later
                    needs: [call]
                    transform: "went on"
                """)
            let run = try await store.wait(for: try await store.start("tolerant").id)
            #expect(run.status == .succeeded)
            #expect(run.steps.map(\.status) == [.failed, .succeeded])
        }
    }

    @Test("a step that outlives its timeout fails with `timeout`")
    func stepTimeout() async throws {
        try await withEngine(script: "- match: slow\n  reply: late\n  delay: 20s") { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: slow
                steps:
                  - id: call
                    prompt: "slow"
                    timeout: 200ms
                """)
            let started = ContinuousClock.now
            let run = try await store.wait(for: try await store.start("slow").id)
            // Far sooner than the 20 s answer, however loaded the machine is.
            #expect(ContinuousClock.now - started < .seconds(15))
            #expect(run.status == .failed)
            #expect(run.steps.first?.error?.code == "timeout")
        }
    }

    @Test("a run that outlives its timeout fails with `run_timeout` and its steps are cancelled")
    func runTimeout() async throws {
        try await withEngine(script: "- match: slow\n  reply: late\n  delay: 20s") { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: slow-run
                timeout: 300ms
                steps:
                  - id: call
                    prompt: "slow"
                """)
            let started = ContinuousClock.now
            let run = try await store.wait(for: try await store.start("slow-run").id)
            #expect(ContinuousClock.now - started < .seconds(15))
            #expect(run.status == .failed)
            #expect(run.error?.code == "run_timeout")
            #expect(run.steps.first?.status == .cancelled)
        }
    }
}

@Suite("Engine: cancellation, waits and fan-out")
struct EngineLifecycleTests {
    @Test("cancelling a run stops its running step and nothing is committed after")
    func cancellation() async throws {
        try await withEngine(script: "- match: slow\n  reply: late\n  delay: 5s") { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: cancellable
                steps:
                  - id: call
                    prompt: "slow"
                  - id: after
                    needs: [call]
                    transform: "never"
                """)
            let run = try await store.start("cancellable")
            _ = try await store.wait(forStep: "call", of: run.id, until: [.running])
            let status = try await store.runs.cancel(run.id, tenant: store.tenant.id)
            #expect(status == .cancelled)
            let cancelled = try await store.wait(for: run.id)
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.steps.map(\.status) == [.cancelled, .cancelled])
            // The executor stopped: no completion event arrives for the cancelled step.
            try await Task.sleep(for: .milliseconds(300))
            let types = try await store.events(of: run.id).map(\.type)
            #expect(!types.contains("step.succeeded"))
            #expect(types.last == "run.cancelled")
            // Cancelling again changes nothing.
            #expect(try await store.runs.cancel(run.id, tenant: store.tenant.id) == .cancelled)
        }
    }

    @Test("`wait_for` parks the run without a worker until the signal arrives")
    func waitForSignal() async throws {
        try await withEngine { store, engine in
            try await store.apply(
                """
                kind: Workflow
                name: approval
                steps:
                  - id: approve
                    wait_for: approval
                  - id: done
                    needs: [approve]
                    transform: "approved by {{ steps.approve.output.by }}"
                outputs:
                  result: "{{ steps.done.output }}"
                """)
            let run = try await store.start("approval")
            let waiting = try await store.wait(for: run.id, until: [.waiting])
            #expect(waiting.steps.map(\.status) == [.waiting, .pending])
            // No step holds a lease while the run waits.
            var leased: [Int] = []
            for try await count in try await store.database.client.query(
                "SELECT count(*)::int8 FROM steps WHERE lease_owner IS NOT NULL AND run_id = \(run.id)"
            ).decode(Int.self) {
                leased.append(count)
            }
            #expect(leased == [0])
            let delivery = try await store.runs.signal(run.id, tenant: store.tenant.id, name: "approval", data: ["by": "ada"])
            #expect(delivery == .delivered(resumedSteps: ["approve"]))
            engine.poke()
            let finished = try await store.wait(for: run.id)
            #expect(finished.status == .succeeded)
            #expect(finished.output == ["result": "approved by ada"])
            #expect(try await store.runs.signal(run.id, tenant: store.tenant.id, name: "approval", data: nil) == .runFinished(.succeeded))
        }
    }

    @Test("a signal that arrives before the wait starts is not lost")
    func earlySignal() async throws {
        try await withEngine(script: "- match: slow\n  reply: ok\n  delay: 300ms") { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: early
                steps:
                  - id: first
                    prompt: "slow"
                  - id: approve
                    needs: [first]
                    wait_for: go
                """)
            let run = try await store.start("early")
            #expect(try await store.runs.signal(run.id, tenant: store.tenant.id, name: "go", data: 42) == .delivered(resumedSteps: []))
            let finished = try await store.wait(for: run.id)
            #expect(finished.status == .succeeded)
            #expect(finished.steps.last?.output == 42)
        }
    }

    @Test("a `wait_for` with a timeout fails with `wait_timeout` when no signal comes")
    func waitTimeout() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: impatient
                steps:
                  - id: approve
                    wait_for: approval
                    timeout: 300ms
                """)
            let run = try await store.wait(for: try await store.start("impatient").id)
            #expect(run.status == .failed)
            #expect(run.steps.first?.error?.code == "wait_timeout")
        }
    }

    @Test("`map` runs one inner step per item, at most `concurrency` at a time, in order")
    func mapWithCap() async throws {
        try await withEngine(script: "- match: /Tag/\n  reply: tagged\n  delay: 600ms") { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: fan-out
                inputs:
                  items: { type: array, required: true }
                steps:
                  - id: each
                    map:
                      over: "{{ inputs.items }}"
                      as: item
                      concurrency: 2
                      step: { prompt: "Tag {{ item }}" }
                  - id: upper
                    map:
                      over: "{{ inputs.items }}"
                      step: { transform: "{{ item | upper }}" }
                """)
            let items: [JSONValue] = ["a", "b", "c", "d", "e", "f"]
            let run = try await store.wait(for: try await store.start("fan-out", input: ["items": .array(items)]).id)
            #expect(run.status == .succeeded)
            #expect(run.steps[0].output == .array(Array(repeating: "tagged", count: 6)))
            #expect(run.steps[1].output == ["A", "B", "C", "D", "E", "F"])
            // At no moment were more than two calls in flight.
            let calls = try await store.modelCalls(of: run.id)
            #expect(calls.count == 6)
            #expect(Set(calls.map(\.call)) == Set(0..<6))
            let intervals = calls.map { ($0.startedAt, $0.startedAt.addingTimeInterval(Double($0.latency) / 1000)) }
            let overlap = intervals.map { probe in intervals.filter { $0.0 <= probe.0 && probe.0 < $0.1 }.count }.max() ?? 0
            #expect(overlap <= 2)
            #expect(overlap == 2)
        }
    }

    @Test("a `map` over an empty list outputs an empty list")
    func emptyMap() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: nothing-to-do
                inputs:
                  items: { type: array, default: [] }
                steps:
                  - id: each
                    map:
                      over: "{{ inputs.items }}"
                      step: { prompt: "Tag {{ item }}" }
                """)
            let run = try await store.wait(for: try await store.start("nothing-to-do").id)
            #expect(run.status == .succeeded)
            #expect(run.steps.first?.output == [])
        }
    }

    @Test("a need listed twice is waited for once")
    func duplicateNeeds() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                "kind: Workflow\nname: twice\nsteps:\n  - id: a\n    transform: x\n  - id: b\n    needs: [a, a]\n    transform: y\n")
            let run = try await store.wait(for: try await store.start("twice").id)
            #expect(run.status == .succeeded)
        }
    }

    @Test("a trigger with a used idempotency key returns the first run")
    func idempotentTrigger() async throws {
        try await withTestStore { store in
            try await store.apply("kind: Workflow\nname: once\nsteps:\n  - id: a\n    transform: x\n")
            let first = try await store.start("once", idempotencyKey: "order-42")
            let second = try await store.start("once", idempotencyKey: "order-42")
            let other = try await store.start("once", idempotencyKey: "order-43")
            #expect(first.id == second.id)
            #expect(first.id != other.id)
            let listed = try await store.runs.list(tenant: store.tenant.id).runs
            #expect(listed.count == 2)
        }
    }
}

@Suite("Engine: leases and fencing")
struct EngineLeaseTests {
    @Test("a late completion from an expired lease is rejected; the new owner's commits")
    func lateCompletionRejected() async throws {
        try await withTestStore { store in
            try await store.apply("kind: Workflow\nname: leased\nsteps:\n  - id: a\n    transform: x\n")
            let run = try await store.start("leased")
            let first = StepQueue(database: store.database)
            let second = StepQueue(database: store.database)
            let claimed = try await first.claim(limit: 10, lease: .milliseconds(200))
            let mine = try #require(claimed.first { $0.runID == run.id })
            #expect(mine.attempt == 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await second.reclaimExpiredLeases() >= 1)
            let reclaimed = try #require(try await second.claim(limit: 10, lease: .seconds(30)).first { $0.runID == run.id })
            #expect(reclaimed.attempt == 2)

            let finalize: RunFinalizer = { _ in .success(["from": "test"]) }
            let late = try await first.complete(
                mine, .succeeded(output: "late", expert: nil), dependents: [], notifyOthers: false, finalize: finalize)
            #expect(late == .rejected)
            let current = try await second.complete(
                reclaimed, .succeeded(output: "current", expert: nil), dependents: [], notifyOthers: false, finalize: finalize)
            #expect(current == .committed(newlyReady: [], runFinished: .succeeded))
            // A duplicate of the committed completion is rejected too.
            let duplicate = try await second.complete(
                reclaimed, .succeeded(output: "again", expert: nil), dependents: [], notifyOthers: false, finalize: finalize)
            #expect(duplicate == .rejected)

            let finished = try #require(try await store.runs.run(run.id, tenant: store.tenant.id))
            #expect(finished.steps.first?.output == "current")
            let types = try await store.events(of: run.id).map(\.type)
            #expect(types.filter { $0 == "step.succeeded" }.count == 1)
            #expect(types.contains("step.lease_expired"))
        }
    }

    @Test("a run whose last step committed but whose end did not is ended by the timers")
    func interruptedEndIsRecovered() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                "kind: Workflow\nname: ending\nsteps:\n  - id: only\n    wait_for: never\noutputs:\n  result: \"{{ steps.only.output }}\"\n")
            let run = try await store.start("ending")
            _ = try await store.wait(for: run.id, until: [.waiting])
            // What a process that stopped between the two transactions leaves behind.
            try await store.database.client.query(
                """
                UPDATE steps SET status = 'succeeded', output = '"done"'::jsonb, finished_at = now()
                WHERE tenant_id = \(store.tenant.id) AND run_id = \(run.id)
                """)
            try await store.database.client.query(
                "UPDATE runs SET remaining_steps = 0, status = 'running' WHERE tenant_id = \(store.tenant.id) AND id = \(run.id)")
            let ended = try await store.wait(for: run.id)
            #expect(ended.status == .succeeded)
            #expect(ended.output == ["result": "done"])
        }
    }

    @Test("claims take tenants in turn, by weight: one tenant's backlog does not hold up another's first step")
    func fairClaims() async throws {
        try await withTestStore { store in
            let workflow = "kind: Workflow\nname: one\nsteps:\n  - id: a\n    transform: x\n"
            try await store.apply(workflow)
            for _ in 0..<30 { _ = try await store.start("one") }
            // A second tenant, with one run, triggered after the whole backlog.
            let (other, key) = try await store.tenants.createTenant(name: "other-\(UUID().uuidString.prefix(8).lowercased())")
            let otherStore = TestStore(database: store.database, tenant: other, apiKey: key)
            try await otherStore.apply(workflow)
            let late = try await otherStore.start("one")

            let queue = StepQueue(database: store.database)
            let first = try await queue.claim(limit: 4, lease: .seconds(30))
            #expect(first.count == 4)
            #expect(first.contains { $0.runID == late.id })
            #expect(first.filter { $0.tenantID == store.tenant.id }.count == 3)

            // With weight 3 against 1, the busy tenant gets three turns per round.
            try await store.database.client.query("UPDATE tenants SET weight = 3 WHERE id = \(store.tenant.id)")
            for _ in 0..<3 { _ = try await otherStore.start("one") }
            let second = try await queue.claim(limit: 8, lease: .seconds(30))
            #expect(second.filter { $0.tenantID == store.tenant.id }.count == 6)
            #expect(second.filter { $0.tenantID == other.id }.count == 2)
        }
    }

    @Test("a claim takes a batch of ready steps in one statement, each only once")
    func batchClaim() async throws {
        try await withTestStore { store in
            try await store.apply("kind: Workflow\nname: wide\nsteps:\n  - id: a\n    transform: x\n  - id: b\n    transform: y\n")
            for _ in 0..<5 { _ = try await store.start("wide") }
            let one = StepQueue(database: store.database)
            let two = StepQueue(database: store.database)
            async let firstBatch = one.claim(limit: 6, lease: .seconds(30))
            async let secondBatch = two.claim(limit: 6, lease: .seconds(30))
            let (a, b) = try await (firstBatch, secondBatch)
            let keys = (a + b).map { "\($0.runID)/\($0.stepID)" }
            #expect(keys.count == 10)
            #expect(Set(keys).count == 10)
        }
    }
}

@Suite("Engine: child workflows")
struct EngineChildWorkflowTests {
    static let workflows = """
        kind: Workflow
        name: child
        inputs:
          name: { type: string, required: true }
          mood: { type: string, default: calm }
        steps:
          - id: greet
            prompt: "{{ inputs.mood }} {{ inputs.name }}"
        outputs:
          greeting: "{{ steps.greet.output }}"
        ---
        kind: Workflow
        name: parent
        inputs:
          mood: { type: string, default: calm }
        steps:
          - id: call
            workflow: child
            with: { name: "Ada", mood: "{{ inputs.mood }}" }
            timeout: 10s
          - id: after
            needs: [call]
            transform: "child said {{ steps.call.output.greeting }}"
        outputs:
          result: "{{ steps.after.output }}"
        """

    @Test("a workflow step runs the child to its end and outputs the child's outputs")
    func childSucceeds() async throws {
        try await withEngine(script: "- match: calm\n  reply: hello Ada") { store, _ in
            try await store.apply(Self.workflows)
            let run = try await store.wait(for: try await store.start("parent").id)
            #expect(run.status == .succeeded)
            #expect(run.output == ["result": "child said hello Ada"])
            let started = try #require(try await store.events(of: run.id).first { $0.type == "child.started" })
            let childID = try #require(UUID(uuidString: started.data["run"]?.stringValue ?? ""))
            let child = try #require(try await store.runs.run(childID, tenant: store.tenant.id))
            #expect(child.workflow == "child")
            #expect(child.status == .succeeded)
            #expect(child.input == ["name": "Ada", "mood": "calm"])
        }
    }

    @Test("a failed child fails the parent's step with `child_failed`")
    func childFails() async throws {
        try await withEngine(script: "- match: angry\n  fail: { status: 500, times: 100 }") { store, _ in
            try await store.apply(Self.workflows)
            let run = try await store.wait(for: try await store.start("parent", input: ["mood": "angry"]).id)
            #expect(run.status == .failed)
            #expect(run.steps.first?.error?.code == "child_failed")
        }
    }

    @Test("cancelling the parent cancels its running child")
    func cancelCascades() async throws {
        try await withEngine(script: "- match: slow\n  reply: late\n  delay: 5s") { store, _ in
            try await store.apply(Self.workflows)
            let run = try await store.start("parent", input: ["mood": "slow"])
            _ = try await store.wait(for: run.id, until: [.waiting])
            let started = try #require(try await store.events(of: run.id).first { $0.type == "child.started" })
            let childID = try #require(UUID(uuidString: started.data["run"]?.stringValue ?? ""))
            _ = try await store.runs.cancel(run.id, tenant: store.tenant.id)
            let child = try await store.wait(for: childID)
            #expect(child.status == .cancelled)
        }
    }
}
