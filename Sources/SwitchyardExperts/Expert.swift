import SwitchyardCore

/// One message of a chat-style model request.
public struct ChatMessage: Sendable, Hashable, Codable {
    public enum Role: String, Sendable, Hashable, Codable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(_ role: Role, _ content: String) {
        self.role = role
        self.content = content
    }
}

/// What a model step asks of an expert.
public struct ModelRequest: Sendable, Hashable {
    public var messages: [ChatMessage]
    public var maxTokens: Int?
    public var thinking: Bool?
    /// Ask for a JSON object as the answer (the step declares an `output` schema).
    public var wantsJSON: Bool
    /// The tenant the call is made for; providers pass it on for cache isolation.
    public var tenant: String

    public init(messages: [ChatMessage], maxTokens: Int? = nil, thinking: Bool? = nil, wantsJSON: Bool = false, tenant: String) {
        self.messages = messages
        self.maxTokens = maxTokens
        self.thinking = thinking
        self.wantsJSON = wantsJSON
        self.tenant = tenant
    }

    /// The user-visible prompt: the text of the last user message.
    public var prompt: String {
        messages.last { $0.role == .user }?.content ?? ""
    }
}

/// Token counts reported for one call.
public struct TokenUsage: Sendable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }
}

/// An expert's answer.
public struct ModelResponse: Sendable, Hashable {
    public var text: String
    /// The model that answered, as the provider names it (the billed model).
    public var model: String
    public var usage: TokenUsage

    public init(text: String, model: String, usage: TokenUsage) {
        self.text = text
        self.model = model
        self.usage = usage
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
}

/// A failed model call. `status` is the HTTP-like status the provider answered with,
/// when there was one; `usage` is what the provider reported before failing, if anything.
public struct ExpertError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The provider answered with an error status.
        case providerError = "provider_error"
        case timeout
        case unreachable
        case badResponse = "bad_response"
        case unknownExpert = "unknown_expert"
    }

    public var code: Code
    public var message: String
    public var status: Int?
    public var usage: TokenUsage?

    public init(_ code: Code, _ message: String, status: Int? = nil, usage: TokenUsage? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.usage = usage
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
