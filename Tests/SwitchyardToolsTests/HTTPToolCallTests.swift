import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardTools

/// How a declared tool's call becomes a request, without a server.
@Suite struct HTTPToolCallTests {
    func build(
        _ method: String, _ url: String, headers: [String: String] = [:], _ arguments: JSONValue, secrets: [String: String] = [:]
    ) throws(ToolError) -> HTTPToolCall {
        try HTTPToolCall(spec: HTTPToolSpec(method: method, url: url, headers: headers), toolName: "t", arguments: arguments, secrets: secrets)
    }

    @Test func eachArgumentGoesToOnePlace() throws {
        let get = try build(
            "GET", "https://kb.example.com/a/{{ args.id }}?fixed=1#frag", ["id": 7, "tags": ["x", "y z"], "skip": nil, "filter": ["k": 1]])
        #expect(get.url.absoluteString == "https://kb.example.com/a/7?fixed=1&filter=%7B%22k%22%3A1%7D&tags=x&tags=y%20z")
        #expect(get.body == nil)
        let post = try build("post", "https://kb.example.com/a/{{ args.id }}", ["id": 7, "q": "tea"])
        #expect(post.method == "POST")
        #expect(post.url.absoluteString == "https://kb.example.com/a/7")
        #expect(post.body.map { String(decoding: $0, as: UTF8.self) } == #"{"q":"tea"}"#)
        #expect(post.headers.contains { $0.name == "Content-Type" && $0.value == "application/json" })
    }

    @Test func argumentsCannotChangeTheURLsStructure() throws {
        #expect(
            try build("GET", "https://kb.example.com/items/{{ args.id }}", ["id": ".."]).url.absoluteString == "https://kb.example.com/items/%2E%2E")
        #expect(try build("GET", "https://kb.example.com/items/{{ args.id }}", ["id": "x@evil.com/#"]).url.host == "kb.example.com")
    }

    @Test func headersReadSecretsAndAreMarkedSensitive() throws {
        let call = try build(
            "GET", "https://kb.example.com/", headers: ["Authorization": "Bearer {{ secrets.KB_TOKEN }}", "X-Q": "{{ args.q }}"], ["q": "a"],
            secrets: ["KB_TOKEN": "t0k"])
        #expect(call.headers.map(\.name) == ["Authorization", "X-Q"])
        #expect(call.headers.first?.value == "Bearer t0k")
        #expect(call.sensitiveValues == ["Bearer t0k"])
    }

    @Test func headerValuesCannotInjectLines() {
        #expect(throws: ToolError.self) { try build("GET", "https://kb.example.com/", headers: ["X-Q": "{{ args.q }}"], ["q": "a\r\nX-Admin: 1"]) }
    }

    @Test func theURLCannotReadSecrets() {
        let error = #expect(throws: ToolError.self) {
            try build("GET", "https://kb.example.com/?k={{ secrets.KB_TOKEN }}", [:], secrets: ["KB_TOKEN": "t0k"])
        }
        #expect(error?.code == .invalidTool)
        #expect(error?.message.contains("t0k") == false)
    }
}
