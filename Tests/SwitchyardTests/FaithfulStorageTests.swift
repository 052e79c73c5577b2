import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import Testing

/// Outputs are stored as they are, U+0000 included (`jsonb` refuses it on its own), and
/// a write that fails for any reason but a lost lease never runs the work again.
@Suite("Storage: values are stored faithfully")
struct FaithfulStorageTests {
    @Test("a model answer holding U+0000 is stored as it is; the model is called and billed once and the run succeeds")
    func modelOutputWithNul() async throws {
        let script = """
            - match: "say it"
              reply: "before\\0after"
            """
        try await withEngine(script: script) { store, _ in
            try await store.apply(
                """
                kind: Workflow
                name: nul
                steps:
                  - id: ask
                    model: flash
                    prompt: say it
                  - id: echo
                    needs: [ask]
                    transform: "{{ steps.ask.output }}!"
                outputs:
                  answer: "{{ steps.echo.output }}"
                """)
            let run = try await store.wait(for: try await store.start("nul").id)
            #expect(run.status == .succeeded, "\(String(describing: run.error))")
            let ask = try #require(run.steps.first { $0.id == "ask" })
            #expect(ask.output == .string("before\u{0}after"))
            #expect(ask.attempts == 1)
            #expect(run.output == ["answer": .string("before\u{0}after!")])
            #expect(try await store.modelCalls(of: run.id).count == 1)
            let succeeded = try await store.events(of: run.id).filter { $0.type == "step.succeeded" }.compactMap(\.stepID)
            #expect(succeeded.sorted() == ["ask", "echo"])
        }
    }

    @Test("a tool answer holding U+0000 (in a value and a key) is stored as it is; the tool is called once")
    func toolOutputWithNul() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine(egress: ["127.0.0.1"]) { store, _ in
                try await store.apply(
                    """
                    kind: Tool
                    name: odd
                    description: Answers with a NUL character.
                    http: { method: GET, url: "\(kb.base)/nul", timeout: 2s }
                    ---
                    kind: Workflow
                    name: odd-tool
                    steps:
                      - id: call
                        tool: odd
                    """)
                let run = try await store.wait(for: try await store.start("odd-tool").id)
                #expect(run.status == .succeeded, "\(String(describing: run.error))")
                let output = try #require(run.steps.first?.output)
                #expect(output["text"] == .string("before\u{0}after"))
                #expect(output["\u{0}key"] == .int(1))
                #expect(kb.requests.filter { $0.path == "/nul" }.count == 1)
            }
        }
    }

    @Test("inputs, outputs and event data round-trip exactly, whatever control characters their strings and keys hold")
    func jsonRoundTrip() async throws {
        try await withEngine { store, _ in
            let tricky: [String] = ["\u{0}", "\u{1}", "\u{1}0", "\u{0}\u{1}\u{0}", "a\u{1}\u{1}b", "\u{1}", "end\u{1}", "\u{2}\u{1F}", "plain"]
            var object: [String: JSONValue] = [:]
            for (index, text) in tricky.enumerated() { object[text] = .array([.string(text), .int(index)]) }
            let value = JSONValue.object(object)
            var stored: JSONValue?
            for try await row in try await store.database.query("SELECT \(value)::jsonb").decode(JSONValue.self) {
                stored = row
            }
            #expect(stored == value)
            try await store.apply(
                """
                kind: Workflow
                name: echo
                inputs: { payload: { type: object } }
                steps:
                  - id: same
                    transform: "{{ inputs.payload }}"
                """)
            let run = try await store.wait(for: try await store.start("echo", input: ["payload": value]).id)
            #expect(run.input == ["payload": value])
            #expect(run.steps.first?.output == value)
        }
    }

    @Test("an outcome the database refuses fails the step with result_not_stored; the work (a billed model call) is not run again")
    func refusedOutcomeIsNotRunAgain() async throws {
        let script = """
            - match: "poison"
              reply: '{"poison": true}'
            """
        try await withEngine(script: script) { store, _ in
            // A constraint of the database's own refuses this output, as jsonb refused
            // U+0000 before: not a lost lease, not an outage.
            try await store.database.query(
                """
                ALTER TABLE steps ADD CONSTRAINT no_poison CHECK (output IS NULL OR output->>'poison' IS NULL) NOT VALID
                """)
            try await store.apply(
                """
                kind: Workflow
                name: refused
                steps:
                  - id: ask
                    model: flash
                    prompt: poison
                    output: { type: object }
                    retry: { max_attempts: 3 }
                """)
            let run = try await store.wait(for: try await store.start("refused").id)
            #expect(run.status == .failed)
            let ask = try #require(run.steps.first)
            #expect(ask.status == .failed)
            #expect(ask.error?.code == "result_not_stored")
            #expect(ask.attempts == 1)
            #expect(try await store.modelCalls(of: run.id).count == 1)
        }
    }
}
