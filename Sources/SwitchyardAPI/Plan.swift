/// `POST /v1/workflows/{name}/plan` (200): a run's cost range before it runs. The
/// totals (`min_usd`, `max_usd`) are decimal strings, null when any listed step is
/// unpriced.
public struct APIPlan: Codable, Sendable, Equatable {
    public var workflow: String
    /// The steps that call models; transforms, tools and waits are not listed.
    public var steps: [APIPlanStep]
    public var minUSD: String?
    public var maxUSD: String?
    public var unpriced: Bool
    /// The planner's assumptions.
    public var notes: [String]

    public init(workflow: String, steps: [APIPlanStep], minUSD: String?, maxUSD: String?, unpriced: Bool, notes: [String]) {
        self.workflow = workflow
        self.steps = steps
        self.minUSD = minUSD
        self.maxUSD = maxUSD
        self.unpriced = unpriced
        self.notes = notes
    }

    private enum CodingKeys: String, CodingKey {
        case workflow, steps, unpriced, notes
        case minUSD = "min_usd"
        case maxUSD = "max_usd"
    }
}

/// One model step of a plan: the experts it may call, how many calls, and their cost
/// range (null when a model it may call has no price).
public struct APIPlanStep: Codable, Sendable, Equatable {
    /// The fewest and most model calls the step can make.
    public struct Calls: Codable, Sendable, Equatable {
        public var min: Int
        public var max: Int

        public init(min: Int, max: Int) {
            self.min = min
            self.max = max
        }
    }

    public var step: String
    public var experts: [String]
    public var calls: Calls
    public var minUSD: String?
    public var maxUSD: String?
    public var unpriced: Bool
    /// Why the step costs what it does, and why it is unpriced when it is.
    public var notes: [String]
    /// Under `auto`: the expert the gate would pick today (absent otherwise).
    public var expectedExpert: String?

    public init(
        step: String, experts: [String], calls: Calls, minUSD: String?, maxUSD: String?, unpriced: Bool, notes: [String],
        expectedExpert: String?
    ) {
        self.step = step
        self.experts = experts
        self.calls = calls
        self.minUSD = minUSD
        self.maxUSD = maxUSD
        self.unpriced = unpriced
        self.notes = notes
        self.expectedExpert = expectedExpert
    }

    private enum CodingKeys: String, CodingKey {
        case step, experts, calls, unpriced, notes
        case minUSD = "min_usd"
        case maxUSD = "max_usd"
        case expectedExpert = "expected_expert"
    }

    /// `min_usd`/`max_usd` are always written (null when unpriced); `expected_expert`
    /// only when there is one.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(step, forKey: .step)
        try container.encode(experts, forKey: .experts)
        try container.encode(calls, forKey: .calls)
        try container.encode(minUSD, forKey: .minUSD)
        try container.encode(maxUSD, forKey: .maxUSD)
        try container.encode(unpriced, forKey: .unpriced)
        try container.encode(notes, forKey: .notes)
        if let expectedExpert { try container.encode(expectedExpert, forKey: .expectedExpert) }
    }
}
