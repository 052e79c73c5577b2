import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A real HTTP server on 127.0.0.1 (port 0) for the HTTP tool tests, recording
/// every request it sees.
final class RequestLog: Sendable {
    struct Entry: Sendable {
        var method: String
        var path: String
        var query: String
        var headers: [String: String]
        var body: String
    }

    private let entries = Mutex<[Entry]>([])

    func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }
    var all: [Entry] { entries.withLock { $0 } }
}

struct TestServer {
    let port: Int
    let log: RequestLog

    var base: String { "http://127.0.0.1:\(port)" }

    static func with(_ body: @Sendable (TestServer) async throws -> Void) async throws {
        let log = RequestLog()
        let router = Router()

        @Sendable func record(_ request: Request, _ body: String) {
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            log.append(.init(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "", headers: headers, body: body))
        }

        @Sendable func echo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
            let bytes = try await request.body.collect(upTo: 1 << 20)
            let text = String(buffer: bytes)
            record(request, text)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let object: [String: Any] = [
                "method": request.method.rawValue, "path": request.uri.path, "authority": request.head.authority ?? "",
                "query": request.uri.query ?? "", "headers": headers, "body": text,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/echo/**", use: echo)
        router.post("/echo/**", use: echo)
        router.put("/echo/**", use: echo)
        router.delete("/echo/**", use: echo)

        router.get("/text") { request, _ -> Response in
            record(request, "")
            return Response(
                status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "hello, tools")))
        }
        router.get("/slow") { request, _ -> Response in
            record(request, "")
            try await Task.sleep(for: .seconds(3))
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "late")))
        }
        router.get("/big") { request, _ -> Response in
            record(request, "")
            return Response(
                status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(repeating: UInt8(ascii: "x"), count: 2 << 20)))
        }
        router.get("/big-stream") { request, _ -> Response in
            record(request, "")
            // No Content-Length: the cap must stop the reading, not the header check.
            return Response(
                status: .ok, headers: [.contentType: "text/plain"],
                body: ResponseBody { writer in
                    for _ in 0..<64 { try await writer.write(ByteBuffer(repeating: UInt8(ascii: "y"), count: 64 << 10)) }
                    try await writer.finish(nil)
                })
        }
        router.get("/redirect") { request, _ -> Response in
            record(request, "")
            let target = request.uri.queryParameters.get("to") ?? "/"
            let status = request.uri.queryParameters.get("status", as: Int.self) ?? 302
            return Response(status: .init(code: status), headers: [.location: target])
        }
        router.post("/redirect") { request, _ -> Response in
            record(request, "")
            let target = request.uri.queryParameters.get("to") ?? "/"
            let status = request.uri.queryParameters.get("status", as: Int.self) ?? 302
            return Response(status: .init(code: status), headers: [.location: target])
        }
        router.get("/loop") { request, _ -> Response in
            record(request, "")
            return Response(status: .found, headers: [.location: "/loop"])
        }
        router.get("/status/{code}") { request, context -> Response in
            record(request, "")
            let code = try context.parameters.require("code", as: Int.self)
            // Echoes the credentials, as careless servers do: they must not reach the error.
            let auth = request.headers[.authorization] ?? "none"
            return Response(
                status: .init(code: code), headers: [.contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: "denied for \(auth)\n  see   docs")))
        }
        router.get("/bad-json") { request, _ -> Response in
            record(request, "")
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{not json")))
        }

        var logger = Logger(label: "tools-test-server")
        logger.logLevel = .warning
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
            logger: logger)
        // Stopped by a graceful shutdown, never by cancellation: cancelling a server that
        // has just accepted a connection drops it unserved, which trips NIO's check that
        // every channel writer is finished and kills the test process
        // (apple/swift-nio#2813). (The same as SwitchyardTests' `withTestApplication`.)
        let services = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                try? await services.run()
            }
            var iterator = ports.makeAsyncIterator()
            let port = await iterator.next() ?? 0
            let result: Result<Void, any Error>
            do {
                result = .success(try await body(TestServer(port: port, log: log)))
            } catch {
                result = .failure(error)
            }
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            try result.get()
        }
    }
}
