import SwitchyardCore

/// A run: a summary in lists (`steps` and `usage` absent), whole elsewhere.
public struct APIRun: Codable, Sendable, Equatable {
    public var id: String
    public var workflow: String
    public var version: Int
    public var status: RunStatus
    public var input: JSONValue
    public var output: JSONValue?
    public var error: JSONValue?
    public var createdAt: String?
    public var startedAt: String?
    public var finishedAt: String?
    /// The run's steps; nil (absent) in a list of runs.
    public var steps: [APIStep]?
    /// The run's model usage; nil (absent) in a list of runs.
    public var usage: APIUsage?

    public init(
        id: String, workflow: String, version: Int, status: RunStatus, input: JSONValue, output: JSONValue?, error: JSONValue?,
        createdAt: String?, startedAt: String?, finishedAt: String?, steps: [APIStep]?, usage: APIUsage?
    ) {
        self.id = id
        self.workflow = workflow
        self.version = version
        self.status = status
        self.input = input
        self.output = output
        self.error = error
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.steps = steps
        self.usage = usage
    }

    private enum CodingKeys: String, CodingKey {
        case id, workflow, version, status, input, output, error, steps, usage
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    /// Writes every field (null when unset) but `steps` and `usage`, which a summary leaves out.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(workflow, forKey: .workflow)
        try container.encode(version, forKey: .version)
        try container.encode(status, forKey: .status)
        try container.encode(input, forKey: .input)
        try container.encode(output ?? .null, forKey: .output)
        try container.encode(error ?? .null, forKey: .error)
        try container.encodeIfPresent(createdAt, forKey: .createdAt)
        try container.encodeIfPresent(startedAt, forKey: .startedAt)
        try container.encodeIfPresent(finishedAt, forKey: .finishedAt)
        if let steps { try container.encode(steps, forKey: .steps) }
        if let usage { try container.encode(usage, forKey: .usage) }
    }
}

/// One step of a run.
public struct APIStep: Codable, Sendable, Equatable {
    public var id: String
    public var status: StepStatus
    public var attempts: Int
    public var expert: String?
    public var output: JSONValue?
    public var error: JSONValue?
    public var startedAt: String?
    public var finishedAt: String?
    /// The gate's routing decision for a model step (see `Route` in the document).
    public var route: JSONValue?
    public var feedback: Bool?
    public var costUSD: String?

    public init(
        id: String, status: StepStatus, attempts: Int, expert: String?, output: JSONValue?, error: JSONValue?, startedAt: String?,
        finishedAt: String?, route: JSONValue?, feedback: Bool?, costUSD: String?
    ) {
        self.id = id
        self.status = status
        self.attempts = attempts
        self.expert = expert
        self.output = output
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.route = route
        self.feedback = feedback
        self.costUSD = costUSD
    }

    private enum CodingKeys: String, CodingKey {
        case id, status, attempts, expert, output, error, route, feedback
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case costUSD = "cost_usd"
    }
}

/// A run's model usage. `cost_usd` is a decimal string; `unpriced_calls` are calls of
/// models without a price (not in the cost), `estimated_calls` calls billed at their
/// upper-bound estimate.
public struct APIUsage: Codable, Sendable, Equatable {
    public var calls: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var costUSD: String
    public var unpricedCalls: Int
    public var estimatedCalls: Int

    public init(calls: Int, promptTokens: Int, completionTokens: Int, costUSD: String, unpricedCalls: Int, estimatedCalls: Int) {
        self.calls = calls
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.costUSD = costUSD
        self.unpricedCalls = unpricedCalls
        self.estimatedCalls = estimatedCalls
    }

    private enum CodingKeys: String, CodingKey {
        case calls
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case costUSD = "cost_usd"
        case unpricedCalls = "unpriced_calls"
        case estimatedCalls = "estimated_calls"
    }
}

/// `{"run": …}`: a run created, waited for or fetched.
public struct APIRunEnvelope: Codable, Sendable, Equatable {
    public var run: APIRun

    public init(run: APIRun) { self.run = run }
}

/// `GET /v1/runs`: one page of run summaries, newest first.
public struct APIRunList: Codable, Sendable, Equatable {
    public var runs: [APIRun]
    public var nextCursor: String?

    public init(runs: [APIRun], nextCursor: String?) {
        self.runs = runs
        self.nextCursor = nextCursor
    }

    private enum CodingKeys: String, CodingKey {
        case runs
        case nextCursor = "next_cursor"
    }
}

/// `POST /v1/runs/{id}/cancel` (202): `{"run": {id, status}}`.
public struct APICancelResult: Codable, Sendable, Equatable {
    public var run: Run

    /// The cancelled run's id and status.
    public struct Run: Codable, Sendable, Equatable {
        public var id: String
        public var status: RunStatus

        public init(id: String, status: RunStatus) {
            self.id = id
            self.status = status
        }
    }

    public init(run: Run) { self.run = run }
}

/// `POST /v1/runs/{id}/signals/{name}` (202).
public struct APISignalResult: Codable, Sendable, Equatable {
    public var signal: String
    public var resumedSteps: [String]

    public init(signal: String, resumedSteps: [String]) {
        self.signal = signal
        self.resumedSteps = resumedSteps
    }

    private enum CodingKeys: String, CodingKey {
        case signal
        case resumedSteps = "resumed_steps"
    }
}

/// `POST /v1/runs/{id}/steps/{step}/feedback`: the verdict recorded.
public struct APIFeedbackResult: Codable, Sendable, Equatable {
    public var feedback: Feedback

    /// The verdict, and whether the gate learned from it.
    public struct Feedback: Codable, Sendable, Equatable {
        public var run: String
        public var step: String
        public var good: Bool
        public var expert: String
        public var learned: Bool

        public init(run: String, step: String, good: Bool, expert: String, learned: Bool) {
            self.run = run
            self.step = step
            self.good = good
            self.expert = expert
            self.learned = learned
        }
    }

    public init(feedback: Feedback) { self.feedback = feedback }
}

/// One entry of a run's event log, as the `data:` line of the event stream carries it.
public struct APIRunEvent: Codable, Sendable, Equatable {
    public var seq: Int
    public var type: String
    public var step: String?
    public var data: JSONValue
    public var at: String?

    public init(seq: Int, type: String, step: String?, data: JSONValue, at: String?) {
        self.seq = seq
        self.type = type
        self.step = step
        self.data = data
        self.at = at
    }
}

// MARK: - Requests

/// `POST /v1/workflows/{name}/runs {"input"}`. The input is checked to be an object
/// only by ``inputObject()``, after the route has found the workflow (an unknown
/// workflow answers 404 whatever the body).
public struct APIStartRunRequest: Codable, Sendable, Equatable {
    public var input: JSONValue?

    public init(input: [String: JSONValue]) { self.input = .object(input) }

    /// The input: a JSON object; absent or null is `{}`.
    public func inputObject() throws(RequestRefusal) -> [String: JSONValue] {
        switch input {
        case nil, .null?: return [:]
        case .object(let object)?: return object
        default: throw RequestRefusal("`input` must be a JSON object", code: .invalidInput)
        }
    }
}

/// `POST /v1/runs/{id}/signals/{name} {"data"}`: any JSON, null when absent.
public struct APISignalRequest: Codable, Sendable, Equatable {
    public var data: JSONValue

    public init(data: JSONValue) { self.data = data }

    private enum CodingKeys: String, CodingKey { case data }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        data = try container.json(forKey: .data) ?? .null
    }
}

/// `POST /v1/runs/{id}/steps/{step}/feedback {"good": true|false}`.
public struct APIFeedbackRequest: Codable, Sendable, Equatable {
    public var good: Bool

    public init(good: Bool) { self.good = good }

    private enum CodingKeys: String, CodingKey { case good }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard case .bool(let good)? = try? container.json(forKey: .good) else {
            throw RequestRefusal("`good` (true or false) is required")
        }
        self.good = good
    }
}
