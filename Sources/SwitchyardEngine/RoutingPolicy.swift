import SwitchyardCore
import SwitchyardGate

/// How a model step's `model:` choice routes its calls: which experts the step may
/// call, and in what order. The step runner follows it and the cost planner prices
/// it, from this one definition, so a plan never covers a route the run cannot take
/// (or misses one it can).
enum RoutingPolicy: Sendable, Hashable {
    /// One named expert (`flash`, `pro`, or any expert the server configures).
    case fixed(String)
    /// The gate picks flash or pro from the prompt and the step's history.
    case auto
    /// Flash answers first; pro answers too when flash's answer fails the step's checks.
    case cascade

    /// The choices a workflow may name besides the configured experts.
    static let keywords = Set(RoutingMode.builtInChoices)

    /// The step's `model` (rendered), else its agent's, else flash.
    static func choice(requested: String?, agent: AgentSpec?) -> String {
        requested ?? agent?.model ?? ExpertTier.flash.rawValue
    }

    init(choice: String) {
        switch RoutingMode(rawValue: choice) {
        case .auto: self = .auto
        case .cascade: self = .cascade
        case .fixed, nil: self = .fixed(choice)
        }
    }

    /// The experts the step may call, in the order it calls them: under `auto` the gate
    /// calls one of them, under `cascade` the later ones only when the earlier failed.
    var experts: [String] {
        switch self {
        case .fixed(let name): [name]
        case .auto, .cascade: [ExpertTier.flash.rawValue, ExpertTier.pro.rawValue]
        }
    }
}
