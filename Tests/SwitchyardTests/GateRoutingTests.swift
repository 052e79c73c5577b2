import Foundation
import SwitchyardCore
import SwitchyardEngine
import SwitchyardGate
import SwitchyardStore
import Testing

/// The gate as the engine uses it: every model step records which expert ran it and
/// why; `cascade` escalates exactly when flash's answer fails its checks; and what the
/// gate learns is kept in PostgreSQL.
@Suite struct GateRoutingTests {
    func route(of step: String, in run: RunRecord) throws -> JSONValue {
        let found = try #require(run.steps.first { $0.id == step })
        return try #require(found.route)
    }

    @Test func aFixedChoiceIsRecordedOnTheStepWithItsReason() async throws {
        try await withEngine(script: "- match: Capital\n  reply: Paris") { store, _ in
            try await store.apply("kind: Workflow\nname: fixed\nsteps:\n  - id: answer\n    model: pro\n    prompt: Capital of France?\n")
            let run = try await store.wait(for: try await store.start("fixed").id)
            #expect(run.status == .succeeded)
            let route = try route(of: "answer", in: run)
            #expect(route["policy"] == "fixed")
            #expect(route["expert"] == "pro")
            #expect(route["escalated"] == false)
            #expect(route["reasons"]?.arrayValue?.isEmpty == false)
            let routed = try await store.events(of: run.id).filter { $0.type == "model.routed" }
            #expect(routed.count == 1)
            #expect(routed.first?.data["expert"] == "pro")
        }
    }

    @Test func autoComparesTheScoreWithTheTenantsThreshold() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                "kind: Workflow\nname: auto\nsteps:\n  - id: answer\n    model: auto\n    prompt: Prove that the square root of 2 is irrational.\n")
            // The lowest threshold sends everything to pro, the highest nothing.
            for (threshold, expert) in [(-1.0, "pro"), (1.0, "flash")] {
                _ = try await store.tenants.updateSettings(tenant: store.tenant.id, TenantSettings(gateThreshold: threshold))
                let run = try await store.wait(for: try await store.start("auto").id)
                let route = try route(of: "answer", in: run)
                #expect(route["policy"] == "auto")
                #expect(route["expert"]?.stringValue == expert)
                #expect(route["threshold"]?.doubleValue == threshold)
                #expect(route["score"]?.doubleValue != nil)
                #expect(route["reasons"]?.arrayValue?.isEmpty == false)
                #expect(run.steps.first?.expert == expert)
            }
        }
    }

    @Test func aDeclaredHardDifficultyRaisesTheScore() async throws {
        try await withEngine { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: hinted
                steps:
                  - { id: plain, model: auto, prompt: "Summarise the ticket." }
                  - { id: hard, model: auto, difficulty: hard, prompt: "Summarise the ticket." }
                """)
            let run = try await store.wait(for: try await store.start("hinted").id)
            let plain = try #require(try route(of: "plain", in: run)["score"]?.doubleValue)
            let hard = try #require(try route(of: "hard", in: run)["score"]?.doubleValue)
            #expect(hard > plain)
            #expect(try route(of: "hard", in: run)["reasons"]?.arrayValue?.contains { $0.stringValue?.contains("hard") == true } == true)
        }
    }

    static let cascadeScript = """
        - match: "Is this right: 42"
          reply: "yes"
        - match: "Is this right"
          reply: "no, that is wrong"
        - match: Capital
          expert: flash
          reply: Lyon
        - match: Capital
          expert: pro
          reply: Paris
        - match: Sum
          expert: flash
          reply: "not json at all"
        - match: Sum
          expert: pro
          reply: '{"sum": 4}'
        - match: Answer
          expert: flash
          reply: "41"
        - match: Answer
          expert: pro
          reply: "42"
        """

    @Test func cascadeEscalatesWhenFlashsAnswerFailsTheCheck() async throws {
        try await withEngine(script: Self.cascadeScript) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: capital
                steps:
                  - id: answer
                    model: cascade
                    prompt: Capital of France?
                    check: "{{ output == 'Paris' }}"
                """)
            let run = try await store.wait(for: try await store.start("capital").id)
            #expect(run.status == .succeeded)
            let step = try #require(run.steps.first)
            #expect(step.output == "Paris")
            #expect(step.expert == "pro")
            let route = try route(of: "answer", in: run)
            #expect(route["policy"] == "cascade")
            #expect(route["escalated"] == true)
            #expect(route["expert"] == "pro")
            #expect(route["reasons"]?.arrayValue?.contains { $0.stringValue?.contains("check_failed") == true } == true)
            let calls = try await store.events(of: run.id).filter { $0.type == "model.called" }.compactMap { $0.data["expert"]?.stringValue }
            #expect(calls == ["flash", "pro"])
        }
    }

    @Test func cascadeKeepsFlashsAnswerWhenItPasses() async throws {
        try await withEngine(script: Self.cascadeScript) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: capital
                steps:
                  - id: answer
                    model: cascade
                    prompt: Capital of France?
                    check: "{{ output | length > 2 }}"
                """)
            let run = try await store.wait(for: try await store.start("capital").id)
            #expect(run.steps.first?.output == "Lyon")
            let route = try route(of: "answer", in: run)
            #expect(route["escalated"] == false)
            #expect(route["expert"] == "flash")
            #expect(try await store.modelCalls(of: run.id).count == 1)
        }
    }

    @Test func cascadeEscalatesAnAnswerThatBreaksTheOutputSchema() async throws {
        try await withEngine(script: Self.cascadeScript) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: sum
                steps:
                  - id: answer
                    model: cascade
                    prompt: Sum 2 and 2.
                    output: { type: object, properties: { sum: { type: integer } }, required: [sum] }
                """)
            let run = try await store.wait(for: try await store.start("sum").id)
            #expect(run.status == .succeeded)
            #expect(run.steps.first?.output == ["sum": 4])
            #expect(try route(of: "answer", in: run)["escalated"] == true)
        }
    }

    @Test func cascadeAsksFlashTheVerifyQuestionAboutEachAnswer() async throws {
        try await withEngine(script: Self.cascadeScript) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: verified
                steps:
                  - id: answer
                    model: cascade
                    prompt: Answer the question.
                    verify: "Is this right: {{ output }}"
                """)
            let run = try await store.wait(for: try await store.start("verified").id)
            #expect(run.steps.first?.output == "42")
            #expect(try route(of: "answer", in: run)["escalated"] == true)
            // flash answers, flash verifies (no), pro answers, flash verifies (yes).
            let calls = try await store.events(of: run.id).filter { $0.type == "model.called" }.compactMap { $0.data["expert"]?.stringValue }
            #expect(calls == ["flash", "flash", "pro", "flash"])
        }
    }

    @Test func everyCascadeCheckIsAnOutcomeTheGateLearns() async throws {
        try await withEngine(script: Self.cascadeScript) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: capital
                steps:
                  - { id: answer, model: cascade, prompt: Capital of France?, check: "{{ output == 'Paris' }}" }
                """)
            _ = try await store.wait(for: try await store.start("capital").id)
            let history = try await GateRepository(database: store.database).history(tenant: store.tenant.id, stepKey: "capital/answer")
            #expect(history.flashFailures > 0)
            #expect(history.proSuccesses > 0)
            #expect(history.flashSuccesses == 0)
        }
    }

    @Test func feedbackChangesLaterDecisionsAndSurvivesARestart() async throws {
        try await withTestStore { store in
            try await store.apply("kind: Workflow\nname: learn\nsteps:\n  - id: answer\n    model: auto\n    prompt: Write a haiku about queues.\n")
            // Just above what the gate scores this step with nothing learned: flash.
            let request = GateRequest(prompt: "Write a haiku about queues.", stepKey: "learn/answer")
            let initial = Gate().score(request, history: .empty).score
            _ = try await store.tenants.updateSettings(tenant: store.tenant.id, TenantSettings(gateThreshold: initial + 0.01))
            let gateHistory = GateRepository(database: store.database)
            let flipped = try await withEngine(on: store) { _ in
                for _ in 0..<12 {
                    let run = try await store.wait(for: try await store.start("learn").id)
                    guard try route(of: "answer", in: run)["expert"] == "flash" else { return true }
                    let result = try await gateHistory.feedback(tenant: store.tenant.id, run: run.id, step: "answer", good: false)
                    #expect(result == .recorded(expert: "flash", learned: true))
                    // The same verdict twice is learned once.
                    #expect(
                        try await gateHistory.feedback(tenant: store.tenant.id, run: run.id, step: "answer", good: false)
                            == .recorded(expert: "flash", learned: false))
                }
                return false
            }
            #expect(flipped, "bad feedback on flash's answers should move the step to pro")
            // A new engine (a restarted server) reads what was learned from PostgreSQL.
            try await withEngine(on: store) { _ in
                let run = try await store.wait(for: try await store.start("learn").id)
                #expect(try route(of: "answer", in: run)["expert"] == "pro")
                let reasons = try route(of: "answer", in: run)["reasons"]?.arrayValue ?? []
                #expect(reasons.contains { $0.stringValue?.contains("flash") == true })
            }
        }
    }
}
