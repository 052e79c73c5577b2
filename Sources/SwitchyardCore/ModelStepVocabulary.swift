/// A step's declared difficulty (`difficulty:` in the workflow). The author knows things
/// the text does not show, so the hint moves the gate's score directly.
public enum Difficulty: String, Sendable, Hashable, Codable, CaseIterable {
    case easy, medium, hard
}

/// What a budget does with a call that does not fit: the tenant's default
/// (`yard budgets set --on-budget`), or a step's own `on_budget:`.
public enum BudgetPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// The step fails with `budget_exceeded`.
    case fail
    /// The gate sends the call to flash instead of pro, if that fits.
    case downgrade
}

/// The two expert tiers the gate chooses between, and the experts every server
/// configures. Other configured experts are only ever chosen by name.
public enum ExpertTier: String, Sendable, Hashable, Codable, CaseIterable {
    case flash, pro
}

/// How a model step's expert is chosen: by name (`fixed`), by the gate (`auto`), or
/// flash first and pro when flash's answer fails the step's checks (`cascade`). A
/// step's `model:` names an expert or one of the two keywords.
public enum RoutingMode: String, Sendable, Hashable, Codable, CaseIterable {
    case fixed, auto, cascade

    /// The words a `model:` may use besides expert names.
    public static let keywords: [RoutingMode] = [.auto, .cascade]

    /// The names every `model:` may use: the two tiers and the two keywords.
    public static let builtInChoices: [String] = ExpertTier.allCases.map(\.rawValue) + keywords.map(\.rawValue)
}
