import Foundation
import SwitchyardCore
import SwitchyardServer
import Synchronization
import Testing

@testable import SwitchyardExperts

/// The API key the tests' experts read, from an environment variable only they use.
/// It is set once per process: `setenv` racing other threads' reads is not safe.
private let apiKeyVariable: String = {
    let name = "SWITCHYARD_TEST_DEEPSEEK_KEY_\(UUID().uuidString.replacingOccurrences(of: "-", with: "_"))"
    setenv(name, "sk-test-\(UUID().uuidString.lowercased())", 1)
    return name
}()

private var apiKey: String { ProcessInfo.processInfo.environment[apiKeyVariable] ?? "" }

/// An expert pointed at `fake`, with quick retries.
private func expert(
    _ fake: FakeDeepSeek, name: String = "flash", _ configure: (inout OpenAIExpertConfiguration) -> Void = { _ in }
) throws -> OpenAIExpert {
    var configuration = OpenAIExpertConfiguration(
        baseURL: fake.url, model: "deepseek-v4-flash", apiKeyEnvironmentVariable: apiKeyVariable, connectTimeout: .seconds(5),
        readTimeout: .seconds(5), retryBaseDelay: .milliseconds(20))
    configure(&configuration)
    return try OpenAIExpert(name: name, configuration: configuration, logger: testLogger("test.openai"))
}

private let tenant = "7d1c2f7e-0000-4000-8000-000000000001"

private func ask(_ prompt: String, stream: Bool = true, wantsJSON: Bool = false, system: String? = nil) -> ModelRequest {
    var messages: [ChatMessage] = []
    if let system { messages.append(ChatMessage(.system, system)) }
    messages.append(ChatMessage(.user, prompt))
    return ModelRequest(messages: messages, wantsJSON: wantsJSON, stream: stream, tenant: tenant)
}

/// Runs `body` and returns the `ExpertError` it threw.
private func expertError(_ body: () async throws(ExpertError) -> ModelResponse) async -> ExpertError? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

@Suite("OpenAI provider: answers and the wire format")
struct OpenAIProviderAnswerTests {
    @Test("a non-streamed answer: text, reasoning, billed model, usage, tenant as `user`, key from the env var")
    func nonStreaming() async throws {
        let body = FakeDeepSeek.completion(
            content: "Paris.", reasoning: "The capital of France is Paris.", model: "deepseek-v4-flash-0826",
            usage: FakeDeepSeek.usage(prompt: 1200, completion: 300, hit: 1024, reasoning: 220))
        // DeepSeek keeps a slow non-streamed request alive with blank lines before the body.
        try await FakeDeepSeek.with([.json(body: "\n\n" + body)]) { fake in
            let response = try await expert(fake).complete(ask("Capital of France?", stream: false))
            #expect(response.text == "Paris.")
            #expect(response.reasoning == "The capital of France is Paris.")
            #expect(response.model == "deepseek-v4-flash-0826")
            #expect(response.finishReason == "stop")
            #expect(
                response.usage
                    == ReportedUsage(promptTokens: 1200, completionTokens: 300, cacheHitTokens: 1024, cacheMissTokens: 176, reasoningTokens: 220))
            let sent = try #require(fake.received.first)
            #expect(sent.headers["authorization"] == "Bearer \(apiKey)")
            #expect(sent.headers["content-type"] == "application/json")
            #expect(sent.body["model"] == "deepseek-v4-flash")
            #expect(sent.body["user"] == .string(tenant))
            #expect(sent.body["stream"] == false)
            #expect(sent.body["stream_options"] == nil)
            #expect(sent.body["messages"] == [["role": "user", "content": "Capital of France?"]])
            #expect(sent.body["response_format"] == nil)
            #expect(sent.body["thinking"] == nil)
        }
    }

    @Test("a stream split mid-line and mid-character across TCP writes, usage in a last chunk with empty choices")
    func streamingSplit() async throws {
        let events = FakeDeepSeek.sse([
            FakeDeepSeek.chunk(delta: ["role": "assistant", "content": "", "reasoning_content": "Überlege…"]),
            FakeDeepSeek.chunk(delta: ["content": "Grüße, 世界"]),
            FakeDeepSeek.chunk(delta: ["content": " 🎉!"]),
            FakeDeepSeek.chunk(delta: ["content": ""], finish: "stop"),
            FakeDeepSeek.chunk(
                delta: nil, usage: FakeDeepSeek.usage(prompt: 40, completion: 12, hit: 32, reasoning: 5), model: "deepseek-v4-flash-0826"),
        ])
        // Every 7 bytes: boundaries fall inside lines, inside "data:", between the two
        // newlines of an event, and inside the multi-byte characters.
        let pieces = FakeDeepSeek.split(events, every: 7)
        // Some boundary falls inside a multi-byte character (a continuation byte starts a piece).
        #expect(pieces.dropFirst().contains { ($0.first ?? 0) & 0xC0 == 0x80 })
        try await FakeDeepSeek.with([.stream(pieces: pieces, gap: .milliseconds(1))]) { fake in
            let response = try await expert(fake).complete(ask("Grüß die Welt"))
            #expect(response.text == "Grüße, 世界 🎉!")
            #expect(response.reasoning == "Überlege…")
            #expect(response.finishReason == "stop")
            #expect(response.model == "deepseek-v4-flash-0826")
            #expect(
                response.usage == ReportedUsage(promptTokens: 40, completionTokens: 12, cacheHitTokens: 32, cacheMissTokens: 8, reasoningTokens: 5))
            let sent = try #require(fake.received.first)
            #expect(sent.body["stream"] == true)
            #expect(sent.body["stream_options"] == ["include_usage": true])
            #expect(sent.headers["accept"] == "text/event-stream")
        }
    }

    @Test("pieces that end exactly between the two newlines of an event, and inside a character")
    func streamingSplitAtChosenOffsets() async throws {
        let events = FakeDeepSeek.sse([
            FakeDeepSeek.chunk(delta: ["content": "é"]),
            FakeDeepSeek.chunk(delta: ["content": "✓"], finish: "stop", usage: FakeDeepSeek.usage(prompt: 3, completion: 2, hit: 0)),
        ])
        let bytes = events
        // Between the two newlines that end the first data event (the keep-alive ends at 13).
        let blank = try #require(bytes.indices.dropFirst(14).first { bytes[$0] == 0x0A && bytes[$0 - 1] == 0x0A })
        let inE = try #require(bytes.firstIndex(of: 0xC3)) + 1
        let inCheck = try #require(bytes.firstIndex(of: 0xE2)) + 2
        try await FakeDeepSeek.with([.stream(pieces: FakeDeepSeek.split(bytes, at: [inE, blank, inCheck]))]) { fake in
            let response = try await expert(fake).complete(ask("x"))
            #expect(response.text == "é✓")
            #expect(response.usage.promptTokens == 3)
        }
    }

    @Test("usage in a last chunk whose choices are not empty")
    func usageWithNonEmptyChoices() async throws {
        let events = FakeDeepSeek.sse([
            FakeDeepSeek.chunk(delta: ["role": "assistant", "content": "4"]),
            FakeDeepSeek.chunk(delta: ["content": "2"], finish: "stop", usage: FakeDeepSeek.usage(prompt: 10, completion: 2, hit: 0)),
        ])
        try await FakeDeepSeek.with([.stream(pieces: FakeDeepSeek.split(events, every: 50))]) { fake in
            let response = try await expert(fake).complete(ask("6 × 7?"))
            #expect(response.text == "42")
            #expect(response.finishReason == "stop")
            #expect(response.usage == ReportedUsage(promptTokens: 10, completionTokens: 2, cacheHitTokens: 0, cacheMissTokens: 10))
        }
    }

    @Test("a stream stays alive past read_timeout while data keeps coming: no overall deadline")
    func longStreamUnderIdleTimeout() async throws {
        let chunks =
            (0..<10).map { FakeDeepSeek.chunk(delta: ["content": .string("\($0)")]) }
            + [FakeDeepSeek.chunk(delta: nil, usage: FakeDeepSeek.usage(prompt: 1, completion: 10, hit: 0))]
        let pieces = chunks.map { Array("data: \($0)\n\n".utf8) } + [Array("data: [DONE]\n\n".utf8)]
        // 11 gaps of 300ms: the whole answer takes longer than read_timeout, no silence does
        // (a timeout ten times a gap leaves room for a machine busy with the whole suite).
        try await FakeDeepSeek.with([.stream(pieces: pieces, gap: .milliseconds(300))]) { fake in
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await expert(fake) { $0.readTimeout = .seconds(3) }.complete(ask("count"))
            #expect(response.text == "0123456789")
            #expect(clock.now - start > .seconds(3))
        }
    }

    @Test("tool-call deltas split across chunks are assembled; sending them back with reasoning is accepted")
    func toolCallDeltas() async throws {
        let toolTurn = FakeDeepSeek.sse([
            FakeDeepSeek.chunk(delta: ["role": "assistant", "content": nil, "reasoning_content": "I need the weather "]),
            FakeDeepSeek.chunk(delta: ["reasoning_content": "in two cities."]),
            FakeDeepSeek.chunk(delta: [
                "tool_calls": [["index": 0, "id": "call_a", "type": "function", "function": ["name": "get_weather", "arguments": ""]]]
            ]),
            FakeDeepSeek.chunk(delta: ["tool_calls": [["index": 0, "function": ["arguments": "{\"city\": \"Par"]]]]),
            FakeDeepSeek.chunk(delta: ["tool_calls": [["index": 0, "function": ["arguments": "is\"}"]]]]),
            FakeDeepSeek.chunk(delta: [
                "tool_calls": [["index": 1, "id": "call_b", "type": "function", "function": ["name": "get_weather", "arguments": "{\"ci"]]]
            ]),
            FakeDeepSeek.chunk(delta: ["tool_calls": [["index": 1, "function": ["arguments": "ty\": \"Zürich\"}"]]]], finish: "tool_calls"),
            FakeDeepSeek.chunk(delta: nil, usage: FakeDeepSeek.usage(prompt: 200, completion: 60, hit: 128, reasoning: 20)),
        ])
        let final = FakeDeepSeek.completion(content: "Sunny in both.", usage: FakeDeepSeek.usage(prompt: 300, completion: 5, hit: 256))
        try await FakeDeepSeek.with([.stream(pieces: FakeDeepSeek.split(toolTurn, every: 33)), .json(body: final)]) { fake in
            let flash = try expert(fake)
            let tools = [
                FunctionDefinition(
                    name: "get_weather", description: "Current weather of a city",
                    parameters: ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]])
            ]
            var request = ModelRequest(
                messages: [ChatMessage(.user, "Weather in Paris and Zürich?")], tools: tools, toolChoice: .auto, thinking: true, tenant: tenant)
            let turn = try await flash.complete(request)
            #expect(
                turn.toolCalls == [
                    ToolCall(id: "call_a", name: "get_weather", arguments: #"{"city": "Paris"}"#),
                    ToolCall(id: "call_b", name: "get_weather", arguments: #"{"city": "Zürich"}"#),
                ])
            #expect(turn.reasoning == "I need the weather in two cities.")
            #expect(turn.finishReason == "tool_calls")
            #expect(turn.text == "")

            request.messages.append(turn.assistantMessage)
            request.messages.append(.toolResult(callID: "call_a", #"{"sky": "sunny"}"#))
            request.messages.append(.toolResult(callID: "call_b", #"{"sky": "sunny"}"#))
            request.stream = false
            let answer = try await flash.complete(request)
            #expect(answer.text == "Sunny in both.")

            let first = try #require(fake.received.first?.body)
            #expect(
                first["tools"] == [
                    [
                        "type": "function",
                        "function": [
                            "name": "get_weather", "description": "Current weather of a city",
                            "parameters": ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]],
                        ],
                    ]
                ])
            #expect(first["tool_choice"] == "auto")
            let messages = try #require(fake.received.last?.body["messages"]?.arrayValue)
            #expect(messages.count == 4)
            #expect(
                messages[1] == [
                    "role": "assistant", "content": nil, "reasoning_content": "I need the weather in two cities.",
                    "tool_calls": [
                        ["id": "call_a", "type": "function", "function": ["name": "get_weather", "arguments": #"{"city": "Paris"}"#]],
                        ["id": "call_b", "type": "function", "function": ["name": "get_weather", "arguments": #"{"city": "Zürich"}"#]],
                    ],
                ])
            #expect(messages[2] == ["role": "tool", "tool_call_id": "call_a", "content": #"{"sky": "sunny"}"#])
        }
    }

    @Test("thinking and reasoning_effort are sent as DeepSeek expects; the expert's defaults fill in")
    func thinkingFields() async throws {
        let body = FakeDeepSeek.completion(content: "ok", usage: FakeDeepSeek.usage(prompt: 1, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(body: body)]) { fake in
            var request = ask("think hard", stream: false)
            request.thinking = true
            request.reasoningEffort = .max
            request.maxTokens = 2048
            request.temperature = 0.2
            request.toolChoice = .function("lookup")
            _ = try await expert(fake).complete(request)
            let sent = try #require(fake.received.last?.body)
            #expect(sent["thinking"] == ["type": "enabled"])
            #expect(sent["reasoning_effort"] == "max")
            #expect(sent["max_tokens"] == 2048)
            #expect(sent["temperature"] == 0.2)
            #expect(sent["tool_choice"] == ["type": "function", "function": ["name": "lookup"]])

            // The expert's defaults: thinking off (so no effort is sent).
            let plain = try expert(fake) {
                $0.thinking = false
                $0.reasoningEffort = .high
            }
            _ = try await plain.complete(ask("quick", stream: false))
            let second = try #require(fake.received.last?.body)
            #expect(second["thinking"] == ["type": "disabled"])
            #expect(second["reasoning_effort"] == nil)

            // Effort from the expert, thinking left to the provider.
            _ = try await expert(fake) { $0.reasoningEffort = .low }.complete(ask("medium", stream: false))
            let third = try #require(fake.received.last?.body)
            #expect(third["thinking"] == nil)
            #expect(third["reasoning_effort"] == "low")
        }
    }

    @Test("JSON mode sets response_format and adds the word json only when no message has it")
    func jsonMode() async throws {
        let body = FakeDeepSeek.completion(content: #"{"ok": true}"#, usage: FakeDeepSeek.usage(prompt: 1, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(body: body)]) { fake in
            let flash = try expert(fake)
            _ = try await flash.complete(ask("Classify this ticket", stream: false, wantsJSON: true))
            let first = try #require(fake.received.last?.body)
            #expect(first["response_format"] == ["type": "json_object"])
            #expect(first["messages"]?.arrayValue?.last?["content"] == "Classify this ticket Answer in json.")

            _ = try await flash.complete(ask("Classify this ticket", stream: false, wantsJSON: true, system: "Answer with a JSON object."))
            let second = try #require(fake.received.last?.body)
            #expect(second["messages"]?.arrayValue?.last?["content"] == "Classify this ticket")
        }
    }
}

@Suite("OpenAI provider: failures, retries and billing")
struct OpenAIProviderFailureTests {
    @Test("blank JSON content with finish_reason stop is asked again; the usage of both billed attempts is summed")
    func blankJSONRetried() async throws {
        let blank = FakeDeepSeek.completion(content: "", usage: FakeDeepSeek.usage(prompt: 100, completion: 7, hit: 64))
        let good = FakeDeepSeek.completion(content: #"{"category": "billing"}"#, usage: FakeDeepSeek.usage(prompt: 100, completion: 9, hit: 96))
        try await FakeDeepSeek.with([.json(body: blank), .json(body: good)]) { fake in
            let response = try await expert(fake).complete(ask("Classify as json", stream: false, wantsJSON: true))
            #expect(response.text == #"{"category": "billing"}"#)
            #expect(response.usage == ReportedUsage(promptTokens: 200, completionTokens: 16, cacheHitTokens: 160, cacheMissTokens: 40))
            #expect(fake.requestCount == 2)
        }
    }

    @Test("blank JSON every time: a blank_json error, billed, carrying the summed usage")
    func blankJSONExhausted() async throws {
        let blank = FakeDeepSeek.chunk(delta: ["content": "  "], finish: "stop", usage: FakeDeepSeek.usage(prompt: 10, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.stream(pieces: [FakeDeepSeek.sse([blank])])]) { fake in
            let flash = try expert(fake) { $0.maxRetries = 1 }
            let error = await expertError { () async throws(ExpertError) in try await flash.complete(ask("json please", wantsJSON: true)) }
            #expect(error?.code == .blankJSON)
            #expect(error?.billed == true)
            #expect(error?.usage == ReportedUsage(promptTokens: 20, completionTokens: 2, cacheHitTokens: 0, cacheMissTokens: 20))
            #expect(fake.requestCount == 2)
        }
    }

    @Test("HTTP 400 for a tool-call turn without reasoning_content: a clear, non-retryable error, sent once")
    func reasoningContentMissing() async throws {
        let ok = FakeDeepSeek.completion(content: "done", usage: FakeDeepSeek.usage(prompt: 1, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(body: ok)]) { fake in
            let call = ToolCall(id: "call_1", name: "lookup", arguments: "{}")
            let messages = [
                ChatMessage(.user, "look it up"), ChatMessage(.assistant, "", toolCalls: [call]), .toolResult(callID: "call_1", "found"),
            ]
            let flash = try expert(fake)
            let error = await expertError { () async throws(ExpertError) in
                try await flash.complete(ModelRequest(messages: messages, thinking: true, tenant: tenant))
            }
            #expect(error?.code == .reasoningContentMissing)
            #expect(error?.status == 400)
            #expect(error?.isRetryable == false)
            #expect(error?.billed == false)
            #expect(error?.message.contains("reasoning_content") == true)
            #expect(fake.requestCount == 1)

            // Without thinking, DeepSeek needs no reasoning.
            let answer = try await flash.complete(ModelRequest(messages: messages, thinking: false, tenant: tenant))
            #expect(answer.text == "done")
        }
    }

    @Test("HTTP 429 with Retry-After: waits that long, then succeeds")
    func rateLimitedThenSuccess() async throws {
        let limited = #"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#
        let ok = FakeDeepSeek.completion(content: "ok", usage: FakeDeepSeek.usage(prompt: 5, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(status: 429, body: limited, headers: ["Retry-After": "1"]), .json(body: ok)]) { fake in
            let response = try await expert(fake).complete(ask("hi", stream: false))
            #expect(response.text == "ok")
            let received = fake.received
            #expect(received.count == 2)
            if received.count == 2 {
                #expect(received[1].at - received[0].at >= .milliseconds(950))
            }
        }
    }

    @Test("HTTP 503 twice, then success; 503 forever ends as `overloaded`, unbilled")
    func overloadedRetried() async throws {
        let busy = #"{"error":{"message":"Server overloaded, please try again later","type":"server_error"}}"#
        let ok = FakeDeepSeek.completion(content: "ok", usage: FakeDeepSeek.usage(prompt: 5, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(status: 503, body: busy), .json(status: 503, body: busy), .json(body: ok)]) { fake in
            let response = try await expert(fake).complete(ask("hi", stream: false))
            #expect(response.text == "ok")
            #expect(fake.requestCount == 3)
        }
        try await FakeDeepSeek.with([.json(status: 503, body: busy)]) { fake in
            let flash = try expert(fake) { $0.maxRetries = 2 }
            let error = await expertError { () async throws(ExpertError) in try await flash.complete(ask("hi")) }
            #expect(error?.code == .overloaded)
            #expect(error?.status == 503)
            #expect(error?.billed == false)
            #expect(error?.isRetryable == true)
            #expect(error?.message.contains("Server overloaded") == true)
            #expect(fake.requestCount == 3)
        }
    }

    @Test("a stream cut midway: stream_cut, usage unknown, billed, never retried")
    func streamCut() async throws {
        let events = FakeDeepSeek.sse(
            [
                FakeDeepSeek.chunk(delta: ["role": "assistant", "content": "The answer is"]),
                FakeDeepSeek.chunk(delta: ["content": " forty"]),
            ], done: false)
        try await FakeDeepSeek.with([.stream(pieces: FakeDeepSeek.split(events, every: 40), cut: true)]) { fake in
            let flash = try expert(fake)
            let error = await expertError { () async throws(ExpertError) in try await flash.complete(ask("what is the answer?")) }
            #expect(error?.code == .streamCut)
            #expect(error?.billed == true)
            #expect(error?.usage?.usageKnown == false)
            #expect(error?.message.contains("usage is unknown") == true)
            #expect(fake.requestCount == 1)
        }
    }

    @Test("silence longer than read_timeout after the request was sent: a billed timeout, not retried")
    func readTimeout() async throws {
        let first = Array("data: \(FakeDeepSeek.chunk(delta: ["content": "Thinking"]))\n\n".utf8)
        try await FakeDeepSeek.with([.stream(pieces: [first, Array(": keep-alive\n\n".utf8)], gap: .seconds(2))]) { fake in
            let clock = ContinuousClock()
            let flash = try expert(fake) { $0.readTimeout = .milliseconds(300) }
            let start = clock.now
            let error = await expertError { () async throws(ExpertError) in try await flash.complete(ask("slow")) }
            #expect(error?.code == .timeout)
            #expect(error?.billed == true)
            #expect(error?.usage?.usageKnown == false)
            #expect(clock.now - start < .milliseconds(1500))
            #expect(fake.requestCount == 1)
        }
    }

    @Test("a caller cancelled mid-request ends the HTTP request at once: cancelled, billed, its slot freed")
    func cancellation() async throws {
        let body = FakeDeepSeek.completion(content: "late", usage: FakeDeepSeek.usage(prompt: 1, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(body: body, delay: .seconds(2))]) { fake in
            let flash = try expert(fake) { $0.concurrency = 1 }
            let clock = ContinuousClock()
            let start = clock.now
            let call = Task { await expertError { () async throws(ExpertError) in try await flash.complete(ask("slow", stream: false)) } }
            while fake.requestCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
            call.cancel()
            let error = await call.value
            #expect(error?.code == .cancelled)
            #expect(error?.billed == true)
            #expect(clock.now - start < .milliseconds(1500))
            #expect(flash.bulkhead.load == (0, 0))
        }
    }

    @Test("nothing listening: retried as a connection failure, then `unreachable`, unbilled")
    func unreachable() async throws {
        var configuration = OpenAIExpertConfiguration(
            baseURL: "http://127.0.0.1:1", model: "m", connectTimeout: .milliseconds(300), maxRetries: 1,
            retryBaseDelay: .milliseconds(10))
        configuration.readTimeout = .seconds(1)
        let expert = try OpenAIExpert(name: "flash", configuration: configuration, logger: testLogger("test.openai"))
        let error = await expertError { () async throws(ExpertError) in try await expert.complete(ask("hi")) }
        #expect(error?.code == .unreachable)
        #expect(error?.billed == false)
        #expect(error?.message.contains("127.0.0.1:1") == true)
        #expect(error?.message.contains("after 1 retries") == true)
    }

    @Test("a refused key: unauthorized, naming the variable, never the key")
    func unauthorizedNeverShowsKey() async throws {
        // The fake echoes the key it got, as some providers do.
        let echo = #"{"error":{"message":"Authentication Fails, Your api key: KEY is invalid","type":"authentication_error"}}"#
            .replacingOccurrences(of: "KEY", with: apiKey)
        try await FakeDeepSeek.with([.json(status: 401, body: echo)]) { fake in
            let flash = try expert(fake)
            let error = await expertError { () async throws(ExpertError) in try await flash.complete(ask("hi")) }
            #expect(error?.code == .unauthorized)
            #expect(error?.isRetryable == false)
            #expect(error?.message.contains(apiKeyVariable) == true)
            #expect(error?.message.contains(apiKey) == false)
            #expect(error.map { String(describing: $0) }?.contains(apiKey) == false)
            #expect(fake.requestCount == 1)
        }
    }
}

@Suite("OpenAI provider: the bulkhead")
struct OpenAIProviderBulkheadTests {
    @Test("concurrency 2 and 5 calls at once: at most 2 reach the provider together, all finish")
    func concurrencyCap() async throws {
        let body = FakeDeepSeek.completion(content: "ok", usage: FakeDeepSeek.usage(prompt: 1, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(body: body, delay: .milliseconds(250))]) { fake in
            let flash = try expert(fake) {
                $0.concurrency = 2
                $0.queueTimeout = .seconds(10)
            }
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<5 {
                    group.addTask { try await flash.complete(ask("call \(index)", stream: false)).text }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers == Array(repeating: "ok", count: 5))
            #expect(fake.requestCount == 5)
            #expect(fake.maxInFlight == 2)
            #expect(flash.bulkhead.load == (0, 0))
        }
    }

    @Test("a call that waits longer than queue_timeout fails clearly and never reaches the provider")
    func queueTimeout() async throws {
        let body = FakeDeepSeek.completion(content: "ok", usage: FakeDeepSeek.usage(prompt: 1, completion: 1, hit: 0))
        try await FakeDeepSeek.with([.json(body: body, delay: .milliseconds(1200))]) { fake in
            let flash = try expert(fake) {
                $0.concurrency = 1
                $0.queueTimeout = .milliseconds(200)
            }
            async let first = flash.complete(ask("first", stream: false))
            while fake.requestCount == 0 { try await Task.sleep(for: .milliseconds(10)) }
            let error = await expertError { () async throws(ExpertError) in try await flash.complete(ask("second", stream: false)) }
            #expect(error?.code == .queueTimeout)
            #expect(error?.billed == false)
            #expect(error?.message.contains("experts.flash.concurrency") == true)
            #expect(try await first.text == "ok")
            #expect(fake.requestCount == 1)
        }
    }

    @Test("a cancelled waiter leaves the line and holds no slot")
    func cancelledWaiter() async throws {
        let bulkhead = Bulkhead(limit: 1)
        #expect(await bulkhead.acquire(timeout: .seconds(1)) == .acquired)
        let waiter = Task { await bulkhead.acquire(timeout: .seconds(30)) }
        while bulkhead.load.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }
        waiter.cancel()
        #expect(await waiter.value == .cancelled)
        #expect(bulkhead.load == (1, 0))
        bulkhead.release()
        #expect(bulkhead.load == (0, 0))
        #expect(await bulkhead.acquire(timeout: .zero) == .acquired)
        // Waiters are served in arrival order.
        let order = OrderLog()
        let a = Task { if await bulkhead.acquire(timeout: .seconds(5)) == .acquired { order.append("a") } }
        while bulkhead.load.waiting < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let b = Task { if await bulkhead.acquire(timeout: .seconds(5)) == .acquired { order.append("b") } }
        while bulkhead.load.waiting < 2 { try await Task.sleep(for: .milliseconds(5)) }
        bulkhead.release()
        await a.value
        bulkhead.release()
        await b.value
        #expect(order.entries == ["a", "b"])
    }
}

private final class OrderLog: Sendable {
    private let state = Mutex<[String]>([])
    func append(_ entry: String) { state.withLock { $0.append(entry) } }
    var entries: [String] { state.withLock { $0 } }
}

@Suite("OpenAI provider: configuration")
struct OpenAIProviderConfigurationTests {
    @Test("the openai keys of `experts.NAME` are read; durations use the workflow notation")
    func readsKeys() throws {
        let configuration = try ServerConfiguration.parse(
            """
            experts:
              flash:
                provider: openai
                base_url: http://127.0.0.1:8000/v1
                model: deepseek-v4-flash
                api_key_env: VLLM_KEY
                connect_timeout: 3s
                read_timeout: 45s
                concurrency: 16
                queue_timeout: 2m
                max_retries: 5
                thinking: false
                reasoning_effort: high
              pro: { provider: openai }
            """, file: "c.yaml")
        let flash = try #require(configuration.experts["flash"])
        let settings = try flash.openAIConfiguration(name: "flash")
        #expect(settings.baseURL == "http://127.0.0.1:8000/v1")
        #expect(settings.apiKeyEnvironmentVariable == "VLLM_KEY")
        #expect(settings.connectTimeout == .seconds(3))
        #expect(settings.readTimeout == .seconds(45))
        #expect(settings.concurrency == 16)
        #expect(settings.queueTimeout == .seconds(120))
        #expect(settings.maxRetries == 5)
        #expect(settings.thinking == false)
        #expect(settings.reasoningEffort == .high)
        // Defaults: DeepSeek's API, its key variable, the pro model for `pro`.
        let pro = try #require(configuration.experts["pro"]).openAIConfiguration(name: "pro")
        #expect(pro.baseURL == "https://api.deepseek.com")
        #expect(pro.model == "deepseek-v4-pro")
        #expect(pro.apiKeyEnvironmentVariable == "DEEPSEEK_API_KEY")
        #expect(pro.readTimeout == .seconds(60))
    }

    @Test(
        "bad expert entries are refused with the key that is wrong",
        arguments: [
            ("experts:\n  flash: { provider: openai, read_timeout: soon }\n", "experts.flash.read_timeout"),
            ("experts:\n  flash: { provider: openai, read_timeout: 5m }\n", "experts.flash.read_timeout"),
            ("experts:\n  flash: { provider: openai, concurrency: 0 }\n", "experts.flash.concurrency"),
            ("experts:\n  flash: { provider: openai, reasoning_effort: medium }\n", "experts.flash.reasoning_effort"),
            ("experts:\n  flash: { provider: openai, max_retries: 99 }\n", "experts.flash.max_retries"),
            ("experts:\n  flash: { provider: openai, base_url: 'http://x', }\n", "experts.flash.model"),
            ("experts:\n  flash: { provider: scripted, script: a.yaml, base_url: 'http://x' }\n", "experts.flash.base_url"),
            ("experts:\n  flash: { provider: openai, api_kee_env: X }\n", "unknown key `experts.flash.api_kee_env`"),
        ])
    func badEntries(yaml: String, mentions: String) {
        #expect {
            try ServerConfiguration.parse(yaml, file: "c.yaml")
        } throws: { error in
            (error as? ConfigurationError)?.message.contains(mentions) == true
        }
    }

    @Test("Deploy/config.example.yaml parses, and so does its commented openai entry once uncommented")
    func exampleConfig() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("Deploy/config.example.yaml"), encoding: .utf8)
        let shipped = try ServerConfiguration.parse(text, file: "config.example.yaml")
        #expect(shipped.experts["flash"]?.provider == .scripted)
        // The commented block: lines starting with "  # " inside experts, uncommented.
        let lines = text.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "  # flash:"))
        let block = lines[start...].prefix { $0.hasPrefix("  # ") || $0.hasPrefix("  #   ") }
            .filter { !$0.hasPrefix("  #   #") && !$0.hasPrefix("  # A ") }
            .map { "  " + $0.dropFirst(4) }
        let configuration = try ServerConfiguration.parse("experts:\n" + block.joined(separator: "\n") + "\n", file: "uncommented.yaml")
        let flash = try #require(configuration.experts["flash"]).openAIConfiguration(name: "flash")
        #expect(flash.model == "deepseek-v4-flash")
        #expect(flash.thinking == true)
        #expect(flash.reasoningEffort == .high)
        #expect(configuration.experts["local-qwen"]?.model == "Qwen/Qwen3-8B")
    }

    @Test("with DEEPSEEK_API_KEY and no experts, flash and pro are DeepSeek's V4 models; without it, the installed local model, else scripted")
    func deepSeekDefaults() throws {
        let withKey = ServerConfiguration.defaultExperts(workflowsDirectory: "W", environment: ["DEEPSEEK_API_KEY": "sk-x"])
        #expect(withKey["flash"]?.provider == .openai)
        #expect(try withKey["flash"]?.openAIConfiguration(name: "flash").model == "deepseek-v4-flash")
        #expect(try withKey["pro"]?.openAIConfiguration(name: "pro").model == "deepseek-v4-pro")
        #expect(withKey["pro"]?.baseURL == "https://api.deepseek.com")
        #expect(withKey["pro"]?.apiKeyEnv == "DEEPSEEK_API_KEY")
        let without = ServerConfiguration.defaultExperts(workflowsDirectory: "W", environment: [:], localModel: nil)
        #expect(without["flash"] == ExpertConfiguration(provider: .scripted, script: "W/demo-script.yaml", model: "scripted-flash"))
        let local = ServerConfiguration.defaultExperts(workflowsDirectory: "W", environment: [:], localModel: "/m/g.gguf")
        #expect(local["flash"]?.provider == .local)
        #expect(local["pro"]?.model == "/m/g.gguf")
        #expect(
            ServerConfiguration.defaultExperts(workflowsDirectory: "W", environment: ["DEEPSEEK_API_KEY": "k"], localModel: "/m/g.gguf")["flash"]?
                .provider == .openai)
    }

    @Test("the pool builds openai experts; a missing key variable stops it with a clear message")
    func poolBuildsOpenAIExperts() throws {
        let entry = ExpertConfiguration(provider: .openai, model: "m", baseURL: "http://127.0.0.1:9", apiKeyEnv: apiKeyVariable)
        let pool = try ExpertPool.make(from: ["flash": entry, "pro": entry], baseDirectory: nil)
        let flash = try pool.expert(named: "flash")
        #expect(flash is OpenAIExpert)
        #expect(flash.model == "m")
        #expect(!String(reflecting: flash).contains(apiKey))

        var missing = entry
        missing.apiKeyEnv = "SWITCHYARD_TEST_UNSET_\(UUID().uuidString.replacingOccurrences(of: "-", with: "_"))"
        #expect {
            try ExpertPool.make(from: ["flash": missing, "pro": entry], baseDirectory: nil)
        } throws: { error in
            (error as? ExpertConfigurationError)?.message.contains("experts.flash.api_key_env") == true
        }
    }
}

@Suite("Server-sent events parser")
struct ServerSentEventParserTests {
    @Test("byte-at-a-time, CRLF and comments give the same events")
    func byteAtATime() {
        let text = ": keep-alive\r\n\r\ndata: {\"a\":\"ü\"}\r\n\r\nevent: x\ndata: one\ndata: two\n\ndata:[DONE]\n\n"
        var whole = ServerSentEventParser()
        let expected = whole.feed(Array(text.utf8))
        #expect(expected.map(\.data) == [#"{"a":"ü"}"#, "one\ntwo", "[DONE]"])
        #expect(expected.map(\.type) == ["message", "x", "message"])
        var bytewise = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        for byte in text.utf8 { events += bytewise.feed([byte]) }
        #expect(events == expected)
    }

    @Test("an id belongs to its own event: a run's stored events carry one, its live deltas none")
    func idsPerEvent() {
        var parser = ServerSentEventParser()
        let events = parser.feed(Array("id: 7\nevent: step.started\ndata: {}\n\nevent: model.delta\ndata: {\"text\":\"hi\"}\n\n".utf8))
        #expect(
            events == [
                ServerSentEvent(id: "7", type: "step.started", data: "{}"),
                ServerSentEvent(id: nil, type: "model.delta", data: #"{"text":"hi"}"#),
            ])
    }
}
