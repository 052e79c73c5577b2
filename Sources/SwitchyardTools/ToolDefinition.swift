import Foundation
import SwitchyardCore

/// A tool as agents and steps see it: a name, a description and a JSON Schema of its
/// arguments (what the model is shown), and how a call is carried out.
///
/// Why one type for both kinds: the engine and the agent loop treat declared HTTP
/// tools and built-ins alike; only ``ToolRunner`` looks at ``kind``.
public struct ToolDefinition: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// A `kind: Tool` resource's `http:` block.
        case http(HTTPToolSpec)
        case builtin(BuiltinTool)
    }

    public var name: String
    public var description: String
    /// JSON Schema of the arguments (an object schema).
    public var parameters: JSONValue
    public var kind: Kind
    /// The response body cap for this tool, overriding the runner's default.
    public var maxResponseBytes: Int?

    public init(name: String, description: String, parameters: JSONValue, kind: Kind, maxResponseBytes: Int? = nil) {
        self.name = name
        self.description = description
        self.parameters = parameters
        self.kind = kind
        self.maxResponseBytes = maxResponseBytes
    }

    /// The definition of a stored `kind: Tool` resource, checked: a parameter schema
    /// that compiles, an HTTP method the runner sends, URL and header templates that
    /// parse, and a URL that does not read `secrets` (only headers may). The engine
    /// can call this at apply time as well as before a call.
    public init(_ spec: ToolSpec) throws(ToolError) {
        guard let http = spec.http else {
            throw ToolError(.invalidTool, "tool \(spec.name) has no http: block")
        }
        let parameters = spec.parameters ?? ["type": "object"]
        self.init(
            name: spec.name, description: spec.description ?? "", parameters: parameters, kind: .http(http), maxResponseBytes: http.maxResponseBytes)
        try validate()
    }

    /// Checks what can be checked without calling the tool (see ``init(_:)``).
    public func validate() throws(ToolError) {
        do {
            _ = try JSONSchema(parameters)
        } catch {
            throw ToolError(.invalidTool, "tool \(name): parameters: \(error)")
        }
        guard case .http(let http) = kind else { return }
        let method = http.method.uppercased()
        guard HTTPToolCall.methods.contains(method) else {
            throw ToolError(
                .invalidTool, "tool \(name): method \(http.method) is not one of \(HTTPToolCall.methods.sorted().joined(separator: ", "))")
        }
        let url: Template
        do {
            url = try Template(parsing: http.url)
        } catch {
            throw ToolError(.invalidTool, "tool \(name): url: \(error)")
        }
        if url.referencedRoots.contains("secrets") {
            throw ToolError(.invalidTool, "tool \(name): url may not read secrets; put credentials in headers")
        }
        if let unknown = url.referencedRoots.subtracting(["args"]).sorted().first {
            throw ToolError(.invalidTool, "tool \(name): url may read only args, not \(unknown)")
        }
        for (header, source) in http.headers {
            let template: Template
            do {
                template = try Template(parsing: source)
            } catch {
                throw ToolError(.invalidTool, "tool \(name): header \(header): \(error)")
            }
            if let unknown = template.referencedRoots.subtracting(["args", "secrets"]).sorted().first {
                throw ToolError(.invalidTool, "tool \(name): header \(header) may read only args and secrets, not \(unknown)")
            }
            guard HTTPToolCall.isValidHeaderName(header) else {
                throw ToolError(.invalidTool, "tool \(name): \(header) is not a valid header name")
            }
        }
        if let timeout = http.timeout, timeout.milliseconds <= 0 {
            throw ToolError(.invalidTool, "tool \(name): timeout must be positive")
        }
    }

    /// The built-in tool of that name, if there is one.
    public static func builtin(named name: String) -> ToolDefinition? {
        BuiltinTool(rawValue: name).map(\.definition)
    }

    /// Every built-in tool, for listings (`GET /v1/tools`).
    public static var builtins: [ToolDefinition] { BuiltinTool.allCases.map(\.definition) }
}

/// What a call may use: whose it is, the tenant's decrypted secrets (for header
/// templates only) and the egress policy (the server's allow list ∪ the tenant's).
public struct ToolCallContext: Sendable {
    public var tenant: UUID
    public var secrets: [String: String]
    public var egress: EgressPolicy

    public init(tenant: UUID, secrets: [String: String] = [:], egress: EgressPolicy = .publicOnly) {
        self.tenant = tenant
        self.secrets = secrets
        self.egress = egress
    }
}

/// Runs tool calls. A protocol so that engine tests can script tool results.
public protocol ToolRunning: Sendable {
    /// Validates `arguments` against the tool's schema (nothing is sent when they do
    /// not match), then calls the tool and returns its result.
    func call(_ tool: ToolDefinition, arguments: JSONValue, context: ToolCallContext) async throws(ToolError) -> JSONValue
}
