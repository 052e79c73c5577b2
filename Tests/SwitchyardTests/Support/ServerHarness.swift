import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardServer
import SwitchyardStore
import SwitchyardTools
import Testing

/// A live server on a loopback port with its own database, spoken to over real HTTP.
struct LiveServer: Sendable {
    let url: String
    let adminKey: String
    let store: TestStore
    /// The server's engine when it runs in this process, to look inside (open event
    /// streams, running steps); nil for a `yard serve` process.
    var engine: Engine? = nil
    /// The server's connection pool when it runs in this process (its call counts).
    var database: Database? = nil

    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var text: String
        var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .null }
        /// The `error.code` of an error answer.
        var errorCode: String? { json["error"]?["code"]?.stringValue }
    }

    /// Sends a request. `key` is the bearer key (nil sends none); `body` is sent as JSON
    /// unless `text` (or `bytes`, sent as they are, e.g. not UTF-8) is given.
    func request(
        _ method: HTTPMethod, _ path: String, key: String?, json body: JSONValue? = nil, text: String? = nil,
        bytes: [UInt8]? = nil, contentType: String? = nil, headers: [(String, String)] = []
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url + path)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.compactJSON))
        } else if let bytes {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        } else if let text {
            request.headers.add(name: "Content-Type", value: contentType ?? "application/yaml")
            request.body = .bytes(ByteBuffer(string: text))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let buffer = try await response.body.collect(upTo: 32 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, text: String(buffer: buffer))
    }

    /// The tenant key of the store's tenant.
    var tenantKey: String { store.apiKey }
}

/// Runs `body` against a live server (HTTP on a free loopback port, engine, fresh
/// database) whose experts answer from `script`.
/// `experts` replaces the scripted `flash` and `pro` (for example `openai` experts
/// pointed at a `FakeDeepSeek`); scripted entries read `script.yaml`, written from `script`.
func withLiveServer<T: Sendable>(
    script: String = "[]", engine: EngineConfiguration = fastEngineConfiguration(), egress: [String] = [],
    experts: [String: ExpertConfiguration]? = nil, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
    logger: Logger? = nil, _ body: @Sendable (LiveServer) async throws -> T
) async throws -> T {
    try await withTestStore { store in
        try await withLiveServer(
            on: store, script: script, engine: engine, egress: egress, experts: experts, configure: configure, logger: logger, body)
    }
}

/// Runs `body` against a live server on an existing store (a private cluster's, say).
func withLiveServer<T: Sendable>(
    on store: TestStore, script: String = "[]", engine: EngineConfiguration = fastEngineConfiguration(), egress: [String] = [],
    experts: [String: ExpertConfiguration]? = nil, configure: @Sendable (inout ServerConfiguration) -> Void = { _ in },
    logger: Logger? = nil, _ body: @Sendable (LiveServer) async throws -> T
) async throws -> T {
    do {
        let directory = NSTemporaryDirectory() + "switchyard-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try script.write(toFile: directory + "/script.yaml", atomically: true, encoding: .utf8)
        var configuration = ServerConfiguration()
        configuration.secretKey = testSecretKey
        configuration.egress = try EgressPolicy(allowing: egress)
        configuration.port = 0
        configuration.adminKey = "admin-\(UUID().uuidString)"
        configuration.engine = engine
        configuration.baseDirectory = directory
        configuration.experts =
            experts ?? [
                "flash": ExpertConfiguration(provider: .scripted, script: "script.yaml", model: "scripted-flash"),
                "pro": ExpertConfiguration(provider: .scripted, script: "script.yaml", model: "scripted-pro"),
            ]
        configure(&configuration)
        let server = try SwitchyardServer(
            configuration: configuration, database: store.database.configuration, logger: logger ?? testLogger("test.server"))
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let (done, doneContinuation) = AsyncStream<Void>.makeStream()
        let adminKey = configuration.adminKey ?? ""
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { portContinuation.finish() }
                try await server.run(onListening: { portContinuation.yield($0) }, until: { for await _ in done {} })
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await group.next()
                throw TestFailure("the server stopped before listening")
            }
            let live = LiveServer(url: "http://127.0.0.1:\(port)", adminKey: adminKey, store: store, engine: server.engine, database: server.database)
            do {
                let result = try await body(live)
                doneContinuation.finish()
                try await group.waitForAll()
                return result
            } catch {
                doneContinuation.finish()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}

/// Runs `body` against a live server whose YAML parse guard is `yamlParsing`: for
/// tests that need a guard with a short deadline, which the config file does not set.
func withAPIServer<T: Sendable>(yamlParsing: YAMLParseGuard, _ body: @Sendable (LiveServer) async throws -> T) async throws -> T {
    try await withLiveServer(configure: { $0.yamlParsing = yamlParsing }, body)
}
