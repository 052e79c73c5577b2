/// The compiled, validated form of the YAML resources (README, "Workflows in YAML"). These are pure
/// values: the loader builds them, the store keeps them as JSON, the engine runs them.

/// A length of time as written in YAML (`500ms`, `30s`, `2m`, `1h`), kept in
/// milliseconds so that it encodes exactly.
public struct TimeSpan: Sendable, Hashable, Codable, Comparable {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }
    public static func seconds(_ s: Int64) -> TimeSpan { TimeSpan(milliseconds: s * 1000) }

    public var duration: Duration { .milliseconds(milliseconds) }

    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public init(from decoder: any Decoder) throws {
        milliseconds = try decoder.singleValueContainer().decode(Int64.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(milliseconds)
    }
}

/// Which kind of resource a YAML document declares.
public enum ResourceKind: String, Sendable, Hashable, Codable, CaseIterable {
    case workflow = "Workflow"
    case agent = "Agent"
    case tool = "Tool"
}

/// One validated YAML document: what it declares, and its own text for storage.
public struct ResourceDocument: Sendable, Hashable {
    public var kind: ResourceKind { resource.kind }
    public var name: String { resource.name }
    /// The document's own YAML text (one document of a possibly multi-document file).
    public var source: String
    /// Where the document starts, for messages.
    public var location: SourceLocation
    public var resource: Resource
    /// Where each value of the document was written, keyed by its path
    /// (`steps[2].agent`, `tools[0]`, `name`), so that checks made after loading —
    /// such as references to other resources — can still point at file:line:column.
    /// Empty for documents not built by ``ResourceLoader``. Not part of equality.
    public var locations: [String: SourceLocation]

    public init(source: String, location: SourceLocation, resource: Resource, locations: [String: SourceLocation] = [:]) {
        self.source = source
        self.location = location
        self.resource = resource
        self.locations = locations
    }

    public static func == (lhs: ResourceDocument, rhs: ResourceDocument) -> Bool {
        lhs.source == rhs.source && lhs.location == rhs.location && lhs.resource == rhs.resource
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(source)
        hasher.combine(location)
        hasher.combine(resource)
    }

    /// The location recorded for `path`, else the document's own location.
    public func location(of path: String) -> SourceLocation {
        locations[path] ?? location
    }
}

/// A resource of any kind.
public enum Resource: Sendable, Hashable {
    case workflow(WorkflowSpec)
    case agent(AgentSpec)
    case tool(ToolSpec)

    public var kind: ResourceKind {
        switch self {
        case .workflow: .workflow
        case .agent: .agent
        case .tool: .tool
        }
    }

    public var name: String {
        switch self {
        case .workflow(let w): w.name
        case .agent(let a): a.name
        case .tool(let t): t.name
        }
    }
}

/// A position in a YAML file, 1-based, as every validation error reports it.
public struct SourceLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

// MARK: - Workflow

/// A compiled workflow: a DAG of steps over declared inputs, producing named outputs.
/// Immutable once stored; a run pins the version it started with.
public struct WorkflowSpec: Sendable, Hashable, Codable {
    public var name: String
    public var description: String?
    /// Declared inputs, in document order.
    public var inputs: [InputSpec]
    /// Steps, in document order; `needs` gives the DAG.
    public var steps: [StepSpec]
    /// Named output templates, in document order; the run's output is that object.
    public var outputs: [OutputSpec]
    /// Deadline for the whole run, if any.
    public var timeout: TimeSpan?

    public init(
        name: String, description: String? = nil, inputs: [InputSpec] = [], steps: [StepSpec],
        outputs: [OutputSpec] = [], timeout: TimeSpan? = nil
    ) {
        self.name = name
        self.description = description
        self.inputs = inputs
        self.steps = steps
        self.outputs = outputs
        self.timeout = timeout
    }

    public func step(_ id: String) -> StepSpec? { steps.first { $0.id == id } }
}

/// The JSON type a workflow input must have (checked by ``WorkflowSpec/resolveInputs(_:)``).
public enum InputType: String, Sendable, Hashable, Codable, CaseIterable {
    case string, number, integer, boolean, object, array
}

/// One declared workflow input: its type, whether it must be given, and its default.
public struct InputSpec: Sendable, Hashable, Codable {
    public var name: String
    public var type: InputType
    public var required: Bool
    public var defaultValue: JSONValue?
    public var description: String?

    public init(name: String, type: InputType, required: Bool = false, defaultValue: JSONValue? = nil, description: String? = nil) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.description = description
    }
}

/// One named workflow output: a template evaluated when the run succeeds.
public struct OutputSpec: Sendable, Hashable, Codable {
    public var name: String
    public var value: Template

    public init(name: String, value: Template) {
        self.name = name
        self.value = value
    }
}

/// What happens to the run when a step has failed its last attempt.
public enum OnError: String, Sendable, Hashable, Codable {
    /// The run fails and its unfinished steps are cancelled.
    case fail
    /// The step ends `failed` with a null output and its dependents go on.
    case `continue`
}

/// How the delay between retries grows.
public enum BackoffKind: String, Sendable, Hashable, Codable {
    case fixed, exponential
}

/// How often and how patiently a step is retried.
public struct RetryPolicy: Sendable, Hashable, Codable {
    public var maxAttempts: Int
    public var backoff: BackoffKind
    public var initial: TimeSpan
    public var max: TimeSpan

    public init(maxAttempts: Int = 1, backoff: BackoffKind = .exponential, initial: TimeSpan = .seconds(1), max: TimeSpan = .seconds(60)) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.initial = initial
        self.max = max
    }

    public static let none = RetryPolicy()

    /// The delay before attempt `failedAttempt + 1`, with "equal jitter": half the
    /// backoff is fixed and half random, so retries of many steps spread out
    /// without ever retrying sooner than half the nominal delay.
    /// `unitRandom` is in [0, 1); pass a fixed value in tests.
    public func delay(afterAttempt failedAttempt: Int, unitRandom: Double) -> TimeSpan {
        let base: Double
        switch backoff {
        case .fixed:
            base = Double(initial.milliseconds)
        case .exponential:
            let exponent = Double(Swift.max(0, Swift.min(failedAttempt - 1, 30)))
            base = Swift.min(Double(initial.milliseconds) * pow2(exponent), Double(max.milliseconds))
        }
        let jittered = base / 2 + base / 2 * Swift.min(Swift.max(unitRandom, 0), 1)
        return TimeSpan(milliseconds: Int64(jittered.rounded()))
    }

    private func pow2(_ e: Double) -> Double {
        var r = 1.0
        for _ in 0..<Int(e) { r *= 2 }
        return r
    }
}

/// One step of a workflow: what it does (``StepKind``) plus the scheduling fields
/// every kind shares (`needs`, `if`, retry, timeout, on_error).
public struct StepSpec: Sendable, Hashable, Codable {
    public var id: String
    public var needs: [String]
    /// `if:` — the step is skipped when this evaluates to a falsy value.
    public var condition: Template?
    public var retry: RetryPolicy
    public var timeout: TimeSpan?
    public var onError: OnError
    public var kind: StepKind

    public init(
        id: String, needs: [String] = [], condition: Template? = nil, retry: RetryPolicy = .none,
        timeout: TimeSpan? = nil, onError: OnError = .fail, kind: StepKind
    ) {
        self.id = id
        self.needs = needs
        self.condition = condition
        self.retry = retry
        self.timeout = timeout
        self.onError = onError
        self.kind = kind
    }
}

/// What a step does; exactly one kind key per step in YAML.
/// Encoded as a one-key object naming the kind, `{"model": {…}}`, `{"transform": "…"}`,
/// so that the compiled JSON stored with each version reads like the YAML it came from.
public indirect enum StepKind: Sendable, Hashable, Codable {
    case model(ModelStepSpec)
    case tool(ToolStepSpec)
    case map(MapStepSpec)
    case transform(Template)
    case workflow(ChildWorkflowSpec)
    case waitFor(WaitForSpec)

    private enum CodingKeys: String, CodingKey {
        case model, tool, map, transform, workflow
        case waitFor = "wait_for"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let key = container.allKeys.first, container.allKeys.count == 1 else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "a step kind is an object with exactly one key"))
        }
        switch key {
        case .model: self = .model(try container.decode(ModelStepSpec.self, forKey: key))
        case .tool: self = .tool(try container.decode(ToolStepSpec.self, forKey: key))
        case .map: self = .map(try container.decode(MapStepSpec.self, forKey: key))
        case .transform: self = .transform(try container.decode(Template.self, forKey: key))
        case .workflow: self = .workflow(try container.decode(ChildWorkflowSpec.self, forKey: key))
        case .waitFor: self = .waitFor(try container.decode(WaitForSpec.self, forKey: key))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .model(let spec): try container.encode(spec, forKey: .model)
        case .tool(let spec): try container.encode(spec, forKey: .tool)
        case .map(let spec): try container.encode(spec, forKey: .map)
        case .transform(let template): try container.encode(template, forKey: .transform)
        case .workflow(let spec): try container.encode(spec, forKey: .workflow)
        case .waitFor(let spec): try container.encode(spec, forKey: .waitFor)
        }
    }

    /// The YAML key that selects this kind.
    public var keyword: String {
        switch self {
        case .model: "prompt"
        case .tool: "tool"
        case .map: "map"
        case .transform: "transform"
        case .workflow: "workflow"
        case .waitFor: "wait_for"
        }
    }
}

/// A model step (`prompt:`), optionally run as an agent (`agent:`).
public struct ModelStepSpec: Sendable, Hashable, Codable {
    public var prompt: Template
    /// `flash`, `pro`, `auto`, `cascade`, another configured expert, or a template
    /// yielding one of those. Nil means the agent's model, else `flash`.
    public var model: Template?
    public var agent: String?
    public var thinking: Bool?
    public var maxTokens: Int?
    /// JSON Schema the answer must satisfy; the answer is then parsed as JSON.
    public var output: JSONValue?
    /// A declared hint for the `auto` gate: `easy`, `medium` or `hard`.
    public var difficulty: Difficulty?
    /// An expression over `output` (the answer) that must be truthy. Under `cascade`
    /// a false check escalates flash's answer to pro; otherwise it fails the attempt.
    public var check: Template?
    /// A question about `output` that flash answers yes or no; "no" counts as a
    /// failed check, as for ``check``.
    public var verify: Template?
    /// `fail` or `downgrade`: what a call that does not fit the tenant's budget does
    /// (nil: the budget's own setting). `downgrade` lets the gate send pro's call to flash.
    public var onBudget: BudgetPolicy?

    public init(
        prompt: Template, model: Template? = nil, agent: String? = nil, thinking: Bool? = nil, maxTokens: Int? = nil, output: JSONValue? = nil,
        difficulty: Difficulty? = nil, check: Template? = nil, verify: Template? = nil, onBudget: BudgetPolicy? = nil
    ) {
        self.prompt = prompt
        self.model = model
        self.agent = agent
        self.thinking = thinking
        self.maxTokens = maxTokens
        self.output = output
        self.difficulty = difficulty
        self.check = check
        self.verify = verify
        self.onBudget = onBudget
    }
}

/// A tool step (`tool:` + `with:`): calls a stored Tool with templated arguments.
public struct ToolStepSpec: Sendable, Hashable, Codable {
    public var tool: String
    /// Arguments: a JSON value whose strings may hold templates.
    public var with: JSONValue

    public init(tool: String, with: JSONValue = .object([:])) {
        self.tool = tool
        self.with = with
    }
}

/// A map step: runs one inner step per element of a list, with bounded concurrency.
public struct MapStepSpec: Sendable, Hashable, Codable {
    /// Must evaluate to an array.
    public var over: Template
    /// The name bound to each element inside the inner step's templates.
    public var itemName: String
    /// At most this many inner steps run at once.
    public var concurrency: Int
    /// The inner step; never itself a map.
    public var step: StepKind

    public init(over: Template, itemName: String = "item", concurrency: Int = 4, step: StepKind) {
        self.over = over
        self.itemName = itemName
        self.concurrency = concurrency
        self.step = step
    }
}

/// A child workflow step: starts another workflow's run and waits for its outputs.
public struct ChildWorkflowSpec: Sendable, Hashable, Codable {
    public var workflow: String
    public var with: JSONValue

    public init(workflow: String, with: JSONValue = .object([:])) {
        self.workflow = workflow
        self.with = with
    }
}

/// A durable wait for a named signal; holds no worker while waiting.
public struct WaitForSpec: Sendable, Hashable, Codable {
    /// The signal name that resumes the step (`POST /v1/runs/{id}/signals/{name}`).
    public var signal: String

    public init(signal: String) { self.signal = signal }
}

// MARK: - Agent and Tool

/// An agent: system instructions, a model choice and tools for a model ↔ tool loop.
public struct AgentSpec: Sendable, Hashable, Codable {
    public var name: String
    public var description: String?
    public var instructions: String
    /// `flash`, `pro`, `auto` or `cascade`.
    public var model: String
    public var tools: [String]
    public var maxTurns: Int

    public init(
        name: String, description: String? = nil, instructions: String, model: String = ExpertTier.flash.rawValue, tools: [String] = [],
        maxTurns: Int = 6
    ) {
        self.name = name
        self.description = description
        self.instructions = instructions
        self.model = model
        self.tools = tools
        self.maxTurns = maxTurns
    }
}

/// A tool agents and steps can call; in this release always an HTTP endpoint.
public struct ToolSpec: Sendable, Hashable, Codable {
    public var name: String
    public var description: String?
    public var http: HTTPToolSpec?
    /// JSON Schema of the arguments.
    public var parameters: JSONValue?

    public init(name: String, description: String? = nil, http: HTTPToolSpec? = nil, parameters: JSONValue? = nil) {
        self.name = name
        self.description = description
        self.http = http
        self.parameters = parameters
    }
}

/// How an HTTP tool is called. `url` and header values are template sources
/// (headers may read `secrets`, both may read `args`).
public struct HTTPToolSpec: Sendable, Hashable, Codable {
    public var method: String
    public var url: String
    public var headers: [String: String]
    /// Default ``defaultTimeout``, at most ``maxTimeout``.
    public var timeout: TimeSpan?
    /// Reading stops, and the call fails, past this many bytes of response body.
    public var maxResponseBytes: Int?

    public static let defaultTimeout = TimeSpan(milliseconds: 10_000)
    public static let maxTimeout = TimeSpan(milliseconds: 60_000)
    public static let defaultMaxResponseBytes = 1 << 20
    public static let maxResponseBytesLimit = 16 << 20

    public init(method: String = "POST", url: String, headers: [String: String] = [:], timeout: TimeSpan? = nil, maxResponseBytes: Int? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
    }
}

/// Tools every tenant has without applying them. A Tool resource cannot take one of
/// these names. Their implementations live in SwitchyardTools.
public enum BuiltinTools {
    public static let names: Set<String> = ["http_get", "json_query", "current_time", "calculator"]
}
