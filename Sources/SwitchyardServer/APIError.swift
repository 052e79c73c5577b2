import Foundation
import Hummingbird
import NIOCore
import SwitchyardCore

/// An error answered to an API client as `{"error": {"code", "message", "details"}}`
/// with a fitting status, in the manner of Hummingbird's `HTTPError`.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var details: JSONValue?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, details: JSONValue? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var error: [String: JSONValue] = ["code": .string(code), "message": .string(message)]
        if let details { error["details"] = details }
        var response = JSONBody.response(["error": .object(error)], status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    static func notFound(_ what: String) -> APIError {
        APIError(.notFound, code: "not_found", "\(what) not found")
    }

    static func badRequest(_ message: String) -> APIError {
        APIError(.badRequest, code: "bad_request", message)
    }

    static let unauthorized = APIError(.unauthorized, code: "unauthorized", "a valid API key is required: send `Authorization: Bearer <key>`")
    static let forbidden = APIError(.forbidden, code: "forbidden", "this route needs the admin key")
}

/// Reading and writing JSON bodies.
enum JSONBody {
    /// The largest request body accepted by any route.
    static let maxRequestBytes = 1 << 20

    static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(value.compactJSON)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"], body: ResponseBody(byteBuffer: buffer))
    }

    /// The request body as text, refusing more than 1 MiB with 413.
    static func text(of request: Request) async throws -> String {
        do {
            let buffer = try await request.body.collect(upTo: maxRequestBytes)
            return String(buffer: buffer)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
    }

    static let tooLarge = APIError(.contentTooLarge, code: "body_too_large", "the request body is larger than \(maxRequestBytes / 1024) KiB")

    /// The request body as a JSON object; an empty body is `{}`.
    static func object(of request: Request) async throws -> [String: JSONValue] {
        let text = try await text(of: request)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [:] }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw APIError(.badRequest, code: "invalid_json", "the request body is not valid JSON")
        }
        guard case .object(let object) = value else {
            throw APIError(.badRequest, code: "invalid_json", "the request body must be a JSON object")
        }
        return object
    }
}
