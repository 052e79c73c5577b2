import Foundation

/// Why a text is not one JSON value: what was wrong and the byte offset where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var offset: Int

    public var description: String { "\(message) at offset \(offset)" }
}

extension JSONValue {
    /// The deepest nesting of arrays and objects parsed: deeper input is refused rather
    /// than recursed into (the parser recurses once per level).
    public static let maxParseDepth = 512

    /// Parses one JSON value (RFC 8259, strict: no trailing commas, comments or leading
    /// zeros; the first of duplicate keys wins) from UTF-8 text, with the number typing of `JSONDecoder` into
    /// ``JSONValue``: a number that is an exact integer in `Int`'s range is `.int`
    /// (`1.0` and `1e2` included), any other finite number `.double`.
    ///
    /// A direct parser rather than `JSONDecoder`, which tries each case of the enum in
    /// turn through `Codable` and costs the engine several times more for every
    /// input, output and event it reads from the database (`jsonb` columns are read
    /// with it). Text from outside (request bodies, model answers, tool results) is
    /// still read with `JSONDecoder`, which is lenient where a model's JSON may not be.
    public init(parsing bytes: some Collection<UInt8>) throws(JSONParseError) {
        let parsed = bytes.withContiguousStorageIfAvailable { Self.parsed(UnsafeRawBufferPointer($0)) }
        self = try (parsed ?? Array(bytes).withUnsafeBytes { Self.parsed($0) }).get()
    }

    /// Parses one JSON value from a string (see ``init(parsing:)-(Collection<UInt8>)``).
    public init(parsing text: String) throws(JSONParseError) {
        var text = text
        self = try text.withUTF8 { Self.parsed(UnsafeRawBufferPointer($0)) }.get()
    }

    /// The parse as a value: the buffer closures it runs in rethrow untyped errors.
    private static func parsed(_ bytes: UnsafeRawBufferPointer) -> Result<JSONValue, JSONParseError> {
        Result { () throws(JSONParseError) -> JSONValue in try parse(bytes) }
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONParseError) -> JSONValue {
        var parser = JSONTextParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("unexpected text after the value") }
        return value
    }
}

/// The recursive-descent parser behind ``JSONValue/init(parsing:)-(Collection<UInt8>)``.
private struct JSONTextParser {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    func error(_ message: String) -> JSONParseError {
        JSONParseError(message: message, offset: position)
    }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let byte = current else { throw error("unexpected end of text") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("unexpected end of text") }
        for index in 0..<count where bytes[position + index] != word.utf8Start[index] {
            throw error("unexpected character")
        }
        position += count
        return value
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= JSONValue.maxParseDepth else { throw error("nested deeper than \(JSONValue.maxParseDepth) levels") }
        position += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a quoted key") }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
            position += 1
            skipWhitespace()
            let member = try value(depth: depth)
            // The first of duplicate keys wins, as with JSONDecoder.
            if members.index(forKey: key) == nil { members[key] = member }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return .object(members)
            default: throw error("expected ',' or '}' in an object")
            }
        }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= JSONValue.maxParseDepth else { throw error("nested deeper than \(JSONValue.maxParseDepth) levels") }
        position += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try value(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                return .array(elements)
            default: throw error("expected ',' or ']' in an array")
            }
        }
    }

    mutating func string() throws(JSONParseError) -> String {
        position += 1  // the opening quote
        let start = position
        // The common case: no escapes, so the text is the bytes between the quotes.
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                guard let text = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self) else {
                    throw JSONParseError(message: "a string is not valid UTF-8", offset: start)
                }
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw error("an unescaped control character in a string") }
            position += 1
        }
        var utf8 = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<position]))
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: utf8, as: UTF8.self) else {
                    throw JSONParseError(message: "a string is not valid UTF-8", offset: start)
                }
                position += 1
                return text
            case UInt8(ascii: "\\"):
                position += 1
                guard let escaped = current else { throw error("unexpected end of text in a string") }
                position += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"): Unicode.UTF8.encode(try unicodeEscape()) { utf8.append($0) }
                default:
                    position -= 1
                    throw error("an unknown escape in a string")
                }
            default:
                guard byte >= 0x20 else { throw error("an unescaped control character in a string") }
                utf8.append(byte)
                position += 1
            }
        }
        throw error("unexpected end of text in a string")
    }

    /// The scalar of a `\uXXXX` escape (a surrogate pair when it takes two).
    mutating func unicodeEscape() throws(JSONParseError) -> Unicode.Scalar {
        let first = try hexQuad()
        var scalar: Unicode.Scalar?
        switch first {
        case 0xD800...0xDBFF:
            guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                throw error("a high surrogate without its low surrogate")
            }
            position += 2
            let second = try hexQuad()
            guard (0xDC00...0xDFFF).contains(second) else { throw error("a high surrogate without its low surrogate") }
            scalar = Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
        case 0xDC00...0xDFFF:
            throw error("a low surrogate without its high surrogate")
        default:
            scalar = Unicode.Scalar(first)
        }
        guard let scalar else { throw error("an invalid \\u escape") }
        return scalar
    }

    mutating func hexQuad() throws(JSONParseError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw error("a number needs a digit") }
        position += 1
        if first == UInt8(ascii: "0"), let next = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) {
            throw error("a number with a leading zero")
        }
        skipDigits()
        var integral = true
        if current == UInt8(ascii: ".") {
            integral = false
            position += 1
            guard skipDigits() > 0 else { throw error("a fraction needs a digit") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard skipDigits() > 0 else { throw error("an exponent needs a digit") }
        }
        let text = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
        if let value = integral ? Self.integer(text) : Self.exactInteger(text) { return .int(value) }
        guard let double = Double(String(decoding: text, as: UTF8.self)), double.isFinite else {
            throw JSONParseError(message: "a number out of range", offset: start)
        }
        return .double(double)
    }

    /// The value of a number with a fraction or an exponent when, read as a decimal, it
    /// is an integer in `Int`'s range (`1.0`, `1e2`, `2.50e1`); nil otherwise. Decided on
    /// the digits, not through `Double`, which would call `9007199254740993.0` even and
    /// `-9223372036854775.808` whole.
    static func exactInteger(_ text: UnsafeRawBufferPointer) -> Int? {
        var digits: [UInt8] = []
        var fractionDigits = 0
        var exponent = 0
        var index = 0
        let negative = text.first == UInt8(ascii: "-")
        if negative { index = 1 }
        var inFraction = false
        while index < text.count {
            let byte = text[index]
            index += 1
            if byte == UInt8(ascii: ".") {
                inFraction = true
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                var exponentText = UnsafeRawBufferPointer(rebasing: text[index...])
                if exponentText.first == UInt8(ascii: "+") { exponentText = UnsafeRawBufferPointer(rebasing: exponentText.dropFirst()) }
                guard let value = integer(exponentText), abs(value) < 1000 else { return digits.allSatisfy { $0 == UInt8(ascii: "0") } ? 0 : nil }
                exponent = value
                break
            } else {
                digits.append(byte)
                if inFraction { fractionDigits += 1 }
            }
        }
        if digits.allSatisfy({ $0 == UInt8(ascii: "0") }) { return 0 }
        var scale = exponent - fractionDigits
        while scale < 0 {
            guard digits.last == UInt8(ascii: "0") else { return nil }
            digits.removeLast()
            scale += 1
        }
        guard scale < 19 else { return nil }
        digits.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: scale))
        if negative { digits.insert(UInt8(ascii: "-"), at: 0) }
        return digits.withUnsafeBytes { integer($0) }
    }

    @discardableResult
    mutating func skipDigits() -> Int {
        let start = position
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        return position - start
    }

    /// The value of an optionally signed run of digits, nil when it overflows `Int`.
    static func integer(_ text: UnsafeRawBufferPointer) -> Int? {
        var index = 0
        let negative = text.first == UInt8(ascii: "-")
        if negative { index = 1 }
        var value = 0
        while index < text.count {
            let digit = Int(text[index] - UInt8(ascii: "0"))
            let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
            let (next, overflowedAgain) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            if overflowed || overflowedAgain { return nil }
            value = next
            index += 1
        }
        return value
    }
}
