import Foundation
import SwitchyardCore

/// The chat-completions wire format as DeepSeek (and vLLM, SGLang, llama.cpp, Ollama)
/// speak it. Only this file knows the JSON field names.
enum ChatCompletionsWire {
    // MARK: Request

    struct Request: Encodable {
        var model: String
        var messages: [Message]
        var tools: [Tool]?
        var tool_choice: JSONValue?
        var response_format: ResponseFormat?
        var max_tokens: Int?
        var temperature: Double?
        var stream: Bool
        var stream_options: StreamOptions?
        var user: String?
        var thinking: Thinking?
        var reasoning_effort: String?
    }

    struct ResponseFormat: Encodable { var type: String }
    struct StreamOptions: Encodable { var include_usage: Bool }
    struct Thinking: Encodable { var type: String }

    struct Message: Encodable {
        var role: String
        var content: String?
        var reasoning_content: String?
        var tool_calls: [ToolCallOut]?
        var tool_call_id: String?

        enum CodingKeys: String, CodingKey { case role, content, reasoning_content, tool_calls, tool_call_id }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(role, forKey: .role)
            // An assistant turn that only called tools sends `content: null`, as OpenAI's
            // reference clients do; the key itself is always present.
            if let content { try container.encode(content, forKey: .content) } else { try container.encodeNil(forKey: .content) }
            try container.encodeIfPresent(reasoning_content, forKey: .reasoning_content)
            try container.encodeIfPresent(tool_calls, forKey: .tool_calls)
            try container.encodeIfPresent(tool_call_id, forKey: .tool_call_id)
        }
    }

    struct ToolCallOut: Encodable {
        var id: String
        var type = "function"
        var function: FunctionCall
    }

    struct FunctionCall: Encodable {
        var name: String
        var arguments: String
    }

    struct Tool: Encodable {
        var type = "function"
        var function: Function
    }

    struct Function: Encodable {
        var name: String
        var description: String?
        var parameters: JSONValue
    }

    /// The request body for `request` against `model`. `defaults` fill in thinking and
    /// reasoning effort the request leaves open.
    static func body(
        for request: ModelRequest, model: String, thinking defaultThinking: Bool?, reasoningEffort defaultEffort: ReasoningEffort?
    ) throws -> Data {
        var messages = request.messages
        if request.wantsJSON, !messages.contains(where: { $0.content.range(of: "json", options: .caseInsensitive) != nil }) {
            // DeepSeek's JSON mode refuses a prompt without the word "json".
            if let index = messages.lastIndex(where: { $0.role == .user }) ?? messages.indices.last {
                messages[index].content += " Answer in json."
            }
        }
        let thinking = request.thinking ?? defaultThinking
        let effort = thinking == false ? nil : (request.reasoningEffort ?? defaultEffort)
        let wire = Request(
            model: model,
            messages: messages.map(Self.message),
            tools: request.tools.isEmpty
                ? nil
                : request.tools.map { Tool(function: Function(name: $0.name, description: $0.description, parameters: $0.parameters)) },
            tool_choice: request.toolChoice.map(Self.toolChoice),
            response_format: request.wantsJSON ? ResponseFormat(type: "json_object") : nil,
            max_tokens: request.maxTokens,
            temperature: request.temperature,
            stream: request.stream,
            stream_options: request.stream ? StreamOptions(include_usage: true) : nil,
            user: request.tenant.isEmpty ? nil : request.tenant,
            thinking: thinking.map { Thinking(type: $0 ? "enabled" : "disabled") },
            reasoning_effort: effort?.rawValue)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(wire)
    }

    private static func message(_ message: ChatMessage) -> Message {
        let calls = message.toolCalls.map { ToolCallOut(id: $0.id, function: FunctionCall(name: $0.name, arguments: $0.arguments)) }
        return Message(
            role: message.role.rawValue,
            content: message.content.isEmpty && !calls.isEmpty ? nil : message.content,
            reasoning_content: message.role == .assistant ? message.reasoning : nil,
            tool_calls: calls.isEmpty ? nil : calls,
            tool_call_id: message.role == .tool ? message.toolCallID : nil)
    }

    private static func toolChoice(_ choice: ToolChoice) -> JSONValue {
        switch choice {
        case .auto: "auto"
        case .none: "none"
        case .required: "required"
        case .function(let name): ["type": "function", "function": ["name": .string(name)]]
        }
    }

    // MARK: Responses

    struct Usage: Decodable {
        var prompt_tokens: Int?
        var completion_tokens: Int?
        var prompt_cache_hit_tokens: Int?
        var prompt_cache_miss_tokens: Int?
        var prompt_tokens_details: PromptDetails?
        var completion_tokens_details: CompletionDetails?

        struct PromptDetails: Decodable { var cached_tokens: Int? }
        struct CompletionDetails: Decodable { var reasoning_tokens: Int? }

        /// DeepSeek's fields first, OpenAI's `cached_tokens` otherwise. The prompt is
        /// hit + miss and the completion already includes reasoning: nothing is added twice.
        var tokenUsage: ReportedUsage {
            let hit = prompt_cache_hit_tokens ?? prompt_tokens_details?.cached_tokens ?? 0
            let prompt = prompt_tokens ?? (hit + (prompt_cache_miss_tokens ?? 0))
            let miss = prompt_cache_miss_tokens ?? max(0, prompt - hit)
            return ReportedUsage(
                promptTokens: prompt, completionTokens: completion_tokens ?? 0, cacheHitTokens: hit, cacheMissTokens: miss,
                reasoningTokens: completion_tokens_details?.reasoning_tokens ?? 0)
        }
    }

    /// `arguments` is JSON text in OpenAI's format; a few servers send an object.
    struct Arguments: Decodable {
        var text: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self.text = text
            } else {
                self.text = try container.decode(JSONValue.self).compactJSON
            }
        }
    }

    struct FunctionIn: Decodable {
        var name: String?
        var arguments: Arguments?
    }

    struct ToolCallIn: Decodable {
        var index: Int?
        var id: String?
        var function: FunctionIn?
    }

    struct MessageIn: Decodable {
        var content: String?
        var reasoning_content: String?
        var tool_calls: [ToolCallIn]?
    }

    struct Choice: Decodable {
        var index: Int?
        var message: MessageIn?
        var delta: MessageIn?
        var finish_reason: String?
    }

    /// A whole answer (`chat.completion`) or one streamed chunk (`chat.completion.chunk`).
    struct Completion: Decodable {
        var model: String?
        var choices: [Choice]?
        var usage: Usage?
        var error: ErrorBody.Detail?
    }

    /// `{"error": {"message": …}}` (OpenAI, DeepSeek) or `{"message": …}` (vLLM) or
    /// `{"detail": …}` (some proxies).
    struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var message: String?
            var type: String?
        }

        var error: Detail?
        var message: String?
        var detail: String?

        static func message(in data: Data) -> String? {
            guard let body = try? JSONDecoder().decode(ErrorBody.self, from: data) else { return nil }
            return body.error?.message ?? body.message ?? body.detail
        }
    }
}
