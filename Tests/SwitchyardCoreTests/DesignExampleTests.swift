import Foundation
import Testing

@testable import SwitchyardCore

/// The original design's example workflow set (a tool, an agent and a workflow that uses
/// both), verbatim: it exercises most of the language at once.
let designExample = """
    kind: Tool
    name: search_kb
    description: Search the support knowledge base.
    http:
      method: POST
      url: https://kb.example.com/search
      headers: { Authorization: "Bearer {{ secrets.KB_TOKEN }}" }
      timeout: 10s
    parameters:                      # JSON Schema for the arguments
      type: object
      properties: { query: { type: string } }
      required: [query]
    ---
    kind: Tool
    name: post_reply
    description: Post the reply to the ticketing system.
    http: { method: POST, url: "https://tickets.example.com/replies", timeout: 5s }
    parameters: { type: object, properties: { text: { type: string } }, required: [text] }
    ---
    kind: Agent
    name: support-agent
    instructions: |
      You answer customer tickets using the knowledge base. Cite article ids.
    model: auto                      # flash | pro | auto | cascade
    tools: [search_kb]
    max_turns: 6
    ---
    kind: Workflow
    name: ticket-triage
    description: Classify a ticket, research it, draft a reply.
    inputs:
      ticket: { type: string, required: true }
      customer_tier: { type: string, default: standard }
    steps:
      - id: classify
        model: flash
        prompt: "Classify this ticket as JSON {category, difficulty}: {{ inputs.ticket }}"
        output: { type: object, properties: { category: {type: string}, difficulty: {enum: [easy, hard]} }, required: [category, difficulty] }
      - id: research
        needs: [classify]
        agent: support-agent
        prompt: "{{ inputs.ticket }}"
      - id: draft
        needs: [research]
        model: "{{ steps.classify.output.difficulty == 'hard' ? 'pro' : 'flash' }}"
        thinking: true
        prompt: "Draft a reply using: {{ steps.research.output }}"
        retry: { max_attempts: 3, backoff: exponential, initial: 2s }
        timeout: 2m
      - id: approve
        needs: [draft]
        if: "{{ inputs.customer_tier == 'enterprise' }}"
        wait_for: approval           # resumed by POST /v1/runs/{id}/signals/approval
      - id: notify
        needs: [draft, approve]
        tool: post_reply
        with: { text: "{{ steps.draft.output }}" }
    outputs:
      reply: "{{ steps.draft.output }}"
    """

@Suite struct DesignExampleTests {
    @Test func theDesignExampleLoadsIntoFourResources() throws {
        let docs = try ResourceLoader().load(designExample, file: "example.yaml")
        #expect(docs.map(\.name) == ["search_kb", "post_reply", "support-agent", "ticket-triage"])
        #expect(docs.map(\.kind) == [.tool, .tool, .agent, .workflow])

        guard case .tool(let search) = docs[0].resource, case .agent(let agent) = docs[2].resource,
            case .workflow(let workflow) = docs[3].resource
        else {
            Issue.record("unexpected resource kinds")
            return
        }
        #expect(search.http?.headers["Authorization"] == "Bearer {{ secrets.KB_TOKEN }}")
        #expect(search.http?.timeout == .seconds(10))
        #expect(search.parameters?["required"] == ["query"])
        #expect(agent.model == "auto")
        #expect(agent.tools == ["search_kb"])
        #expect(agent.maxTurns == 6)

        #expect(workflow.inputs.map(\.name) == ["ticket", "customer_tier"])
        #expect(workflow.inputs[1].defaultValue == "standard")
        #expect(workflow.steps.map(\.id) == ["classify", "research", "draft", "approve", "notify"])
        #expect(workflow.topologicalOrder() == ["classify", "research", "draft", "approve", "notify"])
        let draft = try #require(workflow.step("draft"))
        #expect(draft.retry == RetryPolicy(maxAttempts: 3, backoff: .exponential, initial: .seconds(2), max: .seconds(60)))
        #expect(draft.timeout == .seconds(120))
        #expect(draft.referencedSteps == ["classify", "research"])
        if case .model(let m) = draft.kind {
            #expect(m.thinking == true)
            let scope = TemplateScope(inputs: [:], steps: ["classify": ["difficulty": "hard"]])
            #expect(try m.model?.evaluate(scope) == "pro")
        } else {
            Issue.record("draft should be a model step")
        }
        #expect(workflow.step("approve")?.kind == .waitFor(WaitForSpec(signal: "approval")))
        #expect(workflow.outputs.map(\.name) == ["reply"])
        #expect(docs[3].source.hasPrefix("kind: Workflow\nname: ticket-triage\n"))
    }

    @Test func theDesignExampleValidatesWithItsTools() throws {
        #expect(validateError(designExample) == nil)
    }

    @Test func theDesignExampleWithoutToolUseApplies() throws {
        let withoutTools =
            designExample
            .replacingOccurrences(of: "tools: [search_kb]", with: "tools: []")
            .replacingOccurrences(
                of: "  - id: notify\n    needs: [draft, approve]\n    tool: post_reply\n    with: { text: \"{{ steps.draft.output }}\" }\n",
                with: "")
        #expect(withoutTools.count < designExample.count - 100)
        let docs = try ResourceLoader().loadAndValidate(withoutTools, file: "example.yaml", catalog: .empty)
        #expect(docs.count == 4)
        #expect(docs.filter { $0.kind == .tool }.count == 2)
    }
}
