import SwitchyardExperts
import SwitchyardMetering

/// A range of calls and cost, composed step by step: a plan adds what happens in
/// sequence, takes the wider of alternatives, and lowers the minimum of what may not
/// happen, so that the range always contains what a finished run costs.
public struct CostEstimate: Sendable {
    /// The fewest and the most model calls (a call an expert may re-ask counts once;
    /// its cost counts every billed answer).
    public var minCalls = 0
    public var maxCalls = 0
    /// The cost range; meaningless while `unpriced` is not empty.
    public var minCost = Money.zero
    public var maxCost = Money.zero
    /// Experts the calls may go to, in the order first met.
    public var experts: [String] = []
    /// Why the cost cannot be given (a model without a price, an unknown expert).
    public var unpriced: [String] = []
    public var notes: [String] = []

    public init(experts: [String] = [], unpriced: [String] = [], notes: [String] = []) {
        self.experts = experts
        self.unpriced = unpriced
        self.notes = notes
    }

    /// `self` then `other`: both happen.
    mutating func add(_ other: CostEstimate) throws {
        minCalls += other.minCalls
        maxCalls += other.maxCalls
        minCost = try minCost.adding(other.minCost)
        maxCost = try maxCost.adding(other.maxCost)
        merge(other)
    }

    /// `self` or `other`, whichever the run takes.
    static func either(_ a: CostEstimate, _ b: CostEstimate) -> CostEstimate {
        var result = a
        result.minCalls = min(a.minCalls, b.minCalls)
        result.maxCalls = max(a.maxCalls, b.maxCalls)
        result.minCost = min(a.minCost, b.minCost)
        result.maxCost = max(a.maxCost, b.maxCost)
        result.merge(b)
        return result
    }

    /// Happens between `low` and `high` times.
    func repeated(low: Int, high: Int) throws -> CostEstimate {
        var result = self
        result.minCalls = minCalls * low
        result.maxCalls = maxCalls * high
        result.minCost = try minCost.multiplied(by: low)
        result.maxCost = try maxCost.multiplied(by: high)
        return result
    }

    /// May not happen at all.
    var optional: CostEstimate {
        var result = self
        result.minCalls = 0
        result.minCost = .zero
        return result
    }

    private mutating func merge(_ other: CostEstimate) {
        for expert in other.experts where !experts.contains(expert) { experts.append(expert) }
        for reason in other.unpriced where !unpriced.contains(reason) { unpriced.append(reason) }
        for note in other.notes where !notes.contains(note) { notes.append(note) }
    }
}

/// What one workflow step comes to.
public struct StepPlan: Sendable {
    /// The step's id.
    public var step: String
    public var estimate: CostEstimate
    /// The expert the gate expects to answer, for a step routed `auto`.
    public var expectedExpert: String?
    /// Whether the step may call a model (model steps, maps of them, child workflows):
    /// the others are left out of a plan's listing.
    public var listed = true
    /// The first-turn requests the estimate priced, one per item (tests compare them
    /// with what a run sends).
    var requests: [ModelRequest] = []

    init(step: String, estimate: CostEstimate, expectedExpert: String? = nil, listed: Bool = true) {
        self.step = step
        self.estimate = estimate
        self.expectedExpert = expectedExpert
        self.listed = listed
    }
}

/// A workflow's plan: each step's range in document order, and the assumptions the
/// whole plan makes.
public struct WorkflowPlan: Sendable {
    public var steps: [StepPlan]
    /// The plan's assumptions (models not yet seen, default caps, rates used).
    public var notes: [String]
}
