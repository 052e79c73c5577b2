import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A real HTTP service on 127.0.0.1 for agent and tool tests: a tiny knowledge base
/// (`/search?q=`), a slow endpoint, one that wants a bearer token, and one whose JSON
/// holds U+0000 (`/nul`). It records
/// every request, so tests can prove a refused call never left the process.
struct KnowledgeBase: Sendable {
    struct Request: Sendable {
        var method: String
        var path: String
        var query: String
        var authorization: String?
    }

    let port: Int
    private let log: RequestLog

    var base: String { "http://127.0.0.1:\(port)" }
    var requests: [Request] { log.all }

    /// The token `/secure` accepts.
    static let token = "kb-token-7f3e9a"

    final class RequestLog: Sendable {
        private let entries = Mutex<[Request]>([])
        func append(_ entry: Request) { entries.withLock { $0.append(entry) } }
        var all: [Request] { entries.withLock { $0 } }
    }

    static func with<T: Sendable>(_ body: @Sendable (KnowledgeBase) async throws -> T) async throws -> T {
        let log = RequestLog()
        let router = Router()
        @Sendable func record(_ request: Hummingbird.Request) {
            log.append(
                Request(
                    method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                    authorization: request.headers[.authorization]))
        }
        @Sendable func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
            Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/search") { request, _ -> Response in
            record(request)
            let query = request.uri.queryParameters.get("q") ?? ""
            return json(#"{"query":"\#(query)","articles":[{"id":"kb-42","title":"Refunds arrive within 5 working days"}]}"#)
        }
        router.get("/nul") { request, _ -> Response in
            record(request)
            return json(#"{"text":"before\u0000after","\u0000key":1}"#)
        }
        router.get("/slow") { request, _ -> Response in
            record(request)
            try await Task.sleep(for: .seconds(5))
            return json(#"{"late":true}"#)
        }
        router.get("/secure") { request, _ -> Response in
            record(request)
            guard request.headers[.authorization] == "Bearer \(token)" else { return json(#"{"error":"unauthorized"}"#, status: .unauthorized) }
            return json(#"{"ok":true,"orders":3}"#)
        }
        var logger = Logger(label: "knowledge-base")
        logger.logLevel = .warning
        return try await withTestApplication(router: router, logger: logger) { port in
            try await body(KnowledgeBase(port: port, log: log))
        }
    }
}

/// A log handler that keeps every message, to prove what never reaches the logs.
final class RecordingLogHandler: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])
    private let levelStore = Mutex(Logger.Level.trace)
    private let metadataStore = Mutex(Logger.Metadata())

    static func logger(_ label: String) -> (Logger, @Sendable () -> String) {
        let handler = RecordingLogHandler()
        return (Logger(label: label) { _ in handler }, { handler.text })
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var logLevel: Logger.Level {
        get { levelStore.withLock { $0 } }
        set { levelStore.withLock { $0 = newValue } }
    }

    var metadata: Logger.Metadata {
        get { metadataStore.withLock { $0 } }
        set { metadataStore.withLock { $0 = newValue } }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.withLock { $0.append("\(event.level) \(event.message) \(all)") }
    }
}
