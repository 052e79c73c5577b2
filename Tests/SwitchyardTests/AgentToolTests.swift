import Foundation
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import SwitchyardTools
import Synchronization
import Testing

/// Agents with tools over real HTTP on loopback: the loop model → tool calls → results
/// → answer, the tool errors a model can correct, and the limits that stop it.
@Suite struct AgentToolTests {
    static func resources(_ kb: KnowledgeBase) -> String {
        """
        kind: Tool
        name: search_kb
        description: Search the support knowledge base.
        http: { method: GET, url: "\(kb.base)/search", timeout: 2s }
        parameters:
          type: object
          properties: { q: { type: string, minLength: 2 } }
          required: [q]
        ---
        kind: Tool
        name: slow_lookup
        description: Looks something up, slowly.
        http: { method: GET, url: "\(kb.base)/slow", timeout: 300ms }
        ---
        kind: Agent
        name: support
        instructions: Answer customer questions using the knowledge base. Cite article ids.
        model: flash
        tools: [search_kb, slow_lookup, current_time]
        max_turns: 4
        ---
        kind: Workflow
        name: help
        inputs: { question: { type: string } }
        steps:
          - id: answer
            agent: support
            prompt: "{{ inputs.question }}"
        """
    }

    /// Rules match the whole conversation so far, first match wins: later turns are
    /// recognised by what the tools returned.
    static let script = """
        - match: kb-42
          reply: Refunds arrive within 5 working days (kb-42).
        - match: invalid_arguments
          tool_calls: [{ name: search_kb, arguments: { q: refund } }]
        - match: refund please
          tool_calls: [{ name: search_kb, arguments: { q: 5 } }]
        - match: '"code":"timeout"'
          reply: The lookup timed out; please try again later.
        - match: slow please
          tool_calls: [{ name: slow_lookup, arguments: {} }]
        - match: loop forever
          tool_calls: [{ name: current_time, arguments: {} }]
        """

    func toolEvents(_ store: TestStore, _ run: UUID) async throws -> [JSONValue] {
        try await store.events(of: run).filter { $0.type == "tool.called" }.map(\.data)
    }

    @Test func anAgentCallsToolsUntilItCanAnswerAndInvalidArgumentsGoBackToTheModel() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine(script: Self.script, egress: ["127.0.0.1"]) { store, _ in
                try await store.apply(Self.resources(kb))
                let run = try await store.wait(for: try await store.start("help", input: ["question": "A refund please"]).id)
                #expect(run.status == .succeeded)
                #expect(run.steps.first?.output == "Refunds arrive within 5 working days (kb-42).")
                let tools = try await toolEvents(store, run.id)
                #expect(tools.count == 2)
                #expect(tools.first?["ok"] == false)
                #expect(tools.first?["error"]?["code"] == "invalid_arguments")
                #expect(tools.last?["ok"] == true)
                #expect(tools.last?["turn"] == 2)
                // The invalid call never left the process; the valid one did, once.
                #expect(kb.requests.map(\.path) == ["/search"])
                #expect(kb.requests.first?.query == "q=refund")
                #expect(try await store.modelCalls(of: run.id).count == 3)
                let called = try await store.events(of: run.id).filter { $0.type == "model.called" }
                #expect(called.first?.data["tool_calls"] == ["search_kb"])
            }
        }
    }

    @Test func aToolTimeoutIsAToolErrorTheModelSees() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine(script: Self.script, egress: ["127.0.0.1"]) { store, _ in
                try await store.apply(Self.resources(kb))
                let run = try await store.wait(for: try await store.start("help", input: ["question": "slow please"]).id)
                #expect(run.status == .succeeded)
                #expect(run.steps.first?.output == "The lookup timed out; please try again later.")
                let tools = try await toolEvents(store, run.id)
                #expect(tools.first?["error"]?["code"] == "timeout")
                // Cut at the tool's 300ms, not the endpoint's 5s.
                let latency = try #require(tools.first?["latency_ms"]?.intValue)
                #expect(latency >= 300 && latency < 4_000, "latency \(latency) ms")
            }
        }
    }

    @Test func anAgentStillCallingToolsAtMaxTurnsFailsTheStep() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine(script: Self.script, egress: ["127.0.0.1"]) { store, _ in
                try await store.apply(Self.resources(kb))
                let run = try await store.wait(for: try await store.start("help", input: ["question": "loop forever"]).id)
                #expect(run.status == .failed)
                let step = try #require(run.steps.first)
                #expect(step.error?.code == "max_turns")
                #expect(step.error?.message.contains("max_turns (4)") == true)
                #expect(try await store.modelCalls(of: run.id).count == 4)
                #expect(try await toolEvents(store, run.id).count == 4)
            }
        }
    }

    @Test func aToolStepRunsWithoutAModel() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine(egress: ["127.0.0.1"]) { store, _ in
                try await store.apply(
                    Self.resources(kb) + """

                        ---
                        kind: Workflow
                        name: lookup
                        steps:
                          - id: search
                            tool: search_kb
                            with: { q: "{{ run.workflow }}" }
                          - id: first
                            needs: [search]
                            tool: json_query
                            with: { data: "{{ steps.search.output }}", path: "articles[0].id" }
                        outputs:
                          article: "{{ steps.first.output }}"
                        """)
                let run = try await store.wait(for: try await store.start("lookup").id)
                #expect(run.status == .succeeded)
                #expect(run.output == ["article": "kb-42"])
                #expect(kb.requests.first?.query == "q=lookup")
                #expect(try await store.modelCalls(of: run.id).isEmpty)
            }
        }
    }
}

/// HTTP tools refuse loopback, private, link-local and metadata addresses — also when
/// a host name resolves to one — unless the server's or the tenant's list allows them.
@Suite struct EgressTests {
    static func tool(_ url: String) -> String {
        """
        kind: Tool
        name: fetch
        http: { method: GET, url: "\(url)", timeout: 2s }
        ---
        kind: Workflow
        name: fetch
        steps:
          - { id: call, tool: fetch }
        """
    }

    @Test(arguments: [
        "http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/", "http://localhost:9/x", "http://[::1]:9/x",
    ])
    func privateDestinationsAreRefusedBeforeAnyConnection(url: String) async throws {
        try await withEngine { store, _ in
            try await store.apply(Self.tool(url))
            let run = try await store.wait(for: try await store.start("fetch").id)
            #expect(run.status == .failed)
            #expect(run.steps.first?.error?.code == "egress_denied")
        }
    }

    @Test func theTenantsOwnAllowListOpensAPrivateHost() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine { store, _ in
                try await store.apply(Self.tool(kb.base + "/search"))
                let refused = try await store.wait(for: try await store.start("fetch").id)
                #expect(refused.steps.first?.error?.code == "egress_denied")
                #expect(kb.requests.isEmpty)
                _ = try await store.tenants.updateSettings(tenant: store.tenant.id, TenantSettings(egressAllow: ["127.0.0.0/8"]))
                let allowed = try await store.wait(for: try await store.start("fetch").id)
                #expect(allowed.status == .succeeded)
                #expect(allowed.steps.first?.output?["articles"]?.arrayValue?.first?["id"] == "kb-42")
            }
        }
    }
}

/// Secrets reach the tool's request and nothing else: not events, not step errors,
/// not logs.
@Suite struct ToolSecretTests {
    static let resources = """
        kind: Workflow
        name: orders
        steps:
          - { id: call, tool: orders }
        """

    func tool(_ kb: KnowledgeBase) -> String {
        """
        kind: Tool
        name: orders
        http:
          method: GET
          url: "\(kb.base)/secure"
          headers: { Authorization: "Bearer {{ secrets.KB_TOKEN }}" }
        ---
        """ + "\n" + Self.resources
    }

    @Test func aHeaderSecretIsSentButNeverRecorded() async throws {
        let (logger, logs) = RecordingLogHandler.logger("test.secrets")
        try await KnowledgeBase.with { kb in
            try await withEngine(egress: ["127.0.0.1"], logger: logger) { store, _ in
                try await store.apply(tool(kb))
                let secrets = SecretRepository(database: store.database)
                let box = SecretBox(current: testSecretKey)
                // A wrong token first: the call fails, and the failure is logged and recorded.
                try await secrets.put(
                    tenant: store.tenant.id, name: "KB_TOKEN", ciphertext: try box.seal("wrong-token-51c2", tenant: store.tenant.id, name: "KB_TOKEN")
                )
                let failed = try await store.wait(for: try await store.start("orders").id)
                #expect(failed.status == .failed)
                #expect(failed.steps.first?.error?.code == "http_status")
                try await secrets.put(
                    tenant: store.tenant.id, name: "KB_TOKEN",
                    ciphertext: try box.seal(KnowledgeBase.token, tenant: store.tenant.id, name: "KB_TOKEN"))
                let run = try await store.wait(for: try await store.start("orders").id)
                #expect(run.status == .succeeded)
                #expect(run.steps.first?.output == ["ok": true, "orders": 3])
                #expect(kb.requests.last?.authorization == "Bearer \(KnowledgeBase.token)")

                var recorded = ""
                for id in [failed.id, run.id] {
                    let record = try #require(try await store.runs.run(id, tenant: store.tenant.id))
                    recorded += record.steps.map { "\($0.output ?? .null) \($0.error?.message ?? "")" }.joined()
                    recorded += try await store.events(of: id).map(\.data.compactJSON).joined()
                }
                recorded += logs()
                #expect(recorded.contains("http_status") || recorded.contains("401"))
                for secret in ["wrong-token-51c2", KnowledgeBase.token] {
                    #expect(!recorded.contains(secret))
                }
            }
        }
    }

    @Test func aMissingSecretFailsTheCallWithAnActionableMessage() async throws {
        try await KnowledgeBase.with { kb in
            try await withEngine(egress: ["127.0.0.1"]) { store, _ in
                try await store.apply(tool(kb))
                let run = try await store.wait(for: try await store.start("orders").id)
                #expect(run.steps.first?.error?.code == "secret_missing")
                #expect(run.steps.first?.error?.message.contains("PUT /v1/secrets/KB_TOKEN") == true)
                #expect(kb.requests.isEmpty)
            }
        }
    }
}
