import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore

/// A failure the CLI reports as one line and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

/// The CLI's side of the HTTP API.
struct APIClient: Sendable {
    /// One client for the process. Unlike `HTTPClient.shared` it gives up at once when
    /// nothing listens (no connection retries) and after 5 s when the server does not
    /// accept, so a wrong `--url` fails fast instead of hanging. It lives as long as
    /// the process, like `HTTPClient.shared`, so it is never shut down.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    var baseURL: String
    var apiKey: String?

    /// Where a client goes when neither `--url` nor `YARD_URL` says.
    static let defaultURL = "http://127.0.0.1:8080"

    /// The one client factory of the commands: the server is `url` (`--url`), else
    /// `YARD_URL`, else ``defaultURL``; `key` is whichever key the command resolved.
    static func make(url: String?, key: String?) -> APIClient {
        APIClient(baseURL: url ?? ProcessInfo.processInfo.environment["YARD_URL"] ?? defaultURL, apiKey: key)
    }

    struct Response {
        var status: Int
        /// The body as sent, for `--output json`, which prints what the server answered.
        var body: JSONValue
        var data: Data
        var headers: HTTPHeaders

        /// The body as the wire type `T` (see SwitchyardAPI).
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            do {
                return try WireDecoder.decode(type, from: data)
            } catch {
                throw CLIError("the server's answer is not the \(T.self) this yard reads: \(error)")
            }
        }
    }

    /// Sends a wire-type body (see SwitchyardAPI), encoded as the server encodes its own.
    func send(
        _ method: HTTPMethod, _ path: String, body: some Encodable, headers extra: [(String, String)] = []
    ) async throws -> Response {
        try await send(method, path, json: try WireEncoder.json(body), headers: extra)
    }

    /// The message of an API error: `code: message`, with each of its details on a line
    /// of its own (`file:line:column: path: message` for YAML, else `path: message`).
    static func describe(_ body: APIErrorBody?, status: Int, text: String) -> String {
        guard let error = body?.error else { return "http_\(status): \(text)" }
        var message = error.message
        if let details = error.details, !details.isEmpty {
            // The details say it all; the message repeats the first of them.
            if details.count == 1 { message = "" } else if !message.hasPrefix("\(details.count) ") { message = "\(details.count) problems" }
            for detail in details {
                if let file = detail.file, let line = detail.line, let column = detail.column {
                    let path = detail.path.map { $0.isEmpty ? "" : " \($0):" } ?? ""
                    message += "\n  \(file):\(line):\(column):\(path) \(detail.message)"
                } else if let path = detail.path {
                    message += "\n  \(path): \(detail.message)"
                }
            }
        }
        return "\(error.code): \(message)"
    }

    /// Sends a request and decodes the JSON answer; API errors become `CLIError`s that
    /// carry the server's code and message.
    func send(
        _ method: HTTPMethod, _ path: String, json: JSONValue? = nil, text: String? = nil, contentType: String? = nil,
        headers extra: [(String, String)] = [], timeout: TimeAmount = .seconds(330)
    ) async throws -> Response {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json.compactJSON))
        } else if let text {
            request.headers.add(name: "Content-Type", value: contentType ?? "text/plain")
            request.body = .bytes(ByteBuffer(string: text))
        }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: timeout)
        } catch {
            throw CLIError("cannot reach the Switchyard server at \(baseURL): \(error) (start one with `yard serve`, or set --url / YARD_URL)")
        }
        let data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let error = try? WireDecoder.decode(APIErrorBody.self, from: data)
            throw CLIError(Self.describe(error, status: status, text: String(decoding: data, as: UTF8.self)))
        }
        let body = (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null
        return Response(status: status, body: body, data: data, headers: response.headers)
    }

    /// Streams a run's events (Server-Sent Events), calling `onEvent` with each type and
    /// JSON payload until the run's final event. With `deltas`, live `model.delta` events
    /// (the text of model answers as it streams, never stored) come in between.
    ///
    /// A stream that breaks off before the run's final event is resumed with
    /// `Last-Event-ID`: only events that carry an `id:` (the stored ones) move that
    /// position; deltas have none, so they never do.
    func streamEvents(
        run: String, after: Int64 = 0, deltas: Bool = false, onEvent: (String, JSONValue) async throws -> Void
    ) async throws {
        var position = after
        var attempt = 0
        var failures = 0
        while true {
            attempt += 1
            var progressed = false
            var ended = false
            let broken: (any Error)?
            do {
                broken = try await streamOnce(run: run, after: position, deltas: deltas) { event in
                    if let id = event.id, let seq = Int64(id.trimmingCharacters(in: .whitespaces)) {
                        position = seq
                        progressed = true
                    }
                    if event.id != nil, RunEventType(rawValue: event.type)?.isFinal == true { ended = true }
                    let data = (try? JSONDecoder().decode(JSONValue.self, from: Data(event.data.utf8))) ?? .null
                    try await onEvent(event.type, data)
                }
            } catch let error as StreamConnectError {
                // The first connection fails at once, as every other command does; a
                // later one may meet a server that is restarting, so it is tried again.
                guard attempt > 1, failures < Self.reconnectAttempts else { throw error.error }
                broken = error
            }
            if ended { return }
            if broken == nil, try await runIsFinal(run) {
                // The server ended the stream and the run is over: there is nothing more.
                return
            }
            // A stream ended before the run's final event: the server shut down (it ends
            // its streams then) or the connection broke; resume on this or another server.
            failures = progressed ? 0 : failures + 1
            guard failures <= Self.reconnectAttempts else {
                throw CLIError("the event stream of run \(run) broke off and could not be resumed: \(broken.map { "\($0)" } ?? "no events")")
            }
            FileHandle.standardError.write(Data("event stream interrupted; resuming after event \(position)…\n".utf8))
            try await Task.sleep(for: .milliseconds(250 << min(failures, 3)))
        }
    }

    /// Whether the run has finished, asked when its stream ended without its final
    /// event; a server that cannot be asked (restarting) counts as not finished.
    private func runIsFinal(_ run: String) async throws -> Bool {
        do {
            let status = try await send(.GET, APIPath.v1("runs", run), timeout: .seconds(10)).decode(APIRunEnvelope.self).run.status
            return status.isFinal
        } catch let error as CLIError where error.message.hasPrefix(APIErrorCode.notFound.rawValue) {
            throw error
        } catch {
            return false
        }
    }

    static let reconnectAttempts = 5

    /// A failure to open the stream (as opposed to one while reading it).
    private struct StreamConnectError: Error, CustomStringConvertible {
        var error: CLIError
        var description: String { error.description }
    }

    /// One connection to the event stream. Returns the error that broke it off, or nil
    /// when the server ended it; errors of `onEvent` propagate.
    private func streamOnce(
        run: String, after: Int64, deltas: Bool, onEvent: (ServerSentEvent) async throws -> Void
    ) async throws -> (any Error)? {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + APIPath.v1("runs", run, "events") + (deltas ? "?deltas=1" : ""))
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if after > 0 { request.headers.add(name: "Last-Event-ID", value: String(after)) }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .hours(24))
        } catch {
            throw StreamConnectError(error: CLIError("cannot reach the Switchyard server at \(baseURL): \(error)"))
        }
        guard response.status == .ok else {
            let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
            let error = try? WireDecoder.decode(APIErrorBody.self, from: data)
            throw CLIError("\(error?.error.code ?? "http_\(response.status.code)"): \(error?.error.message ?? "")")
        }
        var parser = ServerSentEventParser()
        var chunks = response.body.makeAsyncIterator()
        while true {
            let chunk: ByteBuffer?
            do {
                chunk = try await chunks.next()
            } catch {
                return error
            }
            guard let chunk else { return nil }
            for event in parser.feed(Array(chunk.readableBytesView)) {
                try await onEvent(event)
            }
        }
    }
}

extension APIClient {
    /// A GET whose answer is text (CSV), not JSON; errors as `send` reports them.
    func text(_ path: String, accept: String) async throws -> String {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + path)
        request.method = .GET
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.headers.add(name: "Accept", value: accept)
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .seconds(330))
        } catch {
            throw CLIError("cannot reach the Switchyard server at \(baseURL): \(error) (start one with `yard serve`, or set --url / YARD_URL)")
        }
        let buffer = try await response.body.collect(upTo: 64 << 20)
        let text = String(buffer: buffer)
        guard (200..<300).contains(Int(response.status.code)) else {
            let error = try? WireDecoder.decode(APIErrorBody.self, from: Data(text.utf8))
            throw CLIError("\(error?.error.code ?? "http_\(response.status.code)"): \(error?.error.message ?? text)")
        }
        return text
    }

    /// Every ledger row of a run (`GET /v1/usage?run=ID`, all pages), oldest first.
    func usage(run id: String) async throws -> [APILedgerRow] {
        var calls: [APILedgerRow] = []
        var cursor: String?
        repeat {
            let page = try await send(.GET, APIPath.v1("usage", query: [("run", id), ("limit", "1000"), ("cursor", cursor)])).decode(
                APIUsagePage.self)
            calls += page.calls
            cursor = page.nextCursor
        } while cursor != nil
        return calls
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
