import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore

/// Bounds on every tool call.
public struct ToolLimits: Sendable, Hashable {
    /// For tools that declare no `timeout`.
    public var defaultTimeout: Duration
    /// A declared timeout above this is lowered to it.
    public var maxTimeout: Duration
    /// The largest response body read; more is `response_too_large`.
    public var maxResponseBytes: Int
    /// Redirects followed per call; each hop is checked against the egress policy.
    public var maxRedirects: Int
    /// How much of an error response's body is quoted in the error message.
    public var errorExcerptCharacters: Int

    public init(
        defaultTimeout: Duration = .seconds(10), maxTimeout: Duration = .seconds(60), maxResponseBytes: Int = 1 << 20,
        maxRedirects: Int = 5, errorExcerptCharacters: Int = 300
    ) {
        self.defaultTimeout = defaultTimeout
        self.maxTimeout = maxTimeout
        self.maxResponseBytes = maxResponseBytes
        self.maxRedirects = maxRedirects
        self.errorExcerptCharacters = errorExcerptCharacters
    }

    public static let `default` = ToolLimits()
}

/// Runs declared HTTP tools and built-ins for the engine and the agent loop.
///
/// Every call: arguments are validated against the tool's schema first (nothing is
/// sent when they do not match); the destination of every hop is checked against
/// the call's ``EgressPolicy``; the whole call, redirects included, has one
/// deadline; the body is read up to a cap; and every secret of the tenant is
/// redacted from error messages.
///
/// DNS pinning: AsyncHTTPClient 1.37 has no per-request resolver or address
/// override (swift-server/async-http-client#866); `Configuration.dnsOverride` is
/// per client. So each hop runs on a short-lived `HTTPClient` that shares the
/// event loop group and maps the URL's host to the one address the egress check
/// vetted. The URL keeps its host name, so the `Host` header, TLS SNI and
/// certificate verification are those of the name, while the TCP connection goes to
/// the vetted address and the client never resolves the name itself: a DNS answer
/// that changes after the check (rebinding) cannot send the call elsewhere. The
/// price is no connection reuse between tool calls (a new TCP and TLS handshake per
/// call), which is small next to a model call.
public struct ToolRunner: ToolRunning {
    let eventLoopGroup: any EventLoopGroup
    let resolver: any HostResolver
    let logger: Logger
    let limits: ToolLimits
    let now: @Sendable () -> Date

    /// Uses `httpClient`'s event loop group; requests go through short-lived clients
    /// on that group (see the type's documentation), so `httpClient` itself can be
    /// any client the server already has.
    public init(
        httpClient: HTTPClient, resolver: any HostResolver = SystemResolver(), logger: Logger, limits: ToolLimits = .default,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(eventLoopGroup: httpClient.eventLoopGroup, resolver: resolver, logger: logger, limits: limits, now: now)
    }

    public init(
        eventLoopGroup: any EventLoopGroup = HTTPClient.defaultEventLoopGroup, resolver: any HostResolver = SystemResolver(),
        logger: Logger, limits: ToolLimits = .default, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.eventLoopGroup = eventLoopGroup
        self.resolver = resolver
        self.logger = logger
        self.limits = limits
        self.now = now
    }

    public func call(_ tool: ToolDefinition, arguments: JSONValue, context: ToolCallContext) async throws(ToolError) -> JSONValue {
        var redactor = SecretRedactor(secrets: context.secrets.values)
        do throws(ToolError) {
            return try await perform(tool, arguments: arguments, context: context, redactor: &redactor)
        } catch {
            let safe = error.redacted(by: redactor)
            logger.notice(
                "tool call failed",
                metadata: ["tool": "\(tool.name)", "tenant": "\(context.tenant)", "code": "\(safe.code.rawValue)", "error": "\(safe.message)"])
            throw safe
        }
    }

    private func perform(
        _ tool: ToolDefinition, arguments: JSONValue, context: ToolCallContext, redactor: inout SecretRedactor
    )
        async throws(ToolError) -> JSONValue
    {
        let schema: JSONSchema
        do {
            schema = try JSONSchema(tool.parameters)
        } catch {
            throw ToolError(.invalidTool, "tool \(tool.name): parameters: \(error)")
        }
        let problems = schema.validate(arguments)
        guard problems.isEmpty else {
            throw ToolError(.invalidArguments, "invalid arguments for \(tool.name): " + problems.prefix(20).joined(separator: "; "))
        }

        switch tool.kind {
        case .http(let spec):
            let request = try HTTPToolCall(spec: spec, toolName: tool.name, arguments: arguments, secrets: context.secrets)
            redactor = SecretRedactor(secrets: Array(context.secrets.values) + request.sensitiveValues)
            let timeout = spec.timeout.map { min($0.duration, limits.maxTimeout) } ?? limits.defaultTimeout
            return try await fetch(
                request, tool: tool.name, mode: .publicOrAllowed, timeout: timeout,
                maxBytes: tool.maxResponseBytes ?? limits.maxResponseBytes, context: context, redactor: redactor)

        case .builtin(.httpGet):
            guard let text = arguments["url"]?.stringValue, let url = URL(string: text) else {
                throw ToolError(.invalidArguments, "invalid arguments for http_get: $.url: not a URL")
            }
            let request = HTTPToolCall(method: "GET", url: url, headers: [], body: nil)
            return try await fetch(
                request, tool: tool.name, mode: .allowListOnly, timeout: limits.defaultTimeout,
                maxBytes: tool.maxResponseBytes ?? limits.maxResponseBytes, context: context, redactor: redactor)

        case .builtin(.jsonQuery):
            return try JSONQuery.evaluate(arguments["data"] ?? .null, path: arguments["path"]?.stringValue ?? "")

        case .builtin(.currentTime):
            return try CurrentTime.evaluate(timezone: arguments["timezone"]?.stringValue, now: now())

        case .builtin(.calculator):
            return try Calculator.evaluate(arguments["expression"]?.stringValue ?? "")
        }
    }

    // MARK: HTTP

    private struct Received {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    private enum Hop {
        case redirect(to: URL, status: Int)
        case final(Received)
    }

    private func fetch(
        _ first: HTTPToolCall, tool: String, mode: EgressMode, timeout: Duration, maxBytes: Int, context: ToolCallContext,
        redactor: SecretRedactor
    ) async throws(ToolError) -> JSONValue {
        let started = ContinuousClock.now
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        var request = first
        var hops = 0
        while true {
            let hop = try await send(request, mode: mode, deadline: deadline, timeout: timeout, maxBytes: maxBytes, context: context)
            switch hop {
            case .final(let received):
                logger.info(
                    "tool call",
                    metadata: [
                        "tool": "\(tool)", "tenant": "\(context.tenant)", "method": "\(request.method)",
                        "host": "\(request.url.host ?? "")", "status": "\(received.status)", "bytes": "\(received.body.count)",
                        "redirects": "\(hops)", "ms": "\((ContinuousClock.now - started).inMilliseconds)",
                    ])
                return try interpret(received, redactor: redactor)
            case .redirect(let next, let status):
                hops += 1
                guard hops <= limits.maxRedirects else {
                    throw ToolError(.tooManyRedirects, "more than \(limits.maxRedirects) redirects (last: \(status) to \(Self.describe(next)))")
                }
                request = Self.follow(request, to: next, status: status)
            }
        }
    }

    /// The next request after a redirect: 303 (and 301/302 after a POST, as browsers
    /// do) becomes a GET without a body; 307/308 keep method and body. The tool's
    /// headers (which may carry secrets) are dropped when the origin changes.
    static func follow(_ request: HTTPToolCall, to url: URL, status: Int) -> HTTPToolCall {
        var next = request
        next.url = url
        if status == 303 || ((status == 301 || status == 302) && request.method == "POST") {
            if next.method != "HEAD" { next.method = "GET" }
            next.body = nil
            next.headers.removeAll { $0.name.lowercased() == "content-type" }
        }
        let sameOrigin =
            request.url.scheme?.lowercased() == url.scheme?.lowercased()
            && request.url.host?.lowercased() == url.host?.lowercased() && effectivePort(request.url) == effectivePort(url)
        if !sameOrigin {
            next.headers.removeAll { $0.name.lowercased() != "content-type" }
        }
        return next
    }

    static func effectivePort(_ url: URL) -> Int {
        url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
    }

    /// One request to one vetted address; reads the body unless it is a redirect.
    private func send(
        _ request: HTTPToolCall, mode: EgressMode, deadline: NIODeadline, timeout: Duration, maxBytes: Int, context: ToolCallContext
    ) async throws(ToolError) -> Hop {
        let url = request.url
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw ToolError(.egressDenied, "only http and https URLs can be called, not \(Self.describe(url))")
        }
        guard url.user == nil, url.password == nil else {
            throw ToolError(.egressDenied, "URLs with credentials (user:password@) are not allowed; use headers")
        }
        guard let host = url.host, !host.isEmpty else {
            throw ToolError(.egressDenied, "the URL \(Self.describe(url)) has no host")
        }
        let address = try await withDeadline(deadline, timeout: timeout) { () async throws(ToolError) -> IPAddress in
            try await context.egress.vet(host: host, mode: mode, resolver: resolver)
        }

        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.proxy = nil
        let bareHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if IPAddress(bareHost) == nil {
            configuration.dnsOverride = [host: address.description]
        }
        let remaining = deadline - .now()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: max(remaining, .milliseconds(1)))
        let client = HTTPClient(eventLoopGroup: eventLoopGroup, configuration: configuration, backgroundActivityLogger: logger)

        var outgoing = HTTPClientRequest(url: url.absoluteString)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        if !outgoing.headers.contains(name: "accept") { outgoing.headers.add(name: "Accept", value: "application/json, text/*;q=0.9, */*;q=0.5") }
        if !outgoing.headers.contains(name: "user-agent") { outgoing.headers.add(name: "User-Agent", value: "Switchyard-Tools/1") }
        // The tool call's span (W3C Trace Context), unless the tool sets its own.
        for (name, value) in OutgoingTraceHeaders.current where !outgoing.headers.contains(name: name) {
            outgoing.headers.add(name: name, value: value)
        }
        if let body = request.body {
            outgoing.body = .bytes(ByteBuffer(bytes: body))
        }

        let result: Result<Hop, ToolError>
        do {
            let response = try await client.execute(outgoing, deadline: deadline, logger: logger)
            let status = Int(response.status.code)
            if [301, 302, 303, 307, 308].contains(status), let location = response.headers.first(name: "location") {
                guard let next = URL(string: location, relativeTo: url)?.absoluteURL else {
                    throw ToolError(.tooManyRedirects, "redirect \(status) to an invalid Location")
                }
                result = .success(.redirect(to: next, status: status))
            } else {
                if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > maxBytes {
                    throw ToolError(.responseTooLarge, "the response is \(length) bytes; the limit is \(maxBytes)")
                }
                var body: [UInt8] = []
                for try await chunk in response.body {
                    guard body.count + chunk.readableBytes <= maxBytes else {
                        throw ToolError(.responseTooLarge, "the response is larger than the limit of \(maxBytes) bytes")
                    }
                    body.append(contentsOf: chunk.readableBytesView)
                }
                result = .success(.final(Received(status: status, headers: response.headers, body: body)))
            }
        } catch let error as ToolError {
            result = .failure(error)
        } catch {
            result = .failure(Self.map(error, deadline: deadline, timeout: timeout, url: url))
        }
        try? await client.shutdown()
        return try result.get()
    }

    /// Runs `body` but gives up at `deadline` (used for name resolution, whose own
    /// timeout may be longer than what is left of the call).
    private func withDeadline<T: Sendable>(
        _ deadline: NIODeadline, timeout: Duration, _ body: @escaping @Sendable () async throws(ToolError) -> T
    ) async throws(ToolError) -> T {
        let remaining = deadline - .now()
        guard remaining > .zero else { throw ToolError(.timeout, "the call took longer than \(timeout)", retryable: true) }
        let outcome: Result<T, ToolError>? = await withTaskGroup(of: Result<T, ToolError>?.self) { group in
            group.addTask {
                do throws(ToolError) { return .success(try await body()) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: .nanoseconds(remaining.nanoseconds))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let outcome else { throw ToolError(.timeout, "the call took longer than \(timeout)", retryable: true) }
        return try outcome.get()
    }

    static func map(_ error: any Error, deadline: NIODeadline, timeout: Duration, url: URL) -> ToolError {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .connectTimeout || error == .readTimeout || deadline <= .now() {
                return ToolError(.timeout, "the call to \(describe(url)) took longer than \(timeout)", retryable: true)
            }
            if error == .cancelled { return ToolError(.cancelled, "the call to \(describe(url)) was cancelled", retryable: true) }
        }
        if deadline <= .now() {
            return ToolError(.timeout, "the call to \(describe(url)) took longer than \(timeout)", retryable: true)
        }
        if error is CancellationError || Task.isCancelled {
            return ToolError(.cancelled, "the call to \(describe(url)) was cancelled", retryable: true)
        }
        return ToolError(.connectionFailed, "the call to \(describe(url)) failed: \(error)", retryable: true)
    }

    /// Scheme, host and path only: queries may carry arguments and are left out of messages.
    static func describe(_ url: URL) -> String {
        var components = URLComponents()
        components.scheme = url.scheme
        components.host = url.host
        components.port = url.port
        components.path = url.path
        return components.string ?? url.absoluteString
    }

    /// A 2xx body as JSON (for JSON content types) or text; anything else an error.
    private func interpret(_ received: Received, redactor: SecretRedactor) throws(ToolError) -> JSONValue {
        let contentType = received.headers.first(name: "content-type")?.lowercased() ?? ""
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        let isJSON = mediaType == "application/json" || mediaType.hasSuffix("+json")
        let text = String(decoding: received.body, as: UTF8.self)
        guard (200..<300).contains(received.status) else {
            var excerpt = redactor.redact(text).split(whereSeparator: \.isWhitespace).joined(separator: " ")
            if excerpt.count > limits.errorExcerptCharacters { excerpt = String(excerpt.prefix(limits.errorExcerptCharacters)) + "…" }
            let retryable = [408, 425, 429, 500, 502, 503, 504].contains(received.status)
            let reason = HTTPResponseStatus(statusCode: received.status).reasonPhrase
            throw ToolError(
                .httpStatus, "HTTP \(received.status) \(reason)" + (excerpt.isEmpty ? "" : ": \(excerpt)"), retryable: retryable,
                status: received.status)
        }
        if received.body.isEmpty { return .null }
        guard isJSON else { return .string(text) }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(received.body))
        } catch {
            throw ToolError(.invalidResponse, "the response says it is JSON (\(mediaType)) but does not parse")
        }
    }
}
