import SwitchyardCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The gate's parameters: a linear model of each expert's success probability from the
/// prompt features (fitted offline by `Scripts/gate/fit.py`, pasted into `GateWeights.swift`),
/// fixed effects of the declared hints (set by hand: the outcome data has no hints), and the
/// constants of the Bayesian blend with the step's history.
///
/// Linear so that each feature's effect on the score is one additive number: the reasons
/// can say exactly how much "maths markers" added.
public struct GateModel: Sendable, Hashable {
    /// Weights of P(flash right), one per `GateFeatures.names` entry.
    public var flashWeights: [Double]
    /// Weights of P(pro right).
    public var proWeights: [Double]
    /// How many outcomes the text prior is worth in the Beta posterior of each expert.
    public var priorStrength: Double
    /// Optimism for the expert seen less on this step: the score moves by
    /// `exploration · (u(pro) − u(flash))` with `u(n) = sqrt(0.25 / (n + priorStrength))`.
    public var exploration: Double
    /// The mean text prior of each expert over the data the weights were fitted on: the
    /// level a step's history is compared with.
    public var baseFlash: Double
    public var basePro: Double
    /// Score added by a declared `difficulty:`.
    public var hardBonus: Double
    public var easyBonus: Double
    /// Score added by `thinking: true`.
    public var thinkingBonus: Double
    /// Score added per tool, up to `maximumToolBonus`.
    public var toolBonus: Double
    public var maximumToolBonus: Double
    /// Score added by the most complex output schemas (scaled by schema size).
    public var schemaBonus: Double

    public init(
        flashWeights: [Double], proWeights: [Double], baseFlash: Double, basePro: Double, priorStrength: Double, exploration: Double,
        hardBonus: Double = 0.15,
        easyBonus: Double = -0.10, thinkingBonus: Double = 0.08, toolBonus: Double = 0.02, maximumToolBonus: Double = 0.08,
        schemaBonus: Double = 0.06
    ) {
        precondition(flashWeights.count == GateFeatures.count && proWeights.count == GateFeatures.count, "one weight per gate feature")
        self.flashWeights = flashWeights
        self.proWeights = proWeights
        self.baseFlash = baseFlash
        self.basePro = basePro
        self.priorStrength = priorStrength
        self.exploration = exploration
        self.hardBonus = hardBonus
        self.easyBonus = easyBonus
        self.thinkingBonus = thinkingBonus
        self.toolBonus = toolBonus
        self.maximumToolBonus = maximumToolBonus
        self.schemaBonus = schemaBonus
    }

    /// The fitted model (see `GateWeights.swift`).
    public static let `default` = GateModel(
        flashWeights: GateWeights.flash, proWeights: GateWeights.pro, baseFlash: GateWeights.baseFlash, basePro: GateWeights.basePro,
        priorStrength: GateWeights.priorStrength,
        exploration: GateWeights.exploration)

    /// Success probabilities are kept inside this range: no text makes an expert certain.
    static let probabilityFloor = 0.02
    static let probabilityCeiling = 0.98

    /// The score of one call, with its reasons.
    func score(features: GateFeatures, request: GateRequest, history: StepHistory) -> GateScoreBreakdown {
        var flash = 0.0
        var pro = 0.0
        var contributions: [(label: String, value: Double)] = []
        contributions.reserveCapacity(8)
        for index in 0..<min(features.values.count, flashWeights.count) {
            let x = features.values[index]
            flash += flashWeights[index] * x
            pro += proWeights[index] * x
            let effect = (proWeights[index] - flashWeights[index]) * x
            if index > 0, abs(effect) >= 0.01 { contributions.append((GateFeatures.labels[index], effect)) }
        }
        contributions.sort { abs($0.value) > abs($1.value) }
        var reasons: [String] = []
        reasons.reserveCapacity(8)

        // Declared hints: they lower flash's expected success (pro is the robust one).
        var hints = 0.0
        switch request.difficulty {
        case .hard?:
            hints += hardBonus
            reasons.append("declared difficulty: hard (\(Format.signed(hardBonus)))")
        case .easy?:
            hints += easyBonus
            reasons.append("declared difficulty: easy (\(Format.signed(easyBonus)))")
        case .medium?:
            reasons.append("declared difficulty: medium")
        case nil:
            break
        }
        if request.thinking {
            hints += thinkingBonus
            reasons.append("thinking requested (\(Format.signed(thinkingBonus)))")
        }
        if request.toolCount > 0 {
            let bonus = min(Double(request.toolCount) * toolBonus, maximumToolBonus)
            hints += bonus
            reasons.append("\(request.toolCount) tool\(request.toolCount == 1 ? "" : "s") (\(Format.signed(bonus)))")
        }
        if let schema = request.outputSchema {
            let size = Self.schemaSize(schema)
            let bonus = schemaBonus * min(Double(size) / 20, 1)
            if bonus >= 0.005 {
                hints += bonus
                reasons.append("output schema: \(size) nodes (\(Format.signed(bonus)))")
            }
        }
        // Hints apply to the clamped prior, so that a prompt the text model is sure of
        // still moves when the author declares it hard.
        let priorFlash = Self.clamp(Self.clamp(flash) - hints)
        let priorPro = Self.clamp(pro)

        // The step's history. Each expert's success rate on this step is a Beta posterior
        // centred on the model's base rate (shifted by the step's hints), worth
        // `priorStrength` outcomes; how far it has moved from that base, in log-odds, moves
        // this prompt's text prior. So the history sets the step's level while the text still
        // ranks the prompts within the step (a step whose prompts vary keeps its routing signal).
        let n0 = priorStrength
        let flashTrials = history.trials(.flash)
        let proTrials = history.trials(.pro)
        let posteriorFlash: Double
        let posteriorPro: Double
        if flashTrials + proTrials > 0 {
            let stepBaseFlash = Self.clamp(baseFlash - hints)
            let stepFlash = (history.flashSuccesses + n0 * stepBaseFlash) / (flashTrials + n0)
            let stepPro = (history.proSuccesses + n0 * basePro) / (proTrials + n0)
            posteriorFlash = Self.sigmoid(Self.logit(priorFlash) + Self.logit(stepFlash) - Self.logit(stepBaseFlash))
            posteriorPro = Self.sigmoid(Self.logit(priorPro) + Self.logit(stepPro) - Self.logit(basePro))
        } else {
            posteriorFlash = priorFlash
            posteriorPro = priorPro
        }
        let exploration = self.exploration * (Self.uncertainty(proTrials, n0) - Self.uncertainty(flashTrials, n0))
        let score = posteriorPro - posteriorFlash + exploration

        var ordered = ["text prior: flash \(Format.plain(priorFlash)), pro \(Format.plain(priorPro))"]
        for contribution in contributions.prefix(4) {
            ordered.append("\(contribution.label) (\(Format.signed(contribution.value)))")
        }
        ordered.append(contentsOf: reasons)
        if flashTrials + proTrials > 0 {
            let historyEffect = (posteriorPro - posteriorFlash) - (priorPro - priorFlash)
            ordered.append(
                "step history: flash failed \(Format.count(history.flashFailures))/\(Format.count(flashTrials)), pro failed \(Format.count(history.proFailures))/\(Format.count(proTrials)) (\(Format.signed(historyEffect)))"
            )
        }
        if abs(exploration) >= 0.005 {
            ordered.append("exploring \(exploration < 0 ? "flash" : "pro"), less tried on this step (\(Format.signed(exploration)))")
        }
        return GateScoreBreakdown(
            score: score, priorFlash: priorFlash, priorPro: priorPro, posteriorFlash: posteriorFlash, posteriorPro: posteriorPro,
            exploration: exploration, reasons: ordered)
    }

    static func clamp(_ p: Double) -> Double {
        guard p.isFinite else { return 0.5 }
        return min(max(p, probabilityFloor), probabilityCeiling)
    }

    static func logit(_ p: Double) -> Double {
        let q = min(max(p, 1e-4), 1 - 1e-4)
        return log(q / (1 - q))
    }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    static func uncertainty(_ trials: Double, _ n0: Double) -> Double {
        (0.25 / max(trials + n0, 1)).squareRoot()
    }

    /// Nodes of a JSON Schema (objects, properties, array items …), bounded in depth.
    static func schemaSize(_ schema: JSONValue, depth: Int = 0) -> Int {
        guard depth < 8 else { return 0 }
        switch schema {
        case .object(let object):
            var size = 1
            for (key, value) in object where key != "description" && key != "title" && key != "examples" {
                size += schemaSize(value, depth: depth + 1)
            }
            return size
        case .array(let items):
            return items.reduce(0) { $0 + schemaSize($1, depth: depth + 1) }
        default:
            return 0
        }
    }
}
