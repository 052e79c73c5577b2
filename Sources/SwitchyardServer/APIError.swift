import Hummingbird
import SwitchyardAPI
import SwitchyardCore

/// An error answered to an API client as `{"error": {"code", "message", "details"}}`
/// with a fitting status, in the manner of Hummingbird's `HTTPError`.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: APIErrorCode
    public var message: String
    public var details: [APIProblem]?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: APIErrorCode, _ message: String, details: [APIProblem]? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONBody.reply(
            APIErrorBody(error: APIErrorDetail(code: code.rawValue, message: message, details: details)), status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    static func notFound(_ what: String) -> APIError {
        APIError(.notFound, code: .notFound, "\(what) not found")
    }

    static func badRequest(_ message: String) -> APIError {
        APIError(.badRequest, code: .badRequest, message)
    }

    static let unauthorized = APIError(.unauthorized, code: .unauthorized, "a valid API key is required: send `Authorization: Bearer <key>`")
    static let forbidden = APIError(.forbidden, code: .forbidden, "this route needs the admin key")
}
