/// Why a tool call failed, in a form the engine can hand back to the model as a tool
/// result and use to decide on a retry.
///
/// Messages are written for the model and the run's event log: they say what went
/// wrong and never contain a secret value (the runner redacts every secret of the
/// call's tenant from them before they leave).
public struct ToolError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The arguments do not match the tool's parameter schema (nothing was sent).
        case invalidArguments = "invalid_arguments"
        /// No tool of that name exists.
        case unknownTool = "unknown_tool"
        /// The tool's own definition is unusable (bad template, bad method, missing secret).
        case invalidTool = "invalid_tool"
        /// The destination is not allowed by the egress policy.
        case egressDenied = "egress_denied"
        /// The host name did not resolve.
        case resolutionFailed = "resolution_failed"
        /// The connection could not be made or broke.
        case connectionFailed = "connection_failed"
        /// The call took longer than its timeout.
        case timeout
        /// The server answered with a non-2xx status.
        case httpStatus = "http_status"
        /// The response body was larger than the cap.
        case responseTooLarge = "response_too_large"
        /// The response could not be understood (e.g. JSON content type, invalid JSON).
        case invalidResponse = "invalid_response"
        /// More redirects than allowed, or a redirect without a usable `Location`.
        case tooManyRedirects = "too_many_redirects"
        /// The call was cancelled.
        case cancelled
        /// A secret the tool's headers read is not set, or cannot be opened.
        case secretMissing = "secret_missing"
        /// Switchyard itself could not prepare the call (its database was unreachable).
        case unavailable
    }

    public var code: Code
    public var message: String
    /// Whether the same call may succeed when tried again (timeouts, 429, 5xx gateway errors).
    public var retryable: Bool
    /// The HTTP status, for `http_status` errors.
    public var status: Int?

    public init(_ code: Code, _ message: String, retryable: Bool = false, status: Int? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The same error with every secret value replaced by a marker.
    public func redacted(by redactor: SecretRedactor) -> ToolError {
        var copy = self
        copy.message = redactor.redact(message)
        return copy
    }
}
