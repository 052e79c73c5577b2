import Foundation
import SwitchyardCore
import Synchronization
import Yams

/// One rule of a scripted expert's fixture file.
public struct ScriptRule: Sendable, Hashable {
    public enum Matcher: Sendable, Hashable {
        case substring(String)
        case regex(String)
    }

    public var matcher: Matcher
    /// Only this expert (`pro`) answers with the rule; nil: any expert.
    public var expert: String?
    public var reply: String?
    /// Tool calls to answer with (an agent turn), instead of a final answer.
    public var toolCalls: [ToolCall] = []
    public var usage: ReportedUsage?
    public var delay: TimeSpan?
    /// Fail this many calls with this status, then fall through to the next rules.
    public var failure: (status: Int, times: Int)?

    public static func == (lhs: ScriptRule, rhs: ScriptRule) -> Bool {
        lhs.matcher == rhs.matcher && lhs.expert == rhs.expert && lhs.reply == rhs.reply && lhs.toolCalls == rhs.toolCalls
            && lhs.usage == rhs.usage && lhs.delay == rhs.delay
            && lhs.failure?.status == rhs.failure?.status && lhs.failure?.times == rhs.failure?.times
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(matcher)
        hasher.combine(reply)
    }

    func matches(_ text: String) -> Bool {
        switch matcher {
        case .substring(let needle):
            return text.contains(needle)
        case .regex(let pattern):
            return (try? NSRegularExpression(pattern: pattern).firstMatch(in: text, range: NSRange(text.startIndex..., in: text))) != nil
        }
    }
}

/// The deterministic expert for tests, demos and dry runs: it answers from an ordered
/// list of rules (first match wins), and with no match echoes the prompt.
///
/// Usage is the rule's, or estimated as ceil(characters / 4) for prompt and answer.
public final class ScriptedExpert: Expert {
    public let name: String
    public let model: String
    public let rules: [ScriptRule]
    /// Failures served so far, per rule index: `fail.times` counts across the process.
    private let failuresServed = Mutex<[Int: Int]>([:])

    public init(name: String, model: String = "scripted", rules: [ScriptRule]) {
        self.name = name
        self.model = model
        self.rules = rules
    }

    public func complete(_ request: ModelRequest) async throws(ExpertError) -> ModelResponse {
        try await complete(request, onDelta: nil)
    }

    /// Streams a reply word by word when asked to, as a provider would.
    public func complete(_ request: ModelRequest, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse {
        let text = request.messages.map(\.content).joined(separator: "\n")
        for (index, rule) in rules.enumerated() where (rule.expert == nil || rule.expert == name) && rule.matches(text) {
            if let delay = rule.delay {
                do {
                    try await Task.sleep(for: delay.duration)
                } catch {
                    throw ExpertError(.timeout, "the call was cancelled")
                }
            }
            if let failure = rule.failure {
                let fail = failuresServed.withLock { served -> Bool in
                    let count = served[index, default: 0]
                    guard count < failure.times else { return false }
                    served[index] = count + 1
                    return true
                }
                if fail {
                    throw ExpertError(.providerError, "scripted failure with status \(failure.status)", status: failure.status)
                }
                continue
            }
            if !rule.toolCalls.isEmpty {
                let calls = rule.toolCalls.enumerated().map { i, call in
                    ToolCall(id: "call_\(index)_\(i)", name: call.name, arguments: call.arguments)
                }
                let written = calls.map { $0.name + $0.arguments }.joined()
                return ModelResponse(
                    text: rule.reply ?? "", toolCalls: calls, finishReason: "tool_calls", model: model,
                    usage: rule.usage ?? Self.estimate(prompt: text, reply: written))
            }
            let reply = rule.reply ?? request.prompt
            Self.stream(reply, to: onDelta)
            return ModelResponse(text: reply, model: model, usage: rule.usage ?? Self.estimate(prompt: text, reply: reply))
        }
        Self.stream(request.prompt, to: onDelta)
        return ModelResponse(text: request.prompt, model: model, usage: Self.estimate(prompt: text, reply: request.prompt))
    }

    private static func stream(_ reply: String, to onDelta: DeltaHandler?) {
        guard let onDelta else { return }
        var piece = ""
        for character in reply {
            piece.append(character)
            if character == " " {
                onDelta(ModelDelta(text: piece))
                piece = ""
            }
        }
        if !piece.isEmpty { onDelta(ModelDelta(text: piece)) }
    }

    static func estimate(prompt: String, reply: String) -> ReportedUsage {
        ReportedUsage(promptTokens: (prompt.count + 3) / 4, completionTokens: (reply.count + 3) / 4)
    }

    /// Reads a script file: a YAML list of rules.
    public static func loadRules(path: String) throws(ExpertConfigurationError) -> [ScriptRule] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ExpertConfigurationError("cannot read the script file \(path)")
        }
        return try parseRules(text, file: path)
    }

    ///
    /// Operator-only input: a script is a file named in the server's configuration (or a
    /// test's), never a request body, so it is not parsed through `YAMLParseGuard`; it
    /// gets the same pre-scan as request YAML, so a hostile file is refused, not a hang.
    public static func parseRules(_ text: String, file: String) throws(ExpertConfigurationError) -> [ScriptRule] {
        struct RawRule: Decodable {
            var match: String
            var expert: String?
            var reply: String?
            var tool_calls: [RawToolCall]?
            var usage: RawUsage?
            var delay: String?
            var fail: RawFailure?
        }
        struct RawUsage: Decodable {
            var prompt_tokens: Int
            var completion_tokens: Int
        }
        struct RawToolCall: Decodable {
            var name: String
            /// A mapping (sent as its JSON) or a string sent as is (to script malformed arguments).
            var arguments: JSONValue?
        }
        struct RawFailure: Decodable {
            var status: Int
            var times: Int?
        }
        do {
            try YAMLPreScan(limits: .default).scan(text)
        } catch {
            throw ExpertConfigurationError("\(file):\(error.line):\(error.column): \(error.message)")
        }
        let raw: [RawRule]
        do {
            raw = try YAMLDecoder().decode([RawRule].self, from: text)
        } catch {
            throw ExpertConfigurationError("\(file): not a list of rules (match, reply, usage, delay, fail): \(error)")
        }
        var rules: [ScriptRule] = []
        for (index, rule) in raw.enumerated() {
            let matcher: ScriptRule.Matcher
            if rule.match.count >= 2, rule.match.hasPrefix("/"), rule.match.hasSuffix("/") {
                let pattern = String(rule.match.dropFirst().dropLast())
                guard (try? NSRegularExpression(pattern: pattern)) != nil else {
                    throw ExpertConfigurationError("\(file): rule \(index + 1): invalid regular expression \(rule.match)")
                }
                matcher = .regex(pattern)
            } else {
                matcher = .substring(rule.match)
            }
            var delay: TimeSpan?
            if let text = rule.delay {
                guard let parsed = TimeSpan.parse(text) else {
                    throw ExpertConfigurationError("\(file): rule \(index + 1): invalid delay \(text) (use 200ms, 2s, 1m)")
                }
                delay = parsed
            }
            rules.append(
                ScriptRule(
                    matcher: matcher, expert: rule.expert, reply: rule.reply,
                    toolCalls: (rule.tool_calls ?? []).map { call in
                        let arguments = call.arguments ?? .object([:])
                        return ToolCall(id: "", name: call.name, arguments: arguments.stringValue ?? arguments.compactJSON)
                    },
                    usage: rule.usage.map { ReportedUsage(promptTokens: $0.prompt_tokens, completionTokens: $0.completion_tokens) },
                    delay: delay, failure: rule.fail.map { (status: $0.status, times: $0.times ?? 1) }))
        }
        return rules
    }
}

/// A mistake in the `experts:` configuration or a script file.
public struct ExpertConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
