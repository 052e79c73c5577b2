import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import ServiceLifecycle
import SwitchyardCore
import Synchronization

/// A local stand-in for DeepSeek's chat-completions API on a loopback port, speaking
/// the exact wire format, quirks included. Each test scripts the replies (served in
/// order; the last one repeats) and reads back what the fake received.
///
/// Like DeepSeek, it refuses (HTTP 400) a thinking-mode request in which an assistant
/// turn that made tool calls lacks its `reasoning_content`, whatever the script says.
final class FakeDeepSeek: Sendable {
    /// One scripted reply.
    enum Reply: Sendable {
        /// A whole body (an answer or an error), after `delay`.
        case json(status: Int = 200, body: String, headers: [String: String] = [:], delay: Duration = .zero)
        /// An SSE body written as these separate TCP writes, `gap` apart; with `cut`,
        /// the connection is then dropped without ending the response.
        case stream(pieces: [[UInt8]], gap: Duration = .milliseconds(15), cut: Bool = false)
    }

    /// A request as the fake received it.
    struct Received: Sendable {
        var headers: [String: String]
        var body: JSONValue
        var at: ContinuousClock.Instant
    }

    private struct State {
        var replies: [Reply]
        var next = 0
        var received: [Received] = []
        var inFlight = 0
        var maxInFlight = 0
    }

    private let state: Mutex<State>
    let url: String

    private init(replies: [Reply], port: Int) {
        state = Mutex(State(replies: replies))
        url = "http://127.0.0.1:\(port)"
    }

    var received: [Received] { state.withLock { $0.received } }
    var requestCount: Int { state.withLock { $0.received.count } }
    /// The most requests the fake was answering at the same time.
    var maxInFlight: Int { state.withLock { $0.maxInFlight } }

    /// Runs `body` with a fake serving `replies` on a free loopback port.
    static func with<T: Sendable>(_ replies: [Reply], _ body: @Sendable (FakeDeepSeek) async throws -> T) async throws -> T {
        let box = Mutex<FakeDeepSeek?>(nil)
        let router = Router()
        router.post("/chat/completions") { request, context -> Response in
            guard let fake = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return try await fake.respond(to: request, context: context)
        }
        return try await withTestApplication(router: router, logger: testLogger("test.fake-deepseek")) { port in
            let fake = FakeDeepSeek(replies: replies, port: port)
            box.withLock { $0 = fake }
            return try await body(fake)
        }
    }

    private func respond(to request: Request, context: some RequestContext) async throws -> Response {
        let bytes = try await request.body.collect(upTo: 16 << 20)
        let body = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: bytes))) ?? .null
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let reply = state.withLock { state -> Reply in
            state.received.append(Received(headers: headers, body: body, at: .now))
            state.inFlight += 1
            state.maxInFlight = max(state.maxInFlight, state.inFlight)
            defer { state.next += 1 }
            return state.replies[min(state.next, state.replies.count - 1)]
        }
        if let refusal = Self.deepSeekRefusal(body) {
            finished()
            return Self.response(status: 400, body: refusal, headers: [:])
        }
        switch reply {
        case .json(let status, let text, let extra, let delay):
            defer { finished() }
            if delay > .zero { try await Task.sleep(for: delay) }
            return Self.response(status: status, body: text, headers: extra)
        case .stream(let pieces, let gap, let cut):
            let body = ResponseBody { writer in
                defer { self.finished() }
                for (index, piece) in pieces.enumerated() {
                    if index > 0 { try await Task.sleep(for: gap) }
                    try await writer.write(ByteBuffer(bytes: piece))
                }
                if cut { throw CancellationError() }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
    }

    private func finished() {
        state.withLock { $0.inFlight -= 1 }
    }

    private static func response(status: Int, body: String, headers: [String: String]) -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        for (name, value) in headers {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        return Response(status: .init(code: status), headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    /// DeepSeek's check: in thinking mode (on unless disabled), every assistant turn with
    /// tool calls must carry `reasoning_content`.
    static func deepSeekRefusal(_ body: JSONValue) -> String? {
        guard body["thinking"]?["type"]?.stringValue != "disabled" else { return nil }
        for message in body["messages"]?.arrayValue ?? [] where message["role"]?.stringValue == "assistant" {
            let calls = message["tool_calls"]?.arrayValue ?? []
            if !calls.isEmpty, (message["reasoning_content"]?.stringValue ?? "").isEmpty {
                return
                    #"{"error":{"message":"The reasoning_content in the thinking mode must be passed back to the API.","type":"invalid_request_error","param":null,"code":"invalid_request_error"}}"#
            }
        }
        return nil
    }
}

// MARK: Wire-format builders

extension FakeDeepSeek {
    static func usage(prompt: Int, completion: Int, hit: Int, reasoning: Int = 0) -> JSONValue {
        [
            "prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(prompt + completion),
            "prompt_cache_hit_tokens": .int(hit), "prompt_cache_miss_tokens": .int(prompt - hit),
            "prompt_tokens_details": ["cached_tokens": .int(hit)],
            "completion_tokens_details": ["reasoning_tokens": .int(reasoning)],
        ]
    }

    /// A whole (non-streamed) answer.
    static func completion(
        content: String?, reasoning: String? = nil, toolCalls: [JSONValue] = [], finish: String = "stop", model: String = "deepseek-v4-flash",
        usage: JSONValue
    ) -> String {
        var message: [String: JSONValue] = ["role": "assistant", "content": content.map(JSONValue.string) ?? .null]
        if let reasoning { message["reasoning_content"] = .string(reasoning) }
        if !toolCalls.isEmpty { message["tool_calls"] = .array(toolCalls) }
        let body: JSONValue = [
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_767_000_000, "model": .string(model),
            "choices": [["index": 0, "message": .object(message), "logprobs": nil, "finish_reason": .string(finish)]],
            "usage": usage, "system_fingerprint": "fp_fake",
        ]
        return body.compactJSON
    }

    /// One `chat.completion.chunk`. `choices: nil` writes an empty list (the usual usage chunk).
    static func chunk(delta: JSONValue?, finish: String? = nil, usage: JSONValue? = nil, model: String = "deepseek-v4-flash") -> String {
        var choices: [JSONValue] = []
        if let delta { choices.append(["index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish.map(JSONValue.string) ?? .null]) }
        let body: JSONValue = [
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_767_000_000, "model": .string(model),
            "system_fingerprint": "fp_fake", "choices": .array(choices), "usage": usage ?? .null,
        ]
        return body.compactJSON
    }

    /// Events as DeepSeek writes them: a keep-alive comment, `data: …` blocks, `[DONE]`.
    static func sse(_ chunks: [String], done: Bool = true) -> [UInt8] {
        var text = ": keep-alive\n\n"
        for chunk in chunks { text += "data: \(chunk)\n\n" }
        if done { text += "data: [DONE]\n\n" }
        return Array(text.utf8)
    }

    /// Cuts `bytes` into pieces at these offsets.
    static func split(_ bytes: [UInt8], at offsets: [Int]) -> [[UInt8]] {
        var pieces: [[UInt8]] = []
        var start = 0
        for offset in offsets.sorted() where offset > start && offset < bytes.count {
            pieces.append(Array(bytes[start..<offset]))
            start = offset
        }
        pieces.append(Array(bytes[start...]))
        return pieces
    }

    /// Cuts `bytes` into pieces of `size` bytes: every boundary kind gets hit.
    static func split(_ bytes: [UInt8], every size: Int) -> [[UInt8]] {
        stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
    }
}
