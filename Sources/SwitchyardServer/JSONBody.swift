import Foundation
import Hummingbird
import NIOCore
import SwitchyardAPI
import SwitchyardCore

/// Reading and writing JSON bodies. Every request body is read here, so that what no
/// route may store is refused once, at the edge, with where it is: bytes that are not
/// UTF-8 (never silently replaced), JSON nested deeper than ``maxDepth``, and the NUL
/// character (U+0000), which PostgreSQL's `text` cannot hold.
enum JSONBody {
    /// The largest request body accepted by any route.
    static let maxRequestBytes = 1 << 20
    /// The deepest nesting of arrays and objects accepted in a JSON body.
    static let maxDepth = 64

    static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(value.compactJSON)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: ResponseBody(byteBuffer: buffer))
    }

    /// A response whose body is a wire type (see SwitchyardAPI), written as the API
    /// always has: compact, keys sorted, unset optionals as `null`.
    static func reply(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        response(try WireEncoder.json(value), status: status)
    }

    /// The request body as text, refusing more than 1 MiB with 413 and bytes that are
    /// not UTF-8 with 400 (naming the offset of the first bad byte).
    static func text(of request: Request) async throws -> String {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxRequestBytes)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
        let bytes = buffer.readableBytesView
        // The standard library's validation is fast; the offset is looked for only on failure.
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        let offset = firstInvalidUTF8(bytes) ?? 0
        throw APIError(
            .badRequest, code: .invalidEncoding,
            "the request body is not valid UTF-8: the bytes at offset \(offset) are not a UTF-8 character")
    }

    static let tooLarge = APIError(.contentTooLarge, code: .bodyTooLarge, "the request body is larger than \(maxRequestBytes / 1024) KiB")

    /// The offset of the first byte that does not start a valid UTF-8 sequence, or nil.
    static func firstInvalidUTF8(_ bytes: some Collection<UInt8>) -> Int? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }

    /// The request body as a JSON object; an empty body is `{}`.
    static func object(of request: Request) async throws -> [String: JSONValue] {
        let text = try await text(of: request)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [:] }
        guard case .object(let object) = try decode(text) else {
            throw APIError(.badRequest, code: .invalidJson, "the request body must be a JSON object")
        }
        return object
    }

    /// Any JSON text (of a request) as a value, refusing nesting deeper than ``maxDepth``
    /// (before parsing, so a deep body costs nothing) and U+0000 in any key or string.
    static func decode(_ text: String) throws -> JSONValue {
        if let offset = depthExceeded(text.utf8) {
            throw APIError(
                .badRequest, code: .invalidJson,
                "the request body nests arrays and objects deeper than \(maxDepth) levels (at byte offset \(offset)); the limit is \(maxDepth)")
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw APIError(.badRequest, code: .invalidJson, "the request body is not valid JSON")
        }
        if let path = nulPath(value, path: "") {
            let place = path.isEmpty ? "the body" : path
            throw APIError(
                .badRequest, code: .invalidJson, "\(place) contains the NUL character (U+0000), which no stored text may hold",
                details: [APIProblem(path: path, message: "contains the NUL character (U+0000)")])
        }
        return value
    }

    /// The byte offset of the first `[` or `{` past ``maxDepth`` levels, outside strings.
    static func depthExceeded(_ bytes: String.UTF8View) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        for (offset, byte) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maxDepth { return offset }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return nil
    }

    /// The path (`input.items[2].name`) of the first key or string holding U+0000, or nil.
    static func nulPath(_ value: JSONValue, path: String) -> String? {
        func hasNUL(_ text: String) -> Bool { text.unicodeScalars.contains("\0") }
        switch value {
        case .string(let text): return hasNUL(text) ? path : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = nulPath(item, path: "\(path)[\(index)]") { return found }
            }
        case .object(let object):
            for key in object.keys.sorted() {
                let inner = path.isEmpty ? key : "\(path).\(key)"
                if hasNUL(key) { return inner.replacingOccurrences(of: "\0", with: "\\u0000") }
                if let found = nulPath(object[key] ?? .null, path: inner) { return found }
            }
        default: break
        }
        return nil
    }
}

/// Decodes request bodies into wire types for `request.decode(as:context:)`, on every
/// request context. The body goes through ``JSONBody`` first, so the same refusals hold
/// as for every other body (413 past 1 MiB, 400 for bytes that are not UTF-8, invalid
/// JSON, nesting deeper than 64, U+0000); an empty body is `{}`. A request type's own
/// ``RequestRefusal`` and any other `DecodingError` answer 422 with the field's path.
public struct WireRequestDecoder: RequestDecoder {
    public init() {}

    public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        let text = try await JSONBody.text(of: request)
        var json = "{}"
        if !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            guard case .object = try JSONBody.decode(text) else {
                throw APIError(.badRequest, code: .invalidJson, "the request body must be a JSON object")
            }
            json = text
        }
        do {
            return try WireDecoder.decode(type, from: Data(json.utf8))
        } catch let refusal as RequestRefusal {
            throw APIError(.unprocessableContent, code: refusal.code, refusal.message, details: refusal.details)
        } catch let error as DecodingError {
            let (path, message) = Self.describe(error)
            throw APIError(.unprocessableContent, code: .invalidRequest, "\(path): \(message)", details: [APIProblem(path: path, message: message)])
        }
    }

    /// The dotted path (`files[2].content`) and a short description of a decoding error.
    static func describe(_ error: DecodingError) -> (path: String, message: String) {
        func dotted(_ path: [any CodingKey]) -> String {
            path.reduce("") { text, key in
                if let index = key.intValue { return "\(text)[\(index)]" }
                return text.isEmpty ? key.stringValue : "\(text).\(key.stringValue)"
            }
        }
        switch error {
        case .keyNotFound(let key, let context): return (dotted(context.codingPath + [key]), "is required")
        case .valueNotFound(let type, let context): return (dotted(context.codingPath), "expected \(type), found null")
        case .typeMismatch(let type, let context): return (dotted(context.codingPath), "expected \(type)")
        case .dataCorrupted(let context): return (dotted(context.codingPath), context.debugDescription)
        @unknown default: return ("", "\(error)")
        }
    }
}
