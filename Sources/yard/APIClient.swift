import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
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

    struct Response {
        var status: Int
        var body: JSONValue
        var headers: HTTPHeaders
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
        let buffer = try await response.body.collect(upTo: 64 << 20)
        let body = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))) ?? .null
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let code = body["error"]?["code"]?.stringValue ?? "http_\(status)"
            var message = body["error"]?["message"]?.stringValue ?? String(buffer: buffer)
            if let details = body["error"]?["details"]?.arrayValue, !details.isEmpty {
                // The details say it all; the message repeats the first of them.
                if details.count == 1 { message = "" } else if !message.hasPrefix("\(details.count) ") { message = "\(details.count) problems" }
                for detail in details {
                    if let file = detail["file"]?.stringValue, let line = detail["line"]?.intValue, let column = detail["column"]?.intValue {
                        let path = detail["path"]?.stringValue.map { $0.isEmpty ? "" : " \($0):" } ?? ""
                        message += "\n  \(file):\(line):\(column):\(path) \(detail["message"]?.stringValue ?? "")"
                    } else if let path = detail["path"]?.stringValue {
                        message += "\n  \(path): \(detail["message"]?.stringValue ?? "")"
                    }
                }
            }
            throw CLIError("\(code): \(message)")
        }
        return Response(status: status, body: body, headers: response.headers)
    }

    /// Streams a run's events (Server-Sent Events), calling `onEvent` with each type and
    /// JSON payload until the stream ends.
    func streamEvents(run: String, after: Int64 = 0, onEvent: (String, JSONValue) async throws -> Void) async throws {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + "/v1/runs/\(run)/events")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if after > 0 { request.headers.add(name: "Last-Event-ID", value: String(after)) }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .hours(24))
        } catch {
            throw CLIError("cannot reach the Switchyard server at \(baseURL): \(error)")
        }
        guard response.status == .ok else {
            let buffer = try await response.body.collect(upTo: 1 << 20)
            let body = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer))) ?? .null
            throw CLIError("\(body["error"]?["code"]?.stringValue ?? "http_\(response.status.code)"): \(body["error"]?["message"]?.stringValue ?? "")")
        }
        var parser = ServerSentEventParser()
        for try await chunk in response.body {
            for event in parser.feed(Array(chunk.readableBytesView)) {
                let data = (try? JSONDecoder().decode(JSONValue.self, from: Data(event.data.utf8))) ?? .null
                try await onEvent(event.type, data)
            }
        }
    }
}

/// Splits a Server-Sent Events byte stream into events. Bytes are buffered until an
/// event's blank line, and only whole events are decoded as UTF-8: an event, or one
/// character of it, may arrive split across network chunks.
struct ServerSentEventParser {
    struct Event: Equatable {
        var id: String?
        var type: String
        var data: String
    }

    private var pending: [UInt8] = []

    mutating func feed(_ bytes: [UInt8]) -> [Event] {
        pending += bytes.filter { $0 != UInt8(ascii: "\r") }
        var events: [Event] = []
        var start = 0
        var index = 0
        while index + 1 < pending.count {
            if pending[index] == UInt8(ascii: "\n") && pending[index + 1] == UInt8(ascii: "\n") {
                if let event = Self.parse(String(decoding: pending[start..<index], as: UTF8.self)) { events.append(event) }
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        pending.removeFirst(start)
        return events
    }

    private static func parse(_ block: String) -> Event? {
        var event = Event(id: nil, type: "message", data: "")
        var dataLines: [Substring] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") { continue }
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            var value = parts.count > 1 ? parts[1] : ""
            if value.hasPrefix(" ") { value = value.dropFirst() }
            switch parts[0] {
            case "id": event.id = String(value)
            case "event": event.type = String(value)
            case "data": dataLines.append(value)
            default: break
            }
        }
        event.data = dataLines.joined(separator: "\n")
        return dataLines.isEmpty && event.id == nil ? nil : event
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
