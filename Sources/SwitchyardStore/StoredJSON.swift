import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import SwitchyardCore
import Synchronization

/// Step outputs, inputs and event data bind and decode as `jsonb`, faithfully.
///
/// `jsonb` refuses U+0000 in strings (PostgreSQL text cannot hold it), yet a model or a
/// tool may well answer with one. Strings and keys are therefore stored with U+0000
/// written as U+0001 `0` and U+0001 itself as U+0001 U+0001, and turned back when
/// read: every value round-trips exactly, and only strings holding those two (rare)
/// control characters look different inside the database.
extension JSONValue: PostgresEncodable, PostgresDecodable {
    public static var psqlType: PostgresDataType { .jsonb }
    public static var psqlFormat: PostgresFormat { .binary }

    public func encode<Encoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<Encoder>) throws {
        buffer.writeInteger(UInt8(1))  // the jsonb binary format's version
        buffer.writeString(StoredJSON.text(of: self))
    }

    public init<Decoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat, context: PostgresDecodingContext<Decoder>
    ) throws {
        switch (type, format) {
        case (.jsonb, .binary):
            guard buffer.readInteger(as: UInt8.self) == 1 else { throw PostgresDecodingError.Code.failure }
        case (.json, _), (.jsonb, .text):
            break
        default:
            throw PostgresDecodingError.Code.typeMismatch
        }
        guard let stored = buffer.readableBytesView.withContiguousStorageIfAvailable({ try? JSONValue(parsing: $0) }) ?? nil else {
            throw PostgresDecodingError.Code.failure
        }
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        self = StoredJSON.restored(stored)
    }
}

/// The reversible escape that lets `jsonb` store strings holding U+0000 (see
/// ``JSONValue``'s `PostgresEncodable` conformance).
public enum StoredJSON {
    static let escape: Unicode.Scalar = "\u{01}"

    /// The compact JSON text to store for `value`.
    public static func text(of value: JSONValue) -> String {
        needsEscaping(value) ? escaped(value).compactJSON : value.compactJSON
    }

    static func needsEscaping(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let s): return needsEscaping(s)
        case .array(let items): return items.contains(where: needsEscaping)
        case .object(let object): return object.contains { needsEscaping($0.key) || needsEscaping($0.value) }
        case .null, .bool, .int, .double: return false
        }
    }

    static func needsEscaping(_ s: String) -> Bool {
        s.utf8.contains { $0 <= 1 }
    }

    static func escaped(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(escaped(s))
        case .array(let items): return .array(items.map(escaped))
        case .object(let object): return .object(Dictionary(uniqueKeysWithValues: object.map { (escaped($0.key), escaped($0.value)) }))
        case .null, .bool, .int, .double: return value
        }
    }

    static func escaped(_ s: String) -> String {
        guard needsEscaping(s) else { return s }
        var out = String.UnicodeScalarView()
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\u{00}":
                out.append(escape)
                out.append("0")
            case escape:
                out.append(escape)
                out.append(escape)
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// Text for a `text` column, which cannot hold U+0000 at all: diagnostic text
    /// (an error message, a provider's model name) shows it as U+FFFD instead.
    public static func plainText(_ s: String) -> String {
        s.utf8.contains(0) ? String(s.unicodeScalars.map { $0 == "\u{00}" ? "\u{FFFD}" : Character($0) }) : s
    }

    /// The value a stored one stands for.
    public static func restored(_ value: JSONValue) -> JSONValue {
        needsEscaping(value) ? unescaped(value) : value
    }

    static func unescaped(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): return .string(unescaped(s))
        case .array(let items): return .array(items.map(unescaped))
        case .object(let object):
            return .object(Dictionary(object.map { (unescaped($0.key), unescaped($0.value)) }, uniquingKeysWith: { first, _ in first }))
        case .null, .bool, .int, .double: return value
        }
    }

    static func unescaped(_ s: String) -> String {
        guard needsEscaping(s) else { return s }
        var out = String.UnicodeScalarView()
        var pendingEscape = false
        for scalar in s.unicodeScalars {
            if pendingEscape {
                out.append(scalar == "0" ? "\u{00}" : scalar)
                pendingEscape = false
            } else if scalar == escape {
                pendingEscape = true
            } else {
                out.append(scalar)
            }
        }
        if pendingEscape { out.append(escape) }
        return String(out)
    }
}
