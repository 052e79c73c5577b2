import Foundation
import Logging
import SwitchyardCore
import Testing

@testable import SwitchyardTools

@Suite struct BuiltinToolTests {
    let runner = ToolRunner(resolver: StaticResolver([:]), logger: Logger(label: "test"), now: { Date(timeIntervalSince1970: 1_700_000_000) })
    let context = ToolCallContext(tenant: UUID())

    func call(_ name: String, _ arguments: JSONValue) async throws(ToolError) -> JSONValue {
        guard let tool = ToolDefinition.builtin(named: name) else { throw ToolError(.unknownTool, name) }
        return try await runner.call(tool, arguments: arguments, context: context)
    }

    @Test func everyBuiltinHasANameDescriptionAndAValidSchema() throws {
        #expect(ToolDefinition.builtins.map(\.name) == ["http_get", "json_query", "current_time", "calculator"])
        for tool in ToolDefinition.builtins {
            #expect(!tool.description.isEmpty)
            #expect(tool.parameters["type"] == "object")
            _ = try JSONSchema(tool.parameters)
        }
        #expect(ToolDefinition.builtin(named: "rm_rf") == nil)
    }

    @Test func jsonQueryFollowsAPath() async throws {
        let data: JSONValue = ["a": ["b": [["c": 42], ["c": 43]]], "odd key": "yes", "list": [1, 2, 3]]
        #expect(try await call("json_query", ["data": data, "path": "a.b[0].c"]) == 42)
        #expect(try await call("json_query", ["data": data, "path": "$.a.b[1].c"]) == 43)
        #expect(try await call("json_query", ["data": data, "path": "[\"odd key\"]"]) == "yes")
        #expect(try await call("json_query", ["data": data, "path": "list[-1]"]) == 3)
        #expect(try await call("json_query", ["data": data, "path": ""]) == data)
        #expect(try await call("json_query", ["data": data, "path": "a.missing.x"]) == nil)
        #expect(try await call("json_query", ["data": data, "path": "list[7]"]) == nil)
    }

    @Test func jsonQueryRejectsMalformedPaths() async {
        for path in ["a..b", "a[", "a[x]", "a]", "a[\"open"] {
            await #expect(throws: ToolError.self, "\(path)") { try await call("json_query", ["data": [:], "path": .string(path)]) }
        }
    }

    @Test func currentTimeIsUTCByDefaultAndHonoursATimeZone() async throws {
        #expect(try await call("current_time", [:]) == ["iso8601": "2023-11-14T22:13:20Z", "unix": 1_700_000_000, "timezone": "UTC"])
        let berlin = try await call("current_time", ["timezone": "Europe/Berlin"])
        #expect(berlin["iso8601"] == "2023-11-14T23:13:20+01:00")
        #expect(try await call("current_time", ["timezone": "Asia/Kolkata"])["iso8601"] == "2023-11-15T03:43:20+05:30")
        #expect(try await call("current_time", ["timezone": "America/New_York"])["iso8601"] == "2023-11-14T17:13:20-05:00")
    }

    @Test func currentTimeRejectsUnknownZones() async {
        let error = await #expect(throws: ToolError.self) { try await call("current_time", ["timezone": "Mars/Olympus"]) }
        #expect(error?.code == .invalidArguments)
    }

    @Test func calculatorEvaluatesArithmetic() async throws {
        #expect(try await call("calculator", ["expression": "(2 + 3) * 4.5"]) == 22.5)
        #expect(try await call("calculator", ["expression": "1 + 2 * 3 - 4 / 2"]) == 5)
        #expect(try await call("calculator", ["expression": "-2 ^ 2"]) == -4)
        #expect(try await call("calculator", ["expression": "2 ^ 3 ^ 2"]) == 512)
        #expect(try await call("calculator", ["expression": "7 % 3"]) == 1)
        #expect(try await call("calculator", ["expression": "1e3 / 8"]) == 125)
        #expect(try await call("calculator", ["expression": "0.1 + 0.2"]) == .double(0.1 + 0.2))
    }

    @Test func calculatorRejectsWhatIsNotArithmetic() async {
        for expression in [
            "1 / 0", "2 +", "abs(2)", "1 2", "((1)", "10 ^ 400", String(repeating: "(", count: 200) + "1" + String(repeating: ")", count: 200),
        ] {
            let error = await #expect(throws: ToolError.self, "\(expression)") { try await call("calculator", ["expression": .string(expression)]) }
            #expect(error?.code == .invalidArguments)
        }
    }

    @Test func argumentsAreValidatedAgainstTheSchemaFirst() async {
        let missing = await #expect(throws: ToolError.self) { try await call("json_query", ["data": 1]) }
        #expect(missing?.code == .invalidArguments)
        #expect(missing?.message.contains("$.path: required property is missing") == true)
        let extra = await #expect(throws: ToolError.self) { try await call("calculator", ["expression": "1", "mode": "x"]) }
        #expect(extra?.message.contains("$.mode: unexpected property") == true)
        let pattern = await #expect(throws: ToolError.self) { try await call("http_get", ["url": "file:///etc/passwd"]) }
        #expect(pattern?.code == .invalidArguments)
        #expect(pattern?.retryable == false)
    }

    @Test func httpGetReachesOnlyAllowListedHosts() async {
        let error = await #expect(throws: ToolError.self) { try await call("http_get", ["url": "https://example.com/"]) }
        #expect(error?.code == .egressDenied)
    }
}
