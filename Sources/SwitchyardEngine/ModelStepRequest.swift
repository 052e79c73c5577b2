import Foundation
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate

/// The requests one model step sends, built in one place for the step runner and for
/// the cost planner: a plan must price the very text a run sends, so neither may build
/// its own (they drifted apart before, and the plan priced a request the run never sent).
///
/// The conversation is the agent's instructions and the step's JSON-output instruction
/// as one system message, then the rendered prompt; an agent's later turns add the
/// model's answers and the tool results, which only the runner knows.
struct ModelStepRequest: Sendable {
    let step: ModelStepSpec
    let agent: AgentSpec?
    /// The agent's tools as the model sees them, in the agent's order.
    let tools: [FunctionDefinition]
    /// The tenant the calls are made for (providers use it for cache isolation).
    let tenant: UUID
    /// The completion cap when the step sets none: a reservation needs a bound.
    let defaultMaxTokens: Int

    /// The completion cap of every answer of the step.
    var maxTokens: Int { step.maxTokens ?? defaultMaxTokens }

    /// How many model calls one answer may take: one without tools, else the agent's
    /// `max_turns` (at least one).
    var maxTurns: Int { tools.isEmpty ? 1 : max(1, agent?.maxTurns ?? 1) }

    /// The system message (agent instructions, JSON-output instruction) and the prompt.
    func openingMessages(prompt: String) -> [ChatMessage] {
        var system: [String] = []
        if let agent { system.append(agent.instructions) }
        if let schema = step.output {
            system.append("Answer with a single JSON value (json) that satisfies this JSON Schema: \(schema.compactJSON)")
        }
        var messages: [ChatMessage] = []
        if !system.isEmpty { messages.append(ChatMessage(.system, system.joined(separator: "\n\n"))) }
        messages.append(ChatMessage(.user, prompt))
        return messages
    }

    /// One turn's request over the conversation so far.
    func request(_ messages: [ChatMessage]) -> ModelRequest {
        ModelRequest(
            messages: messages, tools: tools, maxTokens: maxTokens, thinking: step.thinking, wantsJSON: step.output != nil,
            tenant: tenant.lowercasedString)
    }

    /// The first turn's request: what every answer of the step starts with.
    func firstRequest(prompt: String) -> ModelRequest {
        request(openingMessages(prompt: prompt))
    }

    /// What the `auto` gate scores for this step.
    func gateRequest(prompt: String, stepKey: String) -> GateRequest {
        GateRequest(
            prompt: prompt, system: agent?.instructions, stepKey: stepKey, difficulty: step.difficulty,
            thinking: step.thinking ?? false, outputSchema: step.output, toolCount: tools.count)
    }

    /// The completion cap of a `verify` call: a yes or a no, and one sentence.
    static let verificationMaxTokens = 64

    /// The `verify` call: flash is asked the step's question about an answer.
    static func verification(_ question: String, tenant: UUID) -> ModelRequest {
        ModelRequest(
            messages: [
                ChatMessage(.system, "You check another model's answer. Reply with one word, yes or no, then optionally one sentence why."),
                ChatMessage(.user, question),
            ],
            maxTokens: verificationMaxTokens, tenant: tenant.lowercasedString)
    }
}
