import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardMetering

/// A tenant's monthly budget and what happens to a call that does not fit it.
public struct Budget: Sendable, Hashable {
    public var monthlyLimit: Money
    public var onBudget: BudgetPolicy

    public init(monthlyLimit: Money, onBudget: BudgetPolicy = .fail) {
        self.monthlyLimit = monthlyLimit
        self.onBudget = onBudget
    }
}

/// A budget's position when a reservation was refused.
public struct BudgetState: Sendable, Hashable {
    public var limit: Money
    public var spent: Money
    public var reserved: Money
    public var policy: BudgetPolicy
}

public struct BudgetAlert: Sendable, Hashable {
    public var percent: Int
    public var spent: Money
    public var limit: Money
}

/// The worst case of one call, written before it is sent.
public struct CallReservation: Sendable, Hashable {
    public var tenantID: UUID
    public var runID: UUID
    public var stepID: String
    public var attempt: Int
    public var callIndex: Int
    public var workflow: String
    public var expert: String
    public var model: String
    public var priceID: String?
    public var amount: Money
    public var startedAt: Date

    public init(
        tenantID: UUID, runID: UUID, stepID: String, attempt: Int, callIndex: Int, workflow: String, expert: String, model: String,
        priceID: String?, amount: Money, startedAt: Date
    ) {
        self.tenantID = tenantID
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
        self.callIndex = callIndex
        self.workflow = workflow
        self.expert = expert
        self.model = model
        self.priceID = priceID
        self.amount = amount
        self.startedAt = startedAt
    }
}

public enum ReservationOutcome: Sendable, Hashable {
    /// Written; the tenant's budget, if it has one.
    case admitted(Budget?)
    /// Refused: it would take spend + reservations over the limit. Nothing was written.
    case refused(BudgetState)
    /// Refused: the tenant has a budget and the model has no price.
    case unpriced(BudgetState)
}

/// One ledger row as `GET /v1/usage` lists it.
public struct LedgerRow: Sendable, Hashable {
    public var run: UUID
    public var step: String
    public var attempt: Int
    public var call: Int
    public var expert: String
    public var model: String
    public var promptTokens: Int
    public var cacheHitTokens: Int
    public var cacheMissTokens: Int
    public var completionTokens: Int
    public var reasoningTokens: Int
    /// Nil for an unpriced model.
    public var cost: Money?
    public var priceID: String?
    public var usageKnown: Bool
    public var workflow: String?
    public var startedAt: Date
}

/// Where a page of ledger rows ends: the last row's start time in exact
/// microseconds and its key.
public struct LedgerCursor: Sendable, Hashable {
    var micros: Int64
    var key: String

    /// An opaque token.
    public var token: String { Data("\(micros)|\(key)".utf8).base64EncodedString() }

    init(micros: Int64, key: String) {
        self.micros = micros
        self.key = key
    }

    public init?(token: String) {
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8) else { return nil }
        let parts = text.split(separator: "|", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]) else { return nil }
        self.init(micros: micros, key: String(parts[1]))
    }
}

/// A dimension `GET /v1/costs` groups by.
public enum CostDimension: String, Sendable, Hashable, CaseIterable {
    case tenant, workflow, step, expert, model, day

    var sqlExpression: String {
        switch self {
        case .tenant: "t.name"
        case .workflow: "c.workflow"
        case .step: "c.step_id"
        case .expert: "c.expert"
        case .model: "c.model"
        case .day: "to_char(c.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
    }
}

/// Sums of ledger rows for one combination of dimension values.
public struct CostGroup: Sendable, Hashable {
    public var key: [String: String]
    public var calls: Int
    public var promptTokens: Int
    public var cacheHitTokens: Int
    public var cacheMissTokens: Int
    public var completionTokens: Int
    public var reasoningTokens: Int
    public var cost: Money
    /// Calls of models without a price (their tokens count, their cost is unknown).
    public var unpricedCalls: Int
    /// Calls whose usage was never reported (their cost is an upper-bound estimate).
    public var estimatedCalls: Int
    public var proCalls: Int
    public var proCost: Money
}

extension CostGroup {
    /// The sum of groups (a report's `total`), in checked arithmetic.
    public static func total(of groups: [CostGroup]) throws(MeteringError) -> CostGroup {
        var total = CostGroup(
            key: [:], calls: 0, promptTokens: 0, cacheHitTokens: 0, cacheMissTokens: 0, completionTokens: 0, reasoningTokens: 0, cost: .zero,
            unpricedCalls: 0, estimatedCalls: 0, proCalls: 0, proCost: .zero)
        for group in groups {
            total.calls += group.calls
            total.promptTokens += group.promptTokens
            total.cacheHitTokens += group.cacheHitTokens
            total.cacheMissTokens += group.cacheMissTokens
            total.completionTokens += group.completionTokens
            total.reasoningTokens += group.reasoningTokens
            total.cost = try total.cost.adding(group.cost)
            total.unpricedCalls += group.unpricedCalls
            total.estimatedCalls += group.estimatedCalls
            total.proCalls += group.proCalls
            total.proCost = try total.proCost.adding(group.proCost)
        }
        return total
    }
}
