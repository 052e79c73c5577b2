import Foundation
import Testing

@testable import SwitchyardCore

/// Hostile YAML is refused by the pre-scan, in linear time and before the YAML library
/// builds anything, with the file, line and column of what was refused.
@Suite struct YAMLHardeningTests {
    /// `a0: &a0 ["lol", …×10]`, then `aN: &aN [*aN-1, …×10]`, then `key` on the last line:
    /// 430 bytes that expand to 10^levels nodes.
    static func laughs(levels: Int, key: String) -> String {
        var yaml = "a0: &a0 [" + Array(repeating: "\"lol\"", count: 10).joined(separator: ",") + "]\n"
        for n in 1..<levels {
            yaml += "a\(n): &a\(n) [" + Array(repeating: "*a\(n - 1)", count: 10).joined(separator: ",") + "]\n"
        }
        return yaml + key
    }

    /// Refuses `yaml` and returns its only issue, requiring that it took under a second.
    func refusedAtOnce(_ yaml: String) throws -> ValidationIssue {
        var error: ResourceValidationError?
        let elapsed = ContinuousClock().measure { error = loadError(yaml) }
        #expect(elapsed < .seconds(1), "refusing took \(elapsed)")
        let refused = try #require(error)
        #expect(refused.code == .invalidResource)
        return try #require(refused.issues.first)
    }

    @Test func aFlowSequenceKeyHoldingAnAliasIsRefusedAtOnce() throws {
        let found = try refusedAtOnce(Self.laughs(levels: 8, key: "[*a7]: v\n"))
        #expect((found.file, found.line, found.column) == ("test.yaml", 9, 1))
        #expect(found.message.contains("a mapping key must be a plain scalar"))
    }

    @Test func anExplicitKeyWithTheAliasOnTheNextLineIsRefusedAtOnce() throws {
        let found = try refusedAtOnce(Self.laughs(levels: 8, key: "?\n  [*a7]\n: v\n"))
        #expect((found.line, found.column) == (9, 1))
        #expect(found.message.contains("explicit `?` keys are not supported"))
    }

    @Test(arguments: [
        ("{a: b}: v\n", 1, 1), ("x:\n  [a, b]: v\n", 2, 3), ("- {[a]: b}\n", 1, 4), ("[x, {a: b}]: v\n", 1, 1),
        ("k: {? a : b}\n", 1, 5), ("k: [\n  1,\n  2\n]: v\n", 1, 4),
    ])
    func complexKeysAreRefused(yaml: String, line: Int, column: Int) throws {
        let found = try refusedAtOnce(yaml)
        #expect((found.line, found.column) == (line, column), "\(found)")
    }

    @Test func flowCollectionsAsValuesStillLoad() throws {
        let yaml = """
            kind: Tool
            name: t
            http: { url: "https://x" }
            parameters: {type: object, properties: {a: {type: string}}, required: [a]}
            """
        #expect(loadError(yaml) == nil)
    }

    @Test func aRawNULCharacterIsRefusedWhereItIs() throws {
        let found = try refusedAtOnce("kind: Agent\nname: a\ninstructions: he\u{0}llo\n")
        #expect((found.line, found.column) == (3, 17))
        #expect(found.message.contains("U+0000"))
    }

    @Test(arguments: ["\"he\\0llo\"", "\"he\\x00llo\"", "\"he\\u0000llo\"", "\"he\\U00000000llo\""])
    func anEscapedNULInADoubleQuotedScalarIsRefusedWhereItIs(scalar: String) throws {
        let found = try refusedAtOnce("kind: Agent\nname: a\ninstructions: \(scalar)\n")
        #expect((found.line, found.column) == (3, 15), "\(found)")
        #expect(found.message.contains("U+0000"))
    }

    @Test func anEscapedNULInAKeyIsRefused() throws {
        let found = try refusedAtOnce("kind: Agent\nname: a\ninstructions: x\n\"a\\0b\": 1\n")
        #expect((found.line, found.column) == (4, 1), "\(found)")
    }
}

/// Parsing runs on a few dedicated low-priority threads with a deadline, so that no
/// parse, however slow the YAML library is on it, holds a request or a server thread.
@Suite struct YAMLParseGuardTests {
    /// The parse sleeps 20 s; the answer comes at the deadline (the bound is loose only
    /// because the whole suite may be saturating both cores meanwhile).
    @Test func aParseOverTheDeadlineIsAnsweredAtTheDeadline() async throws {
        let parsing = YAMLParseGuard(slots: 1, deadline: .milliseconds(200))
        let started = ContinuousClock.now
        await #expect(throws: YAMLParseGuard.Refusal.timedOut(deadline: .milliseconds(200))) {
            _ = try await parsing.run {
                Thread.sleep(forTimeInterval: 20)
                return 1
            }
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func whenEverySlotHoldsARunawayParseTheNextIsRefusedAtOnce() async throws {
        let parsing = YAMLParseGuard(slots: 1, deadline: .milliseconds(100))
        await #expect(throws: YAMLParseGuard.Refusal.timedOut(deadline: .milliseconds(100))) {
            _ = try await parsing.run {
                Thread.sleep(forTimeInterval: 20)
                return 1
            }
        }
        // Refused without waiting for a slot: the only one holds a parse past its deadline.
        await #expect(throws: YAMLParseGuard.Refusal.busy(slots: 1)) {
            _ = try await parsing.run { 2 }
        }
    }

    @Test func parsesWithinTheDeadlineReturnTheirResults() async throws {
        let parsing = YAMLParseGuard(slots: 2, deadline: .seconds(5))
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<10 { group.addTask { try await parsing.run { i * i } } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(results.sorted() == (0..<10).map { $0 * $0 })
    }
}
