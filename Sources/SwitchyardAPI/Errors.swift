import SwitchyardCore

/// The body of every error: `{"error": {"code", "message", "details"?}}`.
public struct APIErrorBody: Codable, Sendable, Equatable {
    public var error: APIErrorDetail

    public init(error: APIErrorDetail) { self.error = error }
}

/// An error's code, message and (only when there are some) details: the problems with
/// their places (`path`, or `file`/`line`/`column` for YAML).
public struct APIErrorDetail: Codable, Sendable, Equatable {
    public var code: String
    public var message: String
    public var details: [APIProblem]?

    public init(code: String, message: String, details: [APIProblem]? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    private enum CodingKeys: String, CodingKey { case code, message, details }

    /// `details` is absent, not null, when there are none.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(code, forKey: .code)
        try container.encode(message, forKey: .message)
        if let details { try container.encode(details, forKey: .details) }
    }
}

/// One problem in an error's `details`: where (`path`, and for YAML `file`, `line`,
/// `column`) and what.
public struct APIProblem: Codable, Sendable, Equatable {
    public var file: String?
    public var line: Int?
    public var column: Int?
    public var path: String?
    public var message: String

    public init(path: String?, message: String, file: String? = nil, line: Int? = nil, column: Int? = nil) {
        self.path = path
        self.message = message
        self.file = file
        self.line = line
        self.column = column
    }

    private enum CodingKeys: String, CodingKey { case file, line, column, path, message }

    /// Only the fields a problem has are written: `{path, message}` or the YAML place.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if let file { try container.encode(file, forKey: .file) }
        if let line { try container.encode(line, forKey: .line) }
        if let column { try container.encode(column, forKey: .column) }
        if let path { try container.encode(path, forKey: .path) }
        try container.encode(message, forKey: .message)
    }
}

/// A request body the server refuses, thrown by a request type's `init(from:)`: the
/// message a client sees (with the 422 `code`, and `details` naming the field), so that
/// each request type keeps the exact refusal its route has always given.
public struct RequestRefusal: Error, Sendable, Equatable {
    public var code: APIErrorCode
    public var message: String
    public var details: [APIProblem]?

    public init(_ message: String, code: APIErrorCode = .invalidRequest, details: [APIProblem]? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }
}

/// `GET /healthz` and `GET /readyz`: `{"status"}`, with `error` when not ready.
public struct APIHealth: Codable, Sendable, Equatable {
    public var status: String
    public var error: String?

    public init(status: String, error: String? = nil) {
        self.status = status
        self.error = error
    }

    private enum CodingKeys: String, CodingKey { case status, error }

    /// `error` is absent when the server is ready.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(status, forKey: .status)
        if let error { try container.encode(error, forKey: .error) }
    }
}

extension KeyedDecodingContainer {
    /// A field that may be absent, null, or a value of `type`: `.none` when absent,
    /// `.some(nil)` when null, and a ``RequestRefusal`` with `message` otherwise.
    func tristate<T: Decodable>(_ type: T.Type, forKey key: Key, refusal: @autoclosure () -> RequestRefusal) throws -> T?? {
        guard contains(key) else { return .none }
        if try decodeNil(forKey: key) { return .some(nil) }
        guard let value = try? decode(type, forKey: key) else { throw refusal() }
        return .some(value)
    }

    /// The field as a free-form JSON value, or nil when absent.
    func json(forKey key: Key) throws -> JSONValue? {
        guard contains(key) else { return nil }
        return try decode(JSONValue.self, forKey: key)
    }
}

/// The codes of the API's errors (`error.code`): what a client branches on, stable
/// across versions. The server answers only with these; a client reading an error
/// keeps the code as text (`APIErrorDetail.code`), since a newer server may add one.
public enum APIErrorCode: String, Sendable, Hashable, Codable, CaseIterable {
    case badRequest = "bad_request"
    case bodyTooLarge = "body_too_large"
    case conflict
    case databaseUnavailable = "database_unavailable"
    case forbidden
    case `internal`
    case invalidEncoding = "invalid_encoding"
    case invalidInput = "invalid_input"
    case invalidJson = "invalid_json"
    case invalidPrice = "invalid_price"
    case invalidResource = "invalid_resource"
    case invalidRequest = "invalid_request"
    case invalidYAML = "invalid_yaml"
    case methodNotAllowed = "method_not_allowed"
    case notAModelStep = "not_a_model_step"
    case notFound = "not_found"
    case parseBusy = "parse_busy"
    case rateLimited = "rate_limited"
    case runFinished = "run_finished"
    case secretsUnavailable = "secrets_unavailable"
    case signalExists = "signal_exists"
    case stepNotFinished = "step_not_finished"
    case tooManyStreams = "too_many_streams"
    case unauthorized
    case yamlTimeout = "yaml_timeout"
}
