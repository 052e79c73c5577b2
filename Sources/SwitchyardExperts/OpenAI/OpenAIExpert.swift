import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// How one `openai` expert reaches its endpoint. Every field but `baseURL` and `model`
/// has a default suited to DeepSeek's API.
public struct OpenAIExpertConfiguration: Sendable, Hashable {
    /// Where `/chat/completions` lives: `https://api.deepseek.com`, `http://vllm:8000/v1`.
    public var baseURL: String
    public var model: String
    /// The environment variable holding the API key; nil sends no `Authorization`
    /// (a local vLLM or llama.cpp server).
    public var apiKeyEnvironmentVariable: String?
    /// Until the request is on the wire: DNS, TCP, TLS and any wait for a connection.
    public var connectTimeout: Duration
    /// The longest silence once the request is sent. Streams and DeepSeek's keep-alive
    /// lines reset it, so a long answer is never cut for being long.
    public var readTimeout: Duration
    /// Calls in flight at once; more wait in line (see ``Bulkhead``).
    public var concurrency: Int
    /// How long a call waits in line for a slot before failing.
    public var queueTimeout: Duration
    /// Retries of unbilled failures (429, 503, connection failures) and, separately,
    /// of blank JSON answers.
    public var maxRetries: Int
    /// Thinking mode when the request leaves it open; nil leaves it to the provider.
    public var thinking: Bool?
    /// Reasoning effort when the request leaves it open; nil leaves it to the provider.
    public var reasoningEffort: ReasoningEffort?
    /// The first retry waits about this long; each later one twice as long, with jitter.
    public var retryBaseDelay: Duration
    /// The longest wait before a retry, `Retry-After` included.
    public var maxRetryDelay: Duration

    public init(
        baseURL: String, model: String, apiKeyEnvironmentVariable: String? = nil, connectTimeout: Duration = .seconds(10),
        readTimeout: Duration = .seconds(60), concurrency: Int = 64, queueTimeout: Duration = .seconds(30), maxRetries: Int = 3,
        thinking: Bool? = nil, reasoningEffort: ReasoningEffort? = nil, retryBaseDelay: Duration = .milliseconds(500),
        maxRetryDelay: Duration = .seconds(30)
    ) {
        self.baseURL = baseURL
        self.model = model
        self.apiKeyEnvironmentVariable = apiKeyEnvironmentVariable
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.concurrency = concurrency
        self.queueTimeout = queueTimeout
        self.maxRetries = maxRetries
        self.thinking = thinking
        self.reasoningEffort = reasoningEffort
        self.retryBaseDelay = retryBaseDelay
        self.maxRetryDelay = maxRetryDelay
    }
}

/// An API key that stays out of logs, error messages and `dump`.
struct RedactedAPIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let value: String
    var description: String { "[redacted]" }
    var debugDescription: String { "[redacted]" }
    var customMirror: Mirror { Mirror(self, children: []) }
}

/// An expert behind an OpenAI-compatible chat-completions endpoint: DeepSeek's API,
/// or vLLM, SGLang, llama.cpp and Ollama serving the same open weights.
///
/// It is written around what the provider bills. A call is retried only when the
/// provider cannot have charged for it: HTTP 429 (after `Retry-After`), HTTP 503, and
/// failures before the request was written. A request that was sent and then timed
/// out, or whose stream was cut, is not retried here: it fails with `billed` set, and
/// with `usage.usageKnown` false when the provider never said what it cost. The one
/// billed retry is DeepSeek's documented JSON-mode quirk, a blank answer with
/// `finish_reason: stop`; the returned (or thrown) usage is then the **sum over every
/// attempt**, because each one was billed.
///
/// HTTP goes through one process-wide `HTTPClient` (`HTTPClient.shared` unless given
/// another), whose own connect and read limits (90 s) bound the configured ones.
public final class OpenAIExpert: Expert {
    public let name: String
    public var model: String { configuration.model }
    public let configuration: OpenAIExpertConfiguration
    /// At most `concurrency` calls in flight; shared by every caller of this expert.
    public let bulkhead: Bulkhead
    private let endpoint: String
    private let apiKey: RedactedAPIKey?
    private let client: HTTPClient
    private let logger: Logger

    /// The answer body this expert reads at most, so that a misbehaving server cannot
    /// exhaust memory.
    static let maxBodyBytes = 64 << 20

    /// Reads the API key from `configuration.apiKeyEnvironmentVariable` now, so that a
    /// missing key stops the server at start-up rather than failing every step.
    public init(
        name: String, configuration: OpenAIExpertConfiguration, httpClient: HTTPClient = .shared,
        logger: Logger = Logger(label: "switchyard.experts.openai")
    ) throws(ExpertConfigurationError) {
        var base = configuration.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil else {
            throw ExpertConfigurationError("experts.\(name).base_url: \(configuration.baseURL) is not an http(s) URL like https://api.deepseek.com")
        }
        if let variable = configuration.apiKeyEnvironmentVariable {
            guard let key = ProcessInfo.processInfo.environment[variable], !key.isEmpty else {
                throw ExpertConfigurationError(
                    "experts.\(name).api_key_env: the environment variable \(variable) is not set; export the provider's API key in it")
            }
            apiKey = RedactedAPIKey(value: key)
        } else {
            apiKey = nil
        }
        self.name = name
        self.configuration = configuration
        self.endpoint = base + "/chat/completions"
        self.bulkhead = Bulkhead(limit: configuration.concurrency)
        self.client = httpClient
        self.logger = logger
    }

    public func complete(_ request: ModelRequest) async throws(ExpertError) -> ModelResponse {
        try await complete(request, onDelta: nil)
    }

    /// In JSON mode a blank answer is asked again, up to `max_retries` times, and every
    /// one of those answers is billed (the usage returned is their sum). Transport
    /// retries are not counted: a failed exchange is not billed.
    public func billedAttempts(for request: ModelRequest) -> Int {
        request.wantsJSON ? 1 + max(0, configuration.maxRetries) : 1
    }

    public func complete(_ request: ModelRequest, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse {
        let body: Data
        do {
            body = try ChatCompletionsWire.body(
                for: request, model: configuration.model, thinking: configuration.thinking, reasoningEffort: configuration.reasoningEffort)
        } catch {
            throw ExpertError(.badRequest, "\(name): the request could not be encoded as JSON: \(error)")
        }
        switch await bulkhead.acquire(timeout: configuration.queueTimeout) {
        case .acquired:
            break
        case .timedOut:
            let load = bulkhead.load
            throw ExpertError(
                .queueTimeout,
                "\(name): all \(bulkhead.limit) call slots stayed busy for the whole queue_timeout (\(configuration.queueTimeout.spelled)); "
                    + "\(load.waiting) other calls are waiting. Raise experts.\(name).concurrency or queue_timeout, or send fewer calls at once")
        case .cancelled:
            throw ExpertError(.cancelled, "\(name): the call was cancelled while it waited for a free slot")
        }
        defer { bulkhead.release() }
        return try await completeWithRetries(request, body: ByteBuffer(bytes: body), onDelta: onDelta)
    }

    /// What one HTTP attempt came to.
    private enum Attempt {
        case answered(ModelResponse)
        /// The provider did not bill it; trying again may help. `retryAfter` is the
        /// provider's own wish.
        case unbilled(ExpertError, retryAfter: Duration?)
        /// Final: retrying it would be blind (it may have been billed) or useless.
        case failed(ExpertError)
    }

    private func completeWithRetries(_ request: ModelRequest, body: ByteBuffer, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse {
        var billedBefore: ReportedUsage?
        var transportRetries = 0
        var blankRetries = 0
        while true {
            switch await attempt(body: body, stream: request.stream, onDelta: onDelta) {
            case .answered(var response):
                let blank = response.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                if request.wantsJSON, blank, response.toolCalls.isEmpty, response.finishReason == nil || response.finishReason == "stop" {
                    billedBefore = (billedBefore ?? .zero) + response.usage
                    guard blankRetries < configuration.maxRetries else {
                        throw ExpertError(
                            .blankJSON,
                            "\(name): the model answered blank content in JSON mode \(blankRetries + 1) times (it could not produce valid JSON); "
                                + "simplify the output schema or use a stronger expert",
                            usage: billedBefore, billed: true)
                    }
                    blankRetries += 1
                    logger.notice("blank JSON answer; asking again", metadata: ["expert": "\(name)", "retry": "\(blankRetries)"])
                    continue
                }
                if let billedBefore { response.usage = billedBefore + response.usage }
                return response
            case .unbilled(var error, let retryAfter):
                guard transportRetries < configuration.maxRetries else {
                    if transportRetries > 0 { error.message += " (after \(transportRetries) retries)" }
                    error.usage = billedBefore ?? error.usage
                    error.billed = error.billed || billedBefore != nil
                    throw error
                }
                transportRetries += 1
                let delay = retryDelay(retry: transportRetries, retryAfter: retryAfter)
                logger.notice(
                    "retrying an unbilled failure",
                    metadata: ["expert": "\(name)", "retry": "\(transportRetries)", "delay": "\(delay)", "error": "\(error.message)"])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw ExpertError(
                        .cancelled, "\(name): the call was cancelled while waiting to retry", usage: billedBefore, billed: billedBefore != nil)
                }
            case .failed(var error):
                if let billedBefore {
                    error.usage = billedBefore + (error.usage ?? .zero)
                    error.billed = true
                }
                throw error
            }
        }
    }

    /// Exponential backoff with jitter (half to all of the step), or what `Retry-After`
    /// asked for; both capped by `maxRetryDelay`.
    private func retryDelay(retry: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter { return min(retryAfter, configuration.maxRetryDelay) }
        let step = configuration.retryBaseDelay * (1 << min(retry - 1, 20))
        return min(step * Double.random(in: 0.5...1.0), configuration.maxRetryDelay)
    }

    private func headers(stream: Bool) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: stream ? "text/event-stream" : "application/json")
        headers.add(name: "User-Agent", value: "switchyard")
        if let apiKey { headers.add(name: "Authorization", value: "Bearer \(apiKey.value)") }
        // The model call's span, for a provider that traces (W3C Trace Context).
        for (name, value) in OutgoingTraceHeaders.current { headers.replaceOrAdd(name: name, value: value) }
        return headers
    }

    private func attempt(body: ByteBuffer, stream: Bool, onDelta: DeltaHandler?) async -> Attempt {
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: endpoint, method: .POST, headers: headers(stream: stream), body: .byteBuffer(body))
        } catch {
            return .failed(ExpertError(.unreachable, "\(name): \(endpoint) is not a usable URL (\(error))"))
        }
        let exchange = HTTPExchange.start(request, on: client, connectTimeout: configuration.connectTimeout, idleTimeout: configuration.readTimeout)
        return await withTaskCancellationHandler {
            var reader = AnswerReader(expert: name, fallbackModel: configuration.model)
            var iterator = exchange.parts.makeAsyncIterator()
            do {
                guard case .head(let head)? = try await iterator.next() else {
                    return failure(exchange, reader: reader, underlying: nil)
                }
                guard head.status == .ok else {
                    // The status decides; the body only explains, so a body cut short is fine.
                    var body = ByteBuffer()
                    while body.readableBytes < 1 << 20, case .body(var part)? = try? await iterator.next() {
                        body.writeBuffer(&part)
                    }
                    exchange.cancel()
                    return statusFailure(head, body: body)
                }
                let contentType = head.headers.first(name: "Content-Type")?.lowercased() ?? ""
                reader.streaming = stream && !contentType.contains("application/json")
                // Read to the end even after `[DONE]`, so that the connection goes back
                // to the pool instead of being closed.
                while let part = try await iterator.next() {
                    guard case .body(let buffer) = part else { continue }
                    if let failure = reader.consume(buffer) {
                        exchange.cancel()
                        return .failed(failure)
                    }
                    if let onDelta, let delta = reader.takeDelta() { onDelta(delta) }
                }
                if Task.isCancelled { return failure(exchange, reader: reader, underlying: CancellationError()) }
                return Self.attempt(reader.finish())
            } catch {
                // A stream that already said `[DONE]`, or carried its usage, is complete
                // even if the connection then failed or went quiet.
                if reader.streaming, !Task.isCancelled, reader.done || (reader.hasUsage && exchange.timedOut == nil) {
                    return Self.attempt(reader.finish())
                }
                return failure(exchange, reader: reader, underlying: error)
            }
        } onCancel: {
            exchange.cancel()
        }
    }

    private static func attempt(_ result: Result<ModelResponse, ExpertError>) -> Attempt {
        switch result {
        case .success(let response): .answered(response)
        case .failure(let error): .failed(error)
        }
    }

    /// Classifies a failure to get an answer by what reached the provider.
    private func failure(_ exchange: HTTPExchange, reader: AnswerReader, underlying: (any Error)?) -> Attempt {
        let sent = exchange.requestSent
        let partial = reader.partialUsage
        if Task.isCancelled {
            return .failed(
                ExpertError(
                    .cancelled, "\(name): the call was cancelled" + (sent ? "; the provider may still bill it" : ""),
                    usage: sent ? partial : nil, billed: sent))
        }
        switch exchange.timedOut {
        case .connect:
            return .unbilled(
                ExpertError(
                    .unreachable, "\(name): could not connect to \(endpoint) within connect_timeout (\(configuration.connectTimeout.spelled))"),
                retryAfter: nil)
        case .idle:
            return .failed(
                ExpertError(
                    .timeout,
                    "\(name): no data from \(endpoint) for read_timeout (\(configuration.readTimeout.spelled))"
                        + (reader.outputBegan ? " in the middle of the answer" : " after the request was sent")
                        + "; the provider may have billed the call and its usage is unknown",
                    usage: partial, billed: true))
        case nil:
            break
        }
        let detail = underlying.map { " (\(Self.describe($0)))" } ?? ""
        guard sent else {
            return .unbilled(ExpertError(.unreachable, "\(name): could not send the request to \(endpoint)\(detail)"), retryAfter: nil)
        }
        return .failed(
            ExpertError(
                .streamCut,
                "\(name): the connection to \(endpoint) ended before the provider reported usage"
                    + (reader.outputBegan ? ", in the middle of the answer" : "")
                    + "\(detail); the call may have been billed and its usage is unknown",
                usage: partial, billed: true))
    }

    private func statusFailure(_ head: HTTPResponseHead, body: ByteBuffer) -> Attempt {
        let status = Int(head.status.code)
        let data = Data(body.readableBytesView)
        var message =
            ChatCompletionsWire.ErrorBody.message(in: data)
            ?? String(decoding: data.prefix(500), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if let apiKey, !apiKey.value.isEmpty { message = message.replacingOccurrences(of: apiKey.value, with: "[redacted]") }
        let said = message.isEmpty ? "HTTP \(status)" : "HTTP \(status): \(message)"
        switch status {
        case 429:
            let retryAfter = head.headers.first(name: "Retry-After").flatMap(Double.init).flatMap {
                $0 >= 0 ? Duration.milliseconds(Int64($0 * 1000)) : nil
            }
            return .unbilled(
                ExpertError(.rateLimited, "\(name): the provider is rate limiting this account (\(said))", status: status), retryAfter: retryAfter)
        case 503:
            return .unbilled(ExpertError(.overloaded, "\(name): the provider is overloaded (\(said))", status: status), retryAfter: nil)
        case 400 where message.localizedCaseInsensitiveContains("reasoning_content"):
            return .failed(
                ExpertError(
                    .reasoningContentMissing,
                    "\(name): in thinking mode every earlier assistant turn that called tools must carry its reasoning_content (\(said)); "
                        + "send ModelResponse.assistantMessage back unchanged, or turn thinking off for this call",
                    status: status))
        case 400, 413, 422:
            return .failed(ExpertError(.badRequest, "\(name): the provider refused the request (\(said))", status: status))
        case 401, 403:
            let source = configuration.apiKeyEnvironmentVariable.map { "the API key in $\($0)" } ?? "the request (no API key is configured)"
            return .failed(ExpertError(.unauthorized, "\(name): the provider refused \(source) (\(said))", status: status))
        default:
            return .failed(ExpertError(.providerError, "\(name): the provider answered \(said)", status: status))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: error)
    }
}

/// Reads one 200 answer, streamed (SSE) or whole, into a ``ModelResponse``.
struct AnswerReader {
    let expert: String
    let fallbackModel: String
    var streaming = true
    /// `data: [DONE]` arrived.
    private(set) var done = false
    private(set) var outputBegan = false
    private var parser = ServerSentEventParser()
    private var whole = ByteBuffer()
    private var streamedBytes = 0
    private var text = ""
    private var reasoning = ""
    /// How much of `text` and `reasoning` has been handed out as deltas.
    private var deltaOffsets = (text: 0, reasoning: 0)
    private var calls: [Int: (id: String, name: String, arguments: String)] = [:]
    private var finishReason: String?
    private var model: String?
    private var usage: ReportedUsage?

    init(expert: String, fallbackModel: String) {
        self.expert = expert
        self.fallbackModel = fallbackModel
    }

    var hasUsage: Bool { usage != nil }

    /// The text and reasoning streamed since the last call, if any.
    mutating func takeDelta() -> ModelDelta? {
        guard streaming else { return nil }
        let textUTF8 = text.utf8
        let reasoningUTF8 = reasoning.utf8
        guard textUTF8.count > deltaOffsets.text || reasoningUTF8.count > deltaOffsets.reasoning else { return nil }
        let delta = ModelDelta(
            text: String(decoding: textUTF8.dropFirst(deltaOffsets.text), as: UTF8.self),
            reasoning: String(decoding: reasoningUTF8.dropFirst(deltaOffsets.reasoning), as: UTF8.self))
        deltaOffsets = (textUTF8.count, reasoningUTF8.count)
        return delta
    }

    /// What is known of a call that ended early: never a guess, and marked unknown.
    var partialUsage: ReportedUsage {
        var partial = usage ?? .zero
        partial.usageKnown = usage != nil
        return partial
    }

    /// Takes the next part of the body; returns an error the body itself carried.
    mutating func consume(_ buffer: ByteBuffer) -> ExpertError? {
        guard streaming else {
            var buffer = buffer
            guard whole.readableBytes + buffer.readableBytes <= OpenAIExpert.maxBodyBytes else {
                return ExpertError(.badResponse, "\(expert): the answer is larger than \(OpenAIExpert.maxBodyBytes >> 20) MiB", billed: true)
            }
            whole.writeBuffer(&buffer)
            return nil
        }
        streamedBytes += buffer.readableBytes
        guard streamedBytes <= OpenAIExpert.maxBodyBytes else {
            return ExpertError(
                .badResponse, "\(expert): the answer stream is larger than \(OpenAIExpert.maxBodyBytes >> 20) MiB", usage: partialUsage, billed: true)
        }
        for event in parser.feed(buffer.readableBytesView).map(\.data) where !done {
            if let error = take(event) { return error }
        }
        return nil
    }

    private mutating func take(_ event: String) -> ExpertError? {
        let payload = event.trimmingCharacters(in: .whitespaces)
        if payload == "[DONE]" {
            done = true
            return nil
        }
        let chunk: ChatCompletionsWire.Completion
        do {
            chunk = try JSONDecoder().decode(ChatCompletionsWire.Completion.self, from: Data(payload.utf8))
        } catch {
            return ExpertError(
                .badResponse, "\(expert): the provider streamed an event that is not a chat-completion chunk: \(payload.prefix(200))",
                usage: partialUsage, billed: true)
        }
        return apply(chunk, streamed: true)
    }

    private mutating func apply(_ chunk: ChatCompletionsWire.Completion, streamed: Bool) -> ExpertError? {
        if let error = chunk.error {
            return ExpertError(
                .providerError, "\(expert): the provider reported an error in its answer: \(error.message ?? error.type ?? "unknown")",
                usage: partialUsage, billed: true)
        }
        if let name = chunk.model, !name.isEmpty { model = name }
        for choice in chunk.choices ?? [] where (choice.index ?? 0) == 0 {
            if let message = streamed ? choice.delta : choice.message {
                if let content = message.content, !content.isEmpty {
                    text += content
                    outputBegan = true
                }
                if let content = message.reasoning_content, !content.isEmpty {
                    reasoning += content
                    outputBegan = true
                }
                for (position, call) in (message.tool_calls ?? []).enumerated() {
                    outputBegan = true
                    let index = call.index ?? (streamed ? 0 : position)
                    var entry = calls[index] ?? (id: "", name: "", arguments: "")
                    if let id = call.id, !id.isEmpty { entry.id = id }
                    if let name = call.function?.name, !name.isEmpty, entry.name.isEmpty || !streamed { entry.name = name }
                    if let arguments = call.function?.arguments?.text { entry.arguments += arguments }
                    calls[index] = entry
                }
            }
            if let reason = choice.finish_reason, !reason.isEmpty { finishReason = reason }
        }
        if let wire = chunk.usage { usage = wire.tokenUsage }
        return nil
    }

    /// The answer, once the body has ended.
    mutating func finish() -> Result<ModelResponse, ExpertError> {
        if streaming {
            if !done, let event = parser.finish()?.data {
                // A last event without its blank line counts only if it is whole; a
                // fragment of a cut event is dropped (and the cut reported below).
                _ = take(event)
            }
            guard hasUsage || done else {
                return .failure(
                    ExpertError(
                        .streamCut,
                        "\(expert): the answer stream ended before the provider reported usage"
                            + (outputBegan ? ", in the middle of the answer" : "") + "; the call may have been billed and its usage is unknown",
                        usage: partialUsage, billed: true))
            }
        } else {
            let data = Data(whole.readableBytesView)
            let completion: ChatCompletionsWire.Completion
            do {
                completion = try JSONDecoder().decode(ChatCompletionsWire.Completion.self, from: data)
            } catch {
                return .failure(
                    ExpertError(
                        .badResponse, "\(expert): the answer is not a chat completion: \(String(decoding: data.prefix(200), as: UTF8.self))",
                        usage: partialUsage, billed: true))
            }
            if let error = apply(completion, streamed: false) { return .failure(error) }
            guard !(completion.choices ?? []).isEmpty else {
                return .failure(ExpertError(.badResponse, "\(expert): the answer has no choices", usage: partialUsage, billed: true))
            }
        }
        let toolCalls = calls.keys.sorted().compactMap { index -> ToolCall? in
            guard let call = calls[index] else { return nil }
            return ToolCall(id: call.id.isEmpty ? "call_\(index)" : call.id, name: call.name, arguments: call.arguments)
        }
        // A complete answer from a server that does not report usage: known to be unknown.
        let usage = self.usage ?? ReportedUsage(promptTokens: 0, completionTokens: 0, usageKnown: false)
        return .success(
            ModelResponse(
                text: text, reasoning: reasoning.isEmpty ? nil : reasoning, toolCalls: toolCalls, finishReason: finishReason,
                model: model ?? fallbackModel, usage: usage))
    }
}

extension Duration {
    /// The duration as the config file spells it (`30s`, `1m30s`, `250ms`).
    var spelled: String {
        TimeSpan(self).description
    }
}
