import SwitchyardCore

/// What the gate sees of one model step: only what the engine has before the call, so the
/// same code can run in production and in `yard bench gate`.
public struct GateRequest: Sendable {
    /// The rendered user prompt.
    public var prompt: String
    /// Agent instructions, if any. They are the same for every call of a step, so the step
    /// history captures their effect; the gate does not score their text.
    public var system: String?
    /// `workflow/step`: the identity under which outcomes are learned.
    public var stepKey: String
    /// The declared `difficulty:` hint.
    public var difficulty: Difficulty?
    /// `thinking: true` was declared.
    public var thinking: Bool
    /// The step's output JSON Schema; a structured answer is harder to get right.
    public var outputSchema: JSONValue?
    /// Tools the agent may call; tool use is where cheap models go wrong first.
    public var toolCount: Int

    public init(
        prompt: String, system: String? = nil, stepKey: String, difficulty: Difficulty? = nil, thinking: Bool = false,
        outputSchema: JSONValue? = nil, toolCount: Int = 0
    ) {
        self.prompt = prompt
        self.system = system
        self.stepKey = stepKey
        self.difficulty = difficulty
        self.thinking = thinking
        self.outputSchema = outputSchema
        self.toolCount = toolCount
    }
}

/// What has been learned about one step: how often each expert succeeded and failed on it.
/// Four numbers so the engine can keep them per tenant in PostgreSQL. They are the
/// observations of two Beta posteriors whose prior comes from the text model, so 1–2
/// outcomes move the score a little and a few dozen settle it.
///
/// The counts are plain sums (no decay): the order of outcomes does not matter, which keeps
/// replays reproducible and lets the engine add counts from concurrent steps in any order.
public struct StepHistory: Sendable, Hashable, Codable {
    public var flashSuccesses: Double
    public var flashFailures: Double
    public var proSuccesses: Double
    public var proFailures: Double

    public init(flashSuccesses: Double = 0, flashFailures: Double = 0, proSuccesses: Double = 0, proFailures: Double = 0) {
        self.flashSuccesses = flashSuccesses
        self.flashFailures = flashFailures
        self.proSuccesses = proSuccesses
        self.proFailures = proFailures
    }

    /// No outcomes yet: the gate decides from the text and the hints alone.
    public static let empty = StepHistory()

    /// Outcomes seen of `expert` on this step.
    public func trials(_ expert: ExpertTier) -> Double {
        switch expert {
        case .flash: flashSuccesses + flashFailures
        case .pro: proSuccesses + proFailures
        }
    }

    /// Adds one outcome of `expert` on this step (a checked answer, a cascade escalation,
    /// a failed output-schema validation …).
    public mutating func record(_ expert: ExpertTier, succeeded: Bool) {
        switch (expert, succeeded) {
        case (.flash, true): flashSuccesses += 1
        case (.flash, false): flashFailures += 1
        case (.pro, true): proSuccesses += 1
        case (.pro, false): proFailures += 1
        }
    }
}

/// A pressure towards flash from outside the gate (remaining budget, peak-hour price),
/// supplied by metering. It raises the bar pro has to clear.
public struct GateLean: Sendable, Hashable {
    /// Added to the threshold: 0.05 means pro must be expected to be right 5 points more
    /// often than flash beyond what the tenant's threshold already asks. Negative leans
    /// towards pro.
    public var towardsFlash: Double
    /// Shown among the decision's reasons, e.g. "budget 90% spent".
    public var reason: String?

    public init(towardsFlash: Double, reason: String? = nil) {
        self.towardsFlash = towardsFlash
        self.reason = reason
    }

    public static let none = GateLean(towardsFlash: 0)
}

/// The decision recorded on the step and shown by the CLI, so a surprising choice can be
/// explained after the fact. Its JSON is always
/// `{"policy","expert","score","threshold","reasons","escalated"}` (absent numbers are `null`).
public struct RouteDecision: Sendable, Hashable, Codable {
    public var policy: RoutingMode
    /// The expert chosen: "flash", "pro" or another configured name.
    public var expert: String
    /// auto: the estimated benefit of pro, on the threshold's scale (higher = more reason for pro).
    public var score: Double?
    /// auto: the bar the score had to reach for pro (tenant threshold + lean).
    public var threshold: Double?
    /// Short human-readable reasons, the largest effects first.
    public var reasons: [String]
    /// cascade: flash's answer failed its check and pro ran.
    public var escalated: Bool

    public init(policy: RoutingMode, expert: String, score: Double? = nil, threshold: Double? = nil, reasons: [String] = [], escalated: Bool = false)
    {
        self.policy = policy
        self.expert = expert
        self.score = score
        self.threshold = threshold
        self.reasons = reasons
        self.escalated = escalated
    }

    enum CodingKeys: String, CodingKey {
        case policy, expert, score, threshold, reasons, escalated
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        policy = try container.decode(RoutingMode.self, forKey: .policy)
        expert = try container.decode(String.self, forKey: .expert)
        score = try container.decodeIfPresent(Double.self, forKey: .score)
        threshold = try container.decodeIfPresent(Double.self, forKey: .threshold)
        reasons = try container.decodeIfPresent([String].self, forKey: .reasons) ?? []
        escalated = try container.decodeIfPresent(Bool.self, forKey: .escalated) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(policy, forKey: .policy)
        try container.encode(expert, forKey: .expert)
        try container.encode(score, forKey: .score)  // `null` when absent: the keys are always the same
        try container.encode(threshold, forKey: .threshold)
        try container.encode(reasons, forKey: .reasons)
        try container.encode(escalated, forKey: .escalated)
    }
}

/// The gate: picks flash or pro for a model step.
///
/// **Score scale.** The score is the expected accuracy gain of pro over flash on this call,
/// in probability points from −1 to 1: 0.10 means "pro is expected to be right 10 points
/// more often than flash here". It is `P(pro right) − P(flash right)`, where each
/// probability is a Beta posterior: its prior mean comes from a small linear model of the
/// prompt text plus the declared hints, with a weight of `model.priorStrength` outcomes,
/// and the step's history adds the observed outcomes. An exploration term (optimism for the
/// expert seen less on this step) makes sure both experts' rates keep being learned, since
/// the engine only ever sees the outcome of the expert it ran.
///
/// **Threshold.** Pro runs when `score >= threshold + lean.towardsFlash`. The threshold is
/// a tenant's quality/cost target on the same scale: the smallest accuracy gain worth a pro
/// call. Negative thresholds favour pro; ≥ 1 means flash always. See `defaultThreshold`.
public struct Gate: Sendable {
    public var model: GateModel
    let keywords: KeywordTable

    public init(model: GateModel = .default) {
        self.model = model
        self.keywords = KeywordTable.shared
    }

    /// The threshold at which `yard bench gate` reached about 95% of always-pro accuracy
    /// on the tuning split, online (see Scripts/gate/README.md).
    public static let defaultThreshold: Double = 0.18

    /// The auto decision: pro when score >= threshold + lean.towardsFlash.
    public func decide(_ request: GateRequest, history: StepHistory, threshold: Double, lean: GateLean = .none) -> RouteDecision {
        let (score, reasons) = score(request, history: history)
        let bar = threshold + lean.towardsFlash
        var allReasons = reasons
        if lean.towardsFlash != 0 {
            allReasons.append("lean towards flash" + (lean.reason.map { ": \($0)" } ?? "") + " (threshold \(Format.signed(lean.towardsFlash)))")
        }
        let expert: ExpertTier = score >= bar ? .pro : .flash
        return RouteDecision(policy: .auto, expert: expert.rawValue, score: score, threshold: bar, reasons: allReasons)
    }

    /// The estimated benefit of pro for this call and why.
    public func score(_ request: GateRequest, history: StepHistory) -> (score: Double, reasons: [String]) {
        let breakdown = explain(request, history: history)
        return (breakdown.score, breakdown.reasons)
    }

    /// A fixed choice ("flash", "pro", any other expert name) recorded the same way.
    public static func fixed(_ expert: String) -> RouteDecision {
        RouteDecision(policy: .fixed, expert: expert, reasons: ["fixed expert: \(expert)"])
    }

    /// A cascade outcome: flash ran first; `escalated` when its answer failed the check and pro ran.
    public static func cascade(escalated: Bool, reason: String? = nil) -> RouteDecision {
        var reasons = [escalated ? "flash answer failed its check: escalated to pro" : "flash answer passed its check"]
        if let reason { reasons.append(reason) }
        return RouteDecision(policy: .cascade, expert: (escalated ? ExpertTier.pro : .flash).rawValue, reasons: reasons, escalated: escalated)
    }

    /// Every part of the score, for reasons and for tests.
    public func explain(_ request: GateRequest, history: StepHistory) -> GateScoreBreakdown {
        let features = GateFeatures(request.prompt, keywords: keywords)
        return model.score(features: features, request: request, history: history)
    }
}

/// The parts of one score.
public struct GateScoreBreakdown: Sendable {
    /// The decision score: posterior gain plus exploration.
    public var score: Double
    /// Prior success probabilities (text model and hints) before the step's history.
    public var priorFlash: Double
    public var priorPro: Double
    /// Posterior means after the step's history.
    public var posteriorFlash: Double
    public var posteriorPro: Double
    /// The exploration term included in `score`.
    public var exploration: Double
    public var reasons: [String]
}

/// Number formatting without Foundation (decisions are on the hot path).
enum Format {
    /// "+0.12" / "-0.05".
    static func signed(_ value: Double) -> String {
        (value < 0 ? "-" : "+") + plain(abs(value))
    }

    /// Two decimals.
    static func plain(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        let hundredths = Int((abs(value) * 100).rounded())
        let fraction = hundredths % 100
        return (value < 0 && hundredths > 0 ? "-" : "") + "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    }

    static func count(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : plain(value)
    }
}
