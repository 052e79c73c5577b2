import SwitchyardCore

/// One resource as `POST /v1/apply` applied it.
public struct APIAppliedResource: Codable, Sendable, Equatable {
    public var kind: String
    public var name: String
    public var version: Int
    public var changed: Bool

    public init(kind: String, name: String, version: Int, changed: Bool) {
        self.kind = kind
        self.name = name
        self.version = version
        self.changed = changed
    }
}

/// `POST /v1/apply`: every resource of the request, in order.
public struct APIApplyResult: Codable, Sendable, Equatable {
    public var applied: [APIAppliedResource]

    public init(applied: [APIAppliedResource]) { self.applied = applied }
}

/// `POST /v1/apply` with `Content-Type: application/json`: a batch of YAML files
/// applied all or nothing, so that they may refer to each other.
public struct APIApplyRequest: Codable, Sendable, Equatable {
    public var files: [File]

    /// One file: its name (for error places) and its YAML text.
    public struct File: Codable, Sendable, Equatable {
        public var name: String?
        public var content: String

        public init(name: String?, content: String) {
            self.name = name
            self.content = content
        }

        private enum CodingKeys: String, CodingKey { case name, content }

        /// A name that is not a string is no name (the server then says `files[i]`).
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try? container.decode(String.self, forKey: .name)
            content = try container.decode(String.self, forKey: .content)
        }
    }

    public init(files: [File]) { self.files = files }
}

/// One input of a workflow: its type, whether it is required, and its default.
public struct APIWorkflowInput: Codable, Sendable, Equatable {
    public var type: String
    public var required: Bool
    /// The default; absent when the input has none.
    public var defaultValue: JSONValue?

    public init(type: String, required: Bool, defaultValue: JSONValue?) {
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
    }

    private enum CodingKeys: String, CodingKey {
        case type, required
        case defaultValue = "default"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        try container.encode(required, forKey: .required)
        if let defaultValue { try container.encode(defaultValue, forKey: .defaultValue) }
    }
}

/// A workflow version: its summary (`GET /v1/workflows`), or with `source` and
/// `spec` its detail (`GET /v1/workflows/{name}`).
public struct APIWorkflow: Codable, Sendable, Equatable {
    public var name: String
    public var version: Int
    public var createdAt: String?
    /// Whether the stored resource is a workflow; only then are `description`,
    /// `steps` and `inputs` written (`description` as null when it has none).
    public var isWorkflow: Bool
    public var description: String?
    public var steps: Int?
    public var inputs: [String: APIWorkflowInput]?
    /// The YAML as applied; only in the detail.
    public var source: String?
    /// The parsed workflow as stored; only in the detail.
    public var spec: JSONValue?

    public init(
        name: String, version: Int, createdAt: String?, isWorkflow: Bool = true, description: String? = nil, steps: Int? = nil,
        inputs: [String: APIWorkflowInput]? = nil, source: String? = nil, spec: JSONValue? = nil
    ) {
        self.name = name
        self.version = version
        self.createdAt = createdAt
        self.isWorkflow = isWorkflow
        self.description = description
        self.steps = steps
        self.inputs = inputs
        self.source = source
        self.spec = spec
    }

    private enum CodingKeys: String, CodingKey {
        case name, version, description, steps, inputs, source, spec
        case createdAt = "created_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        version = try container.decode(Int.self, forKey: .version)
        createdAt = try container.decodeIfPresent(String.self, forKey: .createdAt)
        isWorkflow = container.contains(.steps)
        description = try container.decodeIfPresent(String.self, forKey: .description)
        steps = try container.decodeIfPresent(Int.self, forKey: .steps)
        inputs = try container.decodeIfPresent([String: APIWorkflowInput].self, forKey: .inputs)
        source = try container.decodeIfPresent(String.self, forKey: .source)
        spec = try container.decodeIfPresent(JSONValue.self, forKey: .spec)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encodeIfPresent(createdAt, forKey: .createdAt)
        if isWorkflow {
            try container.encodeIfPresent(description, forKey: .description)
            try container.encode(steps ?? 0, forKey: .steps)
            try container.encode(inputs ?? [:], forKey: .inputs)
        }
        if let source { try container.encode(source, forKey: .source) }
        if let spec { try container.encode(spec, forKey: .spec) }
    }
}

/// `GET /v1/workflows`: the latest version of each workflow.
public struct APIWorkflowList: Codable, Sendable, Equatable {
    public var workflows: [APIWorkflow]

    public init(workflows: [APIWorkflow]) { self.workflows = workflows }
}

/// `GET /v1/workflows/{name}`.
public struct APIWorkflowEnvelope: Codable, Sendable, Equatable {
    public var workflow: APIWorkflow

    public init(workflow: APIWorkflow) { self.workflow = workflow }
}

/// A named, versioned resource: `{name, version}`.
public struct APIResourceRef: Codable, Sendable, Equatable {
    public var name: String
    public var version: Int

    public init(name: String, version: Int) {
        self.name = name
        self.version = version
    }
}

/// `GET /v1/agents`.
public struct APIAgentList: Codable, Sendable, Equatable {
    public var agents: [APIResourceRef]

    public init(agents: [APIResourceRef]) { self.agents = agents }
}

/// A tool: a stored one (`name`, `version`) or a built-in one (`name`,
/// `description`, `parameters`); `builtin` tells which.
public struct APITool: Codable, Sendable, Equatable {
    public var name: String
    public var builtin: Bool
    public var version: Int?
    public var description: String?
    public var parameters: JSONValue?

    public init(name: String, builtin: Bool, version: Int? = nil, description: String? = nil, parameters: JSONValue? = nil) {
        self.name = name
        self.builtin = builtin
        self.version = version
        self.description = description
        self.parameters = parameters
    }

    private enum CodingKeys: String, CodingKey { case name, builtin, version, description, parameters }

    /// Only the fields of the tool's kind are written.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(builtin, forKey: .builtin)
        if let version { try container.encode(version, forKey: .version) }
        if let description { try container.encode(description, forKey: .description) }
        if let parameters { try container.encode(parameters, forKey: .parameters) }
    }
}

/// `GET /v1/tools`: stored tools, then the built-in ones.
public struct APIToolList: Codable, Sendable, Equatable {
    public var tools: [APITool]

    public init(tools: [APITool]) { self.tools = tools }
}
