import Foundation
import SwitchyardCore
import Testing

/// The direct JSON parser against the reference it replaced: `JSONDecoder` into `JSONValue`.
@Suite("JSON parsing")
struct JSONParsingTests {
    static func reference(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static func parsed(_ text: String) -> JSONValue? {
        try? JSONValue(parsing: text)
    }

    static func randomString(_ random: inout SeededGenerator) -> String {
        let alphabet: [Unicode.Scalar] = [
            "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1}", "\u{1F}", "é", "中", "😀", "\u{FFFF}", "\u{10FFFF}",
        ]
        return String(String.UnicodeScalarView((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! }))
    }

    static func randomValue(_ random: inout SeededGenerator, depth: Int = 0) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2:
            let magnitudes = [0, 1, 9, 10, 255, Int(Int32.max), Int.max, Int.min]
            return .int(
                Bool.random(using: &random) ? magnitudes.randomElement(using: &random)! : Int.random(in: -1_000_000...1_000_000, using: &random))
        case 3:
            let doubles = [0.5, -0.25, 1e-300, 1.7976931348623157e308, 3.141592653589793, 1e20, -2.5e-8, 123456.789]
            return .double(doubles.randomElement(using: &random)! * (Bool.random(using: &random) ? 1 : -1))
        case 4: return .string(randomString(&random))
        case 5: return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in randomValue(&random, depth: depth + 1) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &random) { object[randomString(&random)] = randomValue(&random, depth: depth + 1) }
            return .object(object)
        }
    }

    @Test("3,000 random values written as compact JSON parse to what JSONDecoder gives, and round-trip")
    func randomValuesMatchTheReference() throws {
        var random = SeededGenerator(seed: 12)
        for _ in 0..<3000 {
            let value = Self.randomValue(&random)
            let text = value.compactJSON
            let parsed = try JSONValue(parsing: text)
            #expect(parsed == Self.reference(text), "\(text)")
            #expect(parsed.compactJSON == text)
        }
    }

    @Test(
        "edge texts: accepted and refused exactly as JSONDecoder does",
        arguments: [
            "1.0", "1e2", "1E2", "-0", "-0.0", "0.1e1", "-1.0e0", "12345678901234567890", "-9223372036854775808", "9223372036854775807",
            "9223372036854775808", "1.5", "1e20", "1e-7", "1.7976931348623157e308", "2.50e1", "0.0", "1e-1", "100e-2", "1e18",
            "  [ 1 , 2 ]  ", "{\"a\":1,\"a\":2}", "\"\\u0000\"", "\"\\ud83d\\ude00\"", "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"", "\"\\u00e9\"", "{}", "[]",
            "[[[]]]", "true", "false", "null", "\"\"",
            // refused
            "", " ", "01", "-", "1.", ".5", "1e", "+1", "1e400", "-1e400", "[1 2]", "{\"a\" 1}", "{a:1}", "[", "{", "\"abc", "\"\\x\"",
            "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\u{1}\"", "tru", "nul", "[1]x", "1 2", "NaN", "Infinity",
        ])
    func edgeTexts(_ text: String) {
        #expect(Self.parsed(text) == Self.reference(text), "\(text)")
    }

    @Test("a number is .int exactly when its decimal value is a whole number in Int's range (where JSONDecoder truncates or rounds, it does not)")
    func numberTyping() throws {
        let expected: [(String, JSONValue)] = [
            ("9007199254740993.0", .int(9_007_199_254_740_993)),
            // JSONDecoder truncates this one to -9223372036854775.
            ("-9223372036854775.808", .double(-9_223_372_036_854_775.808)),
            // JSONDecoder makes this one a Double, though it is Int.min.
            ("-9.223372036854775808e18", .int(Int.min)),
            ("1e19", .double(1e19)),
            ("0e400", .int(0)),
            ("1e-370", .double(0)),  // underflows
            ("2.5", .double(2.5)),
        ]
        for (text, value) in expected {
            #expect(try JSONValue(parsing: text) == value, "\(text)")
        }
    }

    @Test("trailing commas, which JSONDecoder tolerates, are refused: they are not JSON")
    func trailingCommas() {
        for text in ["[1,]", "{\"a\":1,}"] {
            #expect(Self.parsed(text) == nil)
        }
    }

    @Test("nesting past the limit is refused with an error, not a crash; invalid UTF-8 is refused")
    func hostileInput() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
        let limit = JSONValue.maxParseDepth
        #expect(Self.parsed(String(repeating: "[", count: limit) + String(repeating: "]", count: limit)) != nil)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0x5C, 0x22, 0xC3, 0x22]) }
    }

    @Test("5,000 byte-level mutations of valid texts never crash, and whatever parses round-trips")
    func mutations() {
        var random = SeededGenerator(seed: 7)
        for _ in 0..<5000 {
            var bytes = Array(Self.randomValue(&random).compactJSON.utf8)
            guard !bytes.isEmpty else { continue }
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes.remove(at: index)
                default: bytes.insert(Array("{}[],:\"\\0e.-".utf8).randomElement(using: &random)!, at: index)
                }
                if bytes.isEmpty { break }
            }
            // Whatever parses writes back as JSON that parses again, and is stable from
            // then on (a whole-valued double, such as an underflow to 0, reads back as .int).
            if let parsed = try? JSONValue(parsing: bytes) {
                let once = try? JSONValue(parsing: parsed.compactJSON)
                #expect(once != nil)
                if let once { #expect((try? JSONValue(parsing: once.compactJSON)) == once) }
            }
        }
    }
}
