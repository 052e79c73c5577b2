import Foundation
import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardTools

/// HTTP tools against a real server on loopback, which the policy allow-lists.
@Suite struct HTTPToolTests {
    let runner = ToolRunner(
        resolver: StaticResolver(["tools.test": [IPAddress("127.0.0.1")!], "evil.test": [IPAddress("10.0.0.1")!]]), logger: Logger(label: "test"))
    let secret = "kb-secret-8f2d61"

    func context(allowing entries: [String] = ["127.0.0.1"]) throws -> ToolCallContext {
        ToolCallContext(tenant: UUID(), secrets: ["KB_TOKEN": secret], egress: try EgressPolicy(allowing: entries))
    }

    func tool(
        _ method: String, _ url: String, headers: [String: String] = [:], timeout: TimeSpan? = nil,
        parameters: JSONValue = ["type": "object"], maxResponseBytes: Int? = nil
    ) -> ToolDefinition {
        ToolDefinition(
            name: "t", description: "test tool", parameters: parameters,
            kind: .http(HTTPToolSpec(method: method, url: url, headers: headers, timeout: timeout)), maxResponseBytes: maxResponseBytes)
    }

    func failure(_ tool: ToolDefinition, _ arguments: JSONValue = [:], context: ToolCallContext) async -> ToolError? {
        do {
            _ = try await runner.call(tool, arguments: arguments, context: context)
            return nil
        } catch {
            return error
        }
    }

    @Test func getSendsTheArgumentsAsAQueryStringAndParsesJSON() async throws {
        try await TestServer.with { server in
            let search = tool(
                "GET", server.base + "/echo/items/{{ args.id }}",
                parameters: ["type": "object", "properties": ["id": ["type": "string"], "q": ["type": "string"], "n": ["type": "integer"]]])
            let result = try await runner.call(search, arguments: ["id": "a/../b?c", "q": "tea & cake", "n": 3], context: try context())
            #expect(result["method"] == "GET")
            // The URL argument is percent-encoded, so it cannot change the path or query.
            #expect(result["path"] == "/echo/items/a%2F..%2Fb%3Fc")
            #expect(result["query"] == "n=3&q=tea%20%26%20cake")
            #expect(server.log.all.count == 1)
        }
    }

    @Test func postSendsTheArgumentsAsAJSONBody() async throws {
        try await TestServer.with { server in
            let post = tool("POST", server.base + "/echo/search")
            let result = try await runner.call(post, arguments: ["query": "refund policy", "limit": 5, "tags": ["a"]], context: try context())
            #expect(result["method"] == "POST")
            #expect(result["body"] == #"{"limit":5,"query":"refund policy","tags":["a"]}"#)
            #expect(result["headers"]?["content-type"] == "application/json")
        }
    }

    @Test func headersCanCarryASecretToTheServer() async throws {
        try await TestServer.with { server in
            let post = tool(
                "POST", server.base + "/echo/search", headers: ["Authorization": "Bearer {{ secrets.KB_TOKEN }}", "X-Query": "{{ args.query }}"])
            let result = try await runner.call(post, arguments: ["query": "refund"], context: try context())
            #expect(result["headers"]?["authorization"] == .string("Bearer \(secret)"))
            #expect(result["headers"]?["x-query"] == "refund")
        }
    }

    @Test func secretsNeverAppearInErrors() async throws {
        try await TestServer.with { server in
            let failing = tool("GET", server.base + "/status/401", headers: ["Authorization": "Bearer {{ secrets.KB_TOKEN }}"])
            let error = try #require(await failure(failing, context: try context()))
            #expect(error.code == .httpStatus)
            #expect(error.status == 401)
            #expect(!error.message.contains(secret))
            #expect(error.message == "HTTP 401 Unauthorized: denied for [REDACTED] see docs")
            #expect(server.log.all.first?.headers["authorization"] == "Bearer \(secret)")
        }
    }

    @Test func aMissingSecretIsAnErrorNotAnEmptyHeader() async throws {
        try await TestServer.with { server in
            let needsOther = tool("GET", server.base + "/echo/x", headers: ["Authorization": "Bearer {{ secrets.OTHER }}"])
            let error = try #require(await failure(needsOther, context: try context()))
            #expect(error.code == .secretMissing)
            #expect(error.message.contains("secrets.OTHER"))
            #expect(server.log.all.isEmpty)
        }
    }

    @Test func textResponsesAreReturnedAsStrings() async throws {
        try await TestServer.with { server in
            let text = try await runner.call(tool("GET", server.base + "/text"), arguments: [:], context: try context())
            #expect(text == "hello, tools")
        }
    }

    @Test func invalidArgumentsAreRefusedBeforeAnyRequest() async throws {
        try await TestServer.with { server in
            let strict = tool(
                "POST", server.base + "/echo/search",
                parameters: [
                    "type": "object",
                    "properties": ["query": ["type": "string", "pattern": "^[a-z ]+$"], "limit": ["type": "integer", "maximum": 10]],
                    "required": ["query"],
                ])
            let error = try #require(await failure(strict, ["query": "DROP TABLE", "limit": 50], context: try context()))
            #expect(error.code == .invalidArguments)
            #expect(error.message.contains("$.query: must match the pattern"))
            #expect(error.message.contains("$.limit: must be at most 10, got 50"))
            let missing = try #require(await failure(strict, ["limit": 1], context: try context()))
            #expect(missing.message.contains("$.query: required property is missing"))
            #expect(server.log.all.isEmpty)
        }
    }

    @Test func destinationsOffTheAllowListAreRefusedBeforeAnyRequest() async throws {
        try await TestServer.with { server in
            let error = try #require(await failure(tool("GET", server.base + "/echo/x"), context: try context(allowing: [])))
            #expect(error.code == .egressDenied)
            #expect(error.message.contains("loopback"))
            #expect(server.log.all.isEmpty)
        }
    }

    @Test func aHostNameIsConnectedToTheVettedAddress() async throws {
        try await TestServer.with { server in
            // tools.test exists only in the injected resolver: the request can only have
            // reached the server through the pinned address, with the name as Host.
            let named = tool("GET", "http://tools.test:\(server.port)/echo/pinned")
            let result = try await runner.call(named, arguments: [:], context: try context())
            #expect(result["authority"] == .string("tools.test:\(server.port)"))
        }
    }

    @Test func redirectsAreFollowedAndEachHopIsChecked() async throws {
        try await TestServer.with { server in
            let ok = tool("GET", server.base + "/redirect?to=/echo/after")
            #expect(try await runner.call(ok, arguments: [:], context: try context())["path"] == "/echo/after")

            let toMetadata = tool("GET", server.base + "/redirect?to=http://169.254.169.254/latest/meta-data/")
            let denied = try #require(await failure(toMetadata, context: try context()))
            #expect(denied.code == .egressDenied)
            #expect(denied.message.contains("169.254.169.254"))

            let toPrivateName = tool("GET", server.base + "/redirect?to=http://evil.test/")
            #expect(await failure(toPrivateName, context: try context())?.code == .egressDenied)

            let loop = try #require(await failure(tool("GET", server.base + "/loop"), context: try context()))
            #expect(loop.code == .tooManyRedirects)
            #expect(server.log.all.filter { $0.path == "/loop" }.count == 6)
        }
    }

    @Test func aRedirectToAnotherOriginDropsTheToolsHeaders() async throws {
        try await TestServer.with { server in
            let other = "http://tools.test:\(server.port)/echo/elsewhere"
            let leaky = tool("GET", server.base + "/redirect?to=\(other)", headers: ["Authorization": "Bearer {{ secrets.KB_TOKEN }}"])
            let result = try await runner.call(leaky, arguments: [:], context: try context())
            #expect(result["path"] == "/echo/elsewhere")
            #expect(result["headers"]?["authorization"] == nil)
        }
    }

    @Test func a303AfterAPostBecomesAGet() async throws {
        try await TestServer.with { server in
            let post = tool("POST", server.base + "/redirect?status=303&to=/echo/done")
            let result = try await runner.call(post, arguments: ["x": 1], context: try context())
            #expect(result["method"] == "GET")
            #expect(result["body"] == "")
        }
    }

    @Test func aSlowServerTimesOut() async throws {
        try await TestServer.with { server in
            let started = ContinuousClock.now
            let error = try #require(await failure(tool("GET", server.base + "/slow", timeout: TimeSpan(milliseconds: 300)), context: try context()))
            #expect(error.code == .timeout)
            #expect(error.retryable)
            #expect(ContinuousClock.now - started < .seconds(2))
        }
    }

    @Test func aLargeResponseIsRefused() async throws {
        try await TestServer.with { server in
            let big = try #require(await failure(tool("GET", server.base + "/big"), context: try context()))
            #expect(big.code == .responseTooLarge)
            let streamed = try #require(await failure(tool("GET", server.base + "/big-stream"), context: try context()))
            #expect(streamed.code == .responseTooLarge)
            let small = try #require(await failure(tool("GET", server.base + "/text", maxResponseBytes: 5), context: try context()))
            #expect(small.code == .responseTooLarge)
        }
    }

    @Test func nonSuccessStatusesAreToolErrors() async throws {
        try await TestServer.with { server in
            let notFound = try #require(await failure(tool("GET", server.base + "/status/404"), context: try context()))
            #expect(notFound.code == .httpStatus)
            #expect(notFound.status == 404)
            #expect(!notFound.retryable)
            let unavailable = try #require(await failure(tool("GET", server.base + "/status/503"), context: try context()))
            #expect(unavailable.retryable)
            let badJSON = try #require(await failure(tool("GET", server.base + "/bad-json"), context: try context()))
            #expect(badJSON.code == .invalidResponse)
        }
    }

    @Test func httpGetFetchesAllowListedURLs() async throws {
        try await TestServer.with { server in
            let get = try #require(ToolDefinition.builtin(named: "http_get"))
            #expect(try await runner.call(get, arguments: ["url": .string(server.base + "/text")], context: try context()) == "hello, tools")
            let redirected = try #require(await failure(get, ["url": .string(server.base + "/redirect?to=http://8.8.8.8/")], context: try context()))
            #expect(redirected.code == .egressDenied)
        }
    }

    @Test func aToolSpecIsCheckedBeforeUse() throws {
        #expect(throws: ToolError.self) { try ToolDefinition(ToolSpec(name: "x", http: HTTPToolSpec(url: "https://a.example/{{ secrets.T }}"))) }
        #expect(throws: ToolError.self) { try ToolDefinition(ToolSpec(name: "x", http: HTTPToolSpec(method: "TRACE", url: "https://a.example/"))) }
        #expect(throws: ToolError.self) { try ToolDefinition(ToolSpec(name: "x", http: HTTPToolSpec(url: "https://a.example/{{ inputs.x }}"))) }
        #expect(throws: ToolError.self) {
            try ToolDefinition(ToolSpec(name: "x", http: HTTPToolSpec(url: "https://a.example/"), parameters: ["type": "strin"]))
        }
        let ok = try ToolDefinition(
            ToolSpec(
                name: "search_kb", description: "Search.",
                http: HTTPToolSpec(url: "https://kb.example.com/search", headers: ["Authorization": "Bearer {{ secrets.KB_TOKEN }}"])))
        #expect(ok.parameters == ["type": "object"])
    }
}
