import Foundation
import SwitchyardCore

/// One message of a chat-style model request.
///
/// Besides plain text it carries what a tool-using conversation needs to be replayed
/// to the provider: the tool calls an assistant turn made, the reasoning that turn
/// produced (DeepSeek's thinking mode refuses a later request whose tool-call turns
/// lack it), and for a `tool` message the id of the call it answers.
public struct ChatMessage: Sendable, Hashable, Codable {
    public enum Role: String, Sendable, Hashable, Codable {
        case system, user, assistant, tool
    }

    public var role: Role
    /// The text. An assistant turn that only made tool calls has empty content.
    public var content: String
    /// The assistant turn's `reasoning_content`, kept so that it can be sent back.
    public var reasoning: String?
    /// The tool calls an assistant turn made.
    public var toolCalls: [ToolCall]
    /// For a `tool` message: the id of the call whose result this is.
    public var toolCallID: String?

    public init(_ role: Role, _ content: String, reasoning: String? = nil, toolCalls: [ToolCall] = [], toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.reasoning = reasoning
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }

    /// The result of a tool call, to send back after the assistant turn that made it.
    public static func toolResult(callID: String, _ content: String) -> ChatMessage {
        ChatMessage(.tool, content, toolCallID: callID)
    }

    enum CodingKeys: String, CodingKey {
        case role, content, reasoning
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        role = try container.decode(Role.self, forKey: .role)
        content = try container.decodeIfPresent(String.self, forKey: .content) ?? ""
        reasoning = try container.decodeIfPresent(String.self, forKey: .reasoning)
        toolCalls = try container.decodeIfPresent([ToolCall].self, forKey: .toolCalls) ?? []
        toolCallID = try container.decodeIfPresent(String.self, forKey: .toolCallID)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(role, forKey: .role)
        try container.encode(content, forKey: .content)
        try container.encodeIfPresent(reasoning, forKey: .reasoning)
        if !toolCalls.isEmpty { try container.encode(toolCalls, forKey: .toolCalls) }
        try container.encodeIfPresent(toolCallID, forKey: .toolCallID)
    }
}

/// A function call a model asked for. `arguments` stays the JSON text the model
/// wrote: it may be invalid, and validating it is the tool runner's job, which answers
/// the model with the problem instead of failing the step.
public struct ToolCall: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var arguments: String

    public init(id: String, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }
}

/// A function the model may call, described for the provider.
public struct FunctionDefinition: Sendable, Hashable {
    public var name: String
    public var description: String?
    /// The JSON Schema of the arguments object.
    public var parameters: JSONValue

    public init(name: String, description: String? = nil, parameters: JSONValue = ["type": "object", "properties": [:]]) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }
}

/// Whether and which tool the model must call (`tool_choice`).
public enum ToolChoice: Sendable, Hashable {
    case auto
    case none
    case required
    case function(String)
}

/// DeepSeek's `reasoning_effort`: how long thinking mode may think.
public enum ReasoningEffort: String, Sendable, Hashable, Codable, CaseIterable {
    case low, high, max
}

/// What a model step asks of an expert.
public struct ModelRequest: Sendable, Hashable {
    public var messages: [ChatMessage]
    /// Functions the model may call; empty for a plain completion.
    public var tools: [FunctionDefinition]
    public var toolChoice: ToolChoice?
    public var maxTokens: Int?
    /// Ignored by DeepSeek in thinking mode.
    public var temperature: Double?
    /// Thinking mode on or off; nil leaves it to the expert's configuration, then the provider.
    public var thinking: Bool?
    /// Nil leaves it to the expert's configuration, then the provider.
    public var reasoningEffort: ReasoningEffort?
    /// Ask for a JSON object as the answer (the step declares an `output` schema).
    public var wantsJSON: Bool
    /// Stream the answer. Streaming keeps a long answer alive under an idle timeout
    /// and lets a cut be told apart from a slow model; providers that do not stream ignore it.
    public var stream: Bool
    /// The tenant the call is made for; providers pass it on for cache isolation.
    public var tenant: String

    public init(
        messages: [ChatMessage], tools: [FunctionDefinition] = [], toolChoice: ToolChoice? = nil, maxTokens: Int? = nil,
        temperature: Double? = nil, thinking: Bool? = nil, reasoningEffort: ReasoningEffort? = nil, wantsJSON: Bool = false,
        stream: Bool = true, tenant: String
    ) {
        self.messages = messages
        self.tools = tools
        self.toolChoice = toolChoice
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.thinking = thinking
        self.reasoningEffort = reasoningEffort
        self.wantsJSON = wantsJSON
        self.stream = stream
        self.tenant = tenant
    }

    /// The user-visible prompt: the text of the last user message.
    public var prompt: String {
        messages.last { $0.role == .user }?.content ?? ""
    }

    /// An upper bound of the prompt's tokens for a budget reservation: the UTF-8 bytes
    /// of everything the provider tokenizes (messages with their reasoning and tool
    /// calls, and tool definitions) as JSON, plus a margin per message for the chat
    /// template's own tokens. A token never covers less than a byte.
    public var promptByteBound: Int {
        let encoder = JSONEncoder()
        let messageBytes =
            (try? encoder.encode(messages).count)
            ?? messages.reduce(0) { total, message in
                total + message.content.utf8.count + (message.reasoning?.utf8.count ?? 0)
                    + message.toolCalls.reduce(0) { $0 + $1.name.utf8.count + $1.arguments.utf8.count + $1.id.utf8.count }
            }
        let toolBytes = tools.reduce(0) { total, tool in
            total + tool.name.utf8.count + (tool.description?.utf8.count ?? 0) + tool.parameters.compactJSON.utf8.count + 64
        }
        return messageBytes + toolBytes + 32 * (messages.count + 1)
    }
}

/// Token counts reported for one call, as the provider bills them.
///
/// `promptTokens` already is `cacheHitTokens + cacheMissTokens`, and
/// `completionTokens` already includes `reasoningTokens`: the parts say how the whole
/// is priced, never add them to it. When `usageKnown` is false the provider never
/// reported usage (a stream cut before its last chunk); the counts are then only what
/// was known, and the call must be metered as unknown rather than as these numbers.
public struct ReportedUsage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var cacheHitTokens: Int
    public var cacheMissTokens: Int
    public var reasoningTokens: Int
    public var usageKnown: Bool

    public init(
        promptTokens: Int, completionTokens: Int, cacheHitTokens: Int = 0, cacheMissTokens: Int = 0, reasoningTokens: Int = 0,
        usageKnown: Bool = true
    ) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.cacheHitTokens = cacheHitTokens
        self.cacheMissTokens = cacheMissTokens
        self.reasoningTokens = reasoningTokens
        self.usageKnown = usageKnown
    }

    public static let zero = ReportedUsage(promptTokens: 0, completionTokens: 0)

    public var totalTokens: Int { promptTokens + completionTokens }

    /// The sum of two calls' usage; unknown if either is.
    public static func + (lhs: ReportedUsage, rhs: ReportedUsage) -> ReportedUsage {
        ReportedUsage(
            promptTokens: lhs.promptTokens + rhs.promptTokens, completionTokens: lhs.completionTokens + rhs.completionTokens,
            cacheHitTokens: lhs.cacheHitTokens + rhs.cacheHitTokens, cacheMissTokens: lhs.cacheMissTokens + rhs.cacheMissTokens,
            reasoningTokens: lhs.reasoningTokens + rhs.reasoningTokens, usageKnown: lhs.usageKnown && rhs.usageKnown)
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case cacheHitTokens = "cache_hit_tokens"
        case cacheMissTokens = "cache_miss_tokens"
        case reasoningTokens = "reasoning_tokens"
        case usageKnown = "usage_known"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        promptTokens = try container.decode(Int.self, forKey: .promptTokens)
        completionTokens = try container.decode(Int.self, forKey: .completionTokens)
        cacheHitTokens = try container.decodeIfPresent(Int.self, forKey: .cacheHitTokens) ?? 0
        cacheMissTokens = try container.decodeIfPresent(Int.self, forKey: .cacheMissTokens) ?? 0
        reasoningTokens = try container.decodeIfPresent(Int.self, forKey: .reasoningTokens) ?? 0
        usageKnown = try container.decodeIfPresent(Bool.self, forKey: .usageKnown) ?? true
    }
}

/// An expert's answer.
public struct ModelResponse: Sendable, Hashable {
    public var text: String
    /// The `reasoning_content` of thinking mode, if the model produced any.
    public var reasoning: String?
    /// The functions the model asked to call; a turn with calls usually has no text.
    public var toolCalls: [ToolCall]
    /// Why the model stopped, as the provider says it (`stop`, `length`, `tool_calls`, …).
    public var finishReason: String?
    /// The model that answered, as the provider names it (the billed model).
    public var model: String
    public var usage: ReportedUsage

    public init(
        text: String, reasoning: String? = nil, toolCalls: [ToolCall] = [], finishReason: String? = nil, model: String, usage: ReportedUsage
    ) {
        self.text = text
        self.reasoning = reasoning
        self.toolCalls = toolCalls
        self.finishReason = finishReason
        self.model = model
        self.usage = usage
    }

    /// This answer as the assistant turn of the next request, reasoning included, so
    /// that a tool-call loop in thinking mode sends back what DeepSeek requires.
    public var assistantMessage: ChatMessage {
        ChatMessage(.assistant, text, reasoning: reasoning, toolCalls: toolCalls)
    }
}

/// A named model endpoint of the MoE runtime (`flash`, `pro`, …). Providers implement
/// it; the engine only sees this protocol.
public protocol Expert: Sendable {
    /// The expert's name in workflows and reports (`flash`).
    var name: String { get }
    /// The model it calls, as configured.
    var model: String { get }
    func complete(_ request: ModelRequest) async throws(ExpertError) -> ModelResponse
    /// The same call, handing out the answer's text as it streams in (for live
    /// `model.delta` events). Experts that cannot stream answer in one piece.
    func complete(_ request: ModelRequest, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse
    /// How many billed requests one `complete(request)` may send to the provider: an
    /// expert that asks again on its own (and is billed for every answer) says so here,
    /// so that a budget reservation and a cost plan bound the whole call, not only its
    /// first answer. It never counts retries the provider does not bill.
    func billedAttempts(for request: ModelRequest) -> Int
}

extension Expert {
    public func complete(_ request: ModelRequest, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse {
        try await complete(request)
    }

    /// One: an expert that does not re-ask on its own (the local and scripted ones) is
    /// billed for at most the one answer it returns. Experts that retry billed
    /// answers must implement the requirement.
    public func billedAttempts(for request: ModelRequest) -> Int { 1 }
}

/// A piece of an answer as it streams in.
public struct ModelDelta: Sendable, Hashable {
    public var text: String
    public var reasoning: String

    public init(text: String, reasoning: String = "") {
        self.text = text
        self.reasoning = reasoning
    }
}

/// Receives deltas in order; it must return quickly (it runs on the reading task).
public typealias DeltaHandler = @Sendable (ModelDelta) -> Void

/// A failed model call. `status` is the HTTP-like status the provider answered with,
/// when there was one; `usage` is what the provider reported before failing, if
/// anything (summed over attempts the provider billed).
///
/// `billed` says whether the provider may have charged for the failed call: a request
/// that was sent and then timed out, was cancelled or was cut is billed by DeepSeek
/// even though no answer arrived. Callers retrying a billed failure spend money
/// again, so they decide with it (and with `isRetryable`).
public struct ExpertError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The provider answered with an error status.
        case providerError = "provider_error"
        case timeout
        case unreachable
        case badResponse = "bad_response"
        case unknownExpert = "unknown_expert"
        /// HTTP 429 that outlasted the retries.
        case rateLimited = "rate_limited"
        /// HTTP 503 that outlasted the retries.
        case overloaded
        /// JSON mode answered blank content every time it was asked (DeepSeek's way of
        /// saying it could not produce valid JSON).
        case blankJSON = "blank_json"
        /// The answer stream ended before the provider reported usage.
        case streamCut = "stream_cut"
        /// HTTP 400: thinking mode needs the `reasoning_content` of earlier tool-call turns.
        case reasoningContentMissing = "reasoning_content_missing"
        /// The provider refused the request as malformed (HTTP 400/422 other than the above).
        case badRequest = "bad_request"
        /// The provider refused the credentials (HTTP 401/403) or none are configured.
        case unauthorized
        /// Every slot of the expert's bulkhead stayed busy for its whole queue timeout.
        case queueTimeout = "queue_timeout"
        /// The calling task was cancelled.
        case cancelled
    }

    public var code: Code
    public var message: String
    public var status: Int?
    public var usage: ReportedUsage?
    /// The provider may have charged for this call (see the type's comment).
    public var billed: Bool

    public init(_ code: Code, _ message: String, status: Int? = nil, usage: ReportedUsage? = nil, billed: Bool = false) {
        self.code = code
        self.message = message
        self.status = status
        self.usage = usage
        self.billed = billed
    }

    /// Whether the same request may succeed later. A malformed request, a refused key
    /// or a conversation missing its reasoning fails the same way every time.
    public var isRetryable: Bool {
        switch code {
        case .unknownExpert, .badRequest, .reasoningContentMissing, .unauthorized, .cancelled: false
        case .providerError: (status ?? 500) >= 500
        case .timeout, .unreachable, .badResponse, .rateLimited, .overloaded, .blankJSON, .streamCut, .queueTimeout: true
        }
    }

    public var description: String { message }
}

/// The experts of one server, by name.
public struct ExpertPool: Sendable {
    public var experts: [String: any Expert]

    public init(_ experts: [any Expert]) {
        self.experts = Dictionary(experts.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public func expert(named name: String) throws(ExpertError) -> any Expert {
        guard let expert = experts[name] else {
            let known = experts.keys.sorted().joined(separator: ", ")
            throw ExpertError(.unknownExpert, "no expert named \(name) is configured (configured: \(known))")
        }
        return expert
    }

    public var names: [String] { experts.keys.sorted() }
}
