import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardMetering

/// The price book, the ledger's money, budgets and their reservations, in PostgreSQL.
///
/// The budget guarantee rests on one rule: a reservation is admitted only while the
/// tenant's budget row is locked, and only if this month's settled spend (the sum of
/// ledger rows) plus every open reservation plus this one fits the limit. Settling
/// replaces a reservation by its ledger row in one transaction, for at most the
/// reserved amount. So at every commit, spend + reservations ≤ limit, whatever the
/// number of calls and servers.
public struct MeteringRepository: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    // MARK: - Prices

    /// Every price row.
    public func priceBook() async throws -> PriceBook {
        var rows: [PriceRow] = []
        for try await (id, model, effective, hit, miss, output, peak) in try await database.query(
            "SELECT id, model, effective_from, input_cache_hit, input_cache_miss, output, peak FROM prices", logger: database.logger
        ).decode((String, String, Date, Int64, Int64, Int64, JSONValue?).self) {
            rows.append(try Self.priceRow(id: id, model: model, effective: effective, hit: hit, miss: miss, output: output, peak: peak))
        }
        return try PriceBook(rows: rows)
    }

    /// Adds a price row. An existing id, or the same model and instant, is a conflict:
    /// rows are never edited once calls may cite them.
    public func addPrice(_ row: PriceRow) async throws {
        do {
            try await database.query(
                """
                INSERT INTO prices (id, model, effective_from, input_cache_hit, input_cache_miss, output, peak)
                VALUES (\(row.id), \(row.model), \(row.effectiveFrom), \(row.inputCacheHit.microUSDPerMillion),
                        \(row.inputCacheMiss.microUSDPerMillion), \(row.output.microUSDPerMillion), \(Self.peakJSON(row.peak)))
                """, logger: database.logger)
        } catch  where Database.isUniqueViolation(error) {
            throw DatabaseError(
                .conflict,
                "a price row with the id \(row.id), or for \(row.model) from the same instant, already exists; add a row with a later effective_from")
        }
    }

    /// Inserts seed rows that are not there yet (by id); returns how many were added.
    @discardableResult
    public func seed(_ rows: [PriceRow]) async throws -> Int {
        var added = 0
        for row in rows {
            for try await _ in try await database.query(
                """
                INSERT INTO prices (id, model, effective_from, input_cache_hit, input_cache_miss, output, peak)
                VALUES (\(row.id), \(row.model), \(row.effectiveFrom), \(row.inputCacheHit.microUSDPerMillion),
                        \(row.inputCacheMiss.microUSDPerMillion), \(row.output.microUSDPerMillion), \(Self.peakJSON(row.peak)))
                ON CONFLICT DO NOTHING RETURNING id
                """, logger: database.logger
            ).decode(String.self) {
                added += 1
            }
        }
        return added
    }

    static func peakJSON(_ peak: PeakPricing?) -> JSONValue? {
        guard let peak else { return nil }
        return [
            "windows": .array(
                peak.windows.map { window in
                    [
                        "weekdays": .array(window.weekdays.sorted().map(JSONValue.int)), "start_hour": .int(window.startHour),
                        "end_hour": .int(window.endHour),
                    ]
                }),
            "input_cache_hit": .int(Int(peak.inputCacheHit.microUSDPerMillion)),
            "input_cache_miss": .int(Int(peak.inputCacheMiss.microUSDPerMillion)),
            "output": .int(Int(peak.output.microUSDPerMillion)),
        ]
    }

    static func priceRow(id: String, model: String, effective: Date, hit: Int64, miss: Int64, output: Int64, peak: JSONValue?) throws -> PriceRow {
        var peakPricing: PeakPricing?
        if let peak, peak != .null {
            let windows = try (peak["windows"]?.arrayValue ?? []).map { window throws(MeteringError) in
                try PeakWindow(
                    weekdays: Set((window["weekdays"]?.arrayValue ?? []).compactMap(\.intValue)),
                    startHour: window["start_hour"]?.intValue ?? 0, endHour: window["end_hour"]?.intValue ?? 0)
            }
            peakPricing = try PeakPricing(
                windows: windows,
                inputCacheHit: try TokenPrice(microUSDPerMillion: Int64(peak["input_cache_hit"]?.intValue ?? 0)),
                inputCacheMiss: try TokenPrice(microUSDPerMillion: Int64(peak["input_cache_miss"]?.intValue ?? 0)),
                output: try TokenPrice(microUSDPerMillion: Int64(peak["output"]?.intValue ?? 0)))
        }
        return try PriceRow(
            id: id, model: model, effectiveFrom: effective, inputCacheHit: try TokenPrice(microUSDPerMillion: hit),
            inputCacheMiss: try TokenPrice(microUSDPerMillion: miss), output: try TokenPrice(microUSDPerMillion: output), peak: peakPricing)
    }

    // MARK: - Budgets

    /// The tenant's monthly budget, or nil when it has none.
    public func budget(tenant: UUID) async throws -> Budget? {
        if case let (limit, onBudget)? = try await database.query(
            "SELECT monthly_limit_pusd, on_budget FROM budgets WHERE tenant_id = \(tenant)", logger: database.logger
        ).first(decoding: (Int64, String).self) {
            return Budget(monthlyLimit: Money(picoUSD: limit), onBudget: BudgetPolicy(rawValue: onBudget) ?? .fail)
        }
        return nil
    }

    /// Sets (or, with nil, removes) a tenant's budget; false for no such tenant.
    public func setBudget(tenant: UUID, _ budget: Budget?) async throws -> Bool {
        guard let budget else {
            try await database.query("DELETE FROM budgets WHERE tenant_id = \(tenant)", logger: database.logger)
            return true
        }
        var stored = false
        for try await _ in try await database.query(
            """
            INSERT INTO budgets (tenant_id, monthly_limit_pusd, on_budget)
            SELECT id, \(budget.monthlyLimit.picoUSD), \(budget.onBudget.rawValue) FROM tenants WHERE id = \(tenant)
            ON CONFLICT (tenant_id) DO UPDATE SET monthly_limit_pusd = EXCLUDED.monthly_limit_pusd, on_budget = EXCLUDED.on_budget, updated_at = now()
            RETURNING tenant_id
            """, logger: database.logger
        ).decode(UUID.self) {
            stored = true
        }
        return stored
    }

    /// The budget thresholds (50, 80, 100 %) this month's spend has crossed, as recorded
    /// when they were: also for a call that settled after its run had ended (whose
    /// `budget.alert` event had no live run to go to).
    public func alertsThisMonth(tenant: UUID) async throws -> [Int] {
        var percents: [Int] = []
        for try await percent in try await database.query(
            """
            SELECT percent FROM budget_alerts
            WHERE tenant_id = \(tenant) AND period = date_trunc('month', now() AT TIME ZONE 'UTC')::date ORDER BY percent
            """, logger: database.logger
        ).decode(Int.self) {
            percents.append(percent)
        }
        return percents
    }

    /// This month's settled spend (sum of ledger rows) and open reservations.
    public func spend(tenant: UUID) async throws -> (spent: Money, reserved: Money) {
        try await database.transaction { connection in
            try await Self.spend(tenant: tenant, connection: connection, logger: database.logger)
        }
    }

    static func spend(tenant: UUID, connection: PostgresConnection, logger: Logger) async throws -> (spent: Money, reserved: Money) {
        var result = (spent: Money.zero, reserved: Money.zero)
        for try await (spent, reserved) in try await connection.query(
            """
            SELECT (SELECT coalesce(sum(cost_pusd), 0) FROM model_calls
                    WHERE tenant_id = \(tenant) AND started_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::int8,
                   (SELECT coalesce(sum(amount_pusd), 0) FROM reservations WHERE tenant_id = \(tenant))::int8
            """, logger: logger
        ).decode((Int64, Int64).self) {
            result = (Money(picoUSD: spent), Money(picoUSD: reserved))
        }
        return result
    }

    /// Writes the reservation of a call about to be made. With a budget, it is admitted
    /// only if it fits (see the type's documentation); refused, nothing is written.
    /// `priced` false means the model has no price: with a budget the call is refused,
    /// because its worst case cannot be known.
    public func reserve(_ reservation: CallReservation, priced: Bool = true) async throws -> ReservationOutcome {
        try await database.retryingDeadlocks {
            try await database.transaction { connection in
                var budget: Budget?
                for try await (limit, onBudget) in try await connection.query(
                    "SELECT monthly_limit_pusd, on_budget FROM budgets WHERE tenant_id = \(reservation.tenantID) FOR UPDATE", logger: database.logger
                ).decode((Int64, String).self) {
                    budget = Budget(monthlyLimit: Money(picoUSD: limit), onBudget: BudgetPolicy(rawValue: onBudget) ?? .fail)
                }
                if let budget {
                    let (spent, reserved) = try await Self.spend(tenant: reservation.tenantID, connection: connection, logger: database.logger)
                    let state = BudgetState(limit: budget.monthlyLimit, spent: spent, reserved: reserved, policy: budget.onBudget)
                    guard priced else { return .unpriced(state) }
                    let committed = try spent.adding(reserved)
                    guard try committed.adding(reservation.amount) <= budget.monthlyLimit else { return .refused(state) }
                }
                try await connection.query(
                    """
                    INSERT INTO reservations (tenant_id, run_id, step_id, attempt, call_index, workflow, expert, model, price_id, amount_pusd, started_at)
                    VALUES (\(reservation.tenantID), \(reservation.runID), \(reservation.stepID), \(reservation.attempt), \(reservation.callIndex),
                            \(reservation.workflow), \(reservation.expert), \(reservation.model), \(reservation.priceID), \(reservation.amount.picoUSD),
                            \(reservation.startedAt))
                    ON CONFLICT DO NOTHING
                    """, logger: database.logger)
                return .admitted(budget)
            }
        }
    }

    /// Replaces the call's reservation by its ledger row, in one transaction. A call
    /// whose reservation was already turned into an estimate (its step stopped running
    /// first) replaces that estimate with what is now known. Returns the budget
    /// thresholds (50, 80, 100 %) this call's spend crossed first this month.
    public func settle(_ record: ModelCallRecord) async throws -> [BudgetAlert] {
        // The billed model and the error come from the provider: text columns cannot
        // hold U+0000, and a ledger row must never be lost to one.
        var sanitized = record
        sanitized.model = StoredJSON.plainText(record.model)
        sanitized.error = record.error.map(StoredJSON.plainText)
        let call = sanitized
        return try await database.retryingDeadlocks {
            try await database.transaction { connection in
                try await connection.query(
                    """
                    DELETE FROM reservations WHERE tenant_id = \(call.tenantID) AND run_id = \(call.runID) AND step_id = \(call.stepID)
                      AND attempt = \(call.attempt) AND call_index = \(call.callIndex)
                    """, logger: database.logger)
                try await connection.query(
                    """
                    INSERT INTO model_calls (tenant_id, run_id, step_id, attempt, call_index, workflow, expert, model, prompt_tokens, completion_tokens,
                                             cache_hit_tokens, cache_miss_tokens, reasoning_tokens, usage_known, price_id, cost_pusd,
                                             latency_ms, outcome, error, started_at)
                    VALUES (\(call.tenantID), \(call.runID), \(call.stepID), \(call.attempt), \(call.callIndex), \(call.workflow), \(call.expert),
                            \(call.model), \(call.promptTokens), \(call.completionTokens), \(call.cacheHitTokens), \(call.cacheMissTokens),
                            \(call.reasoningTokens), \(call.usageKnown), \(call.priceID), \(call.cost?.picoUSD), \(call.latencyMilliseconds),
                            \(call.succeeded ? "ok" : "error"), \(call.error), \(call.startedAt))
                    ON CONFLICT (tenant_id, run_id, step_id, attempt, call_index) DO UPDATE SET
                        model = EXCLUDED.model, prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
                        cache_hit_tokens = EXCLUDED.cache_hit_tokens, cache_miss_tokens = EXCLUDED.cache_miss_tokens,
                        reasoning_tokens = EXCLUDED.reasoning_tokens, usage_known = EXCLUDED.usage_known, price_id = EXCLUDED.price_id,
                        cost_pusd = least(EXCLUDED.cost_pusd, model_calls.cost_pusd), latency_ms = EXCLUDED.latency_ms,
                        outcome = EXCLUDED.outcome, error = EXCLUDED.error
                    WHERE NOT model_calls.usage_known
                    """, logger: database.logger)
                return try await Self.raiseAlerts(tenant: call.tenantID, connection: connection, logger: database.logger)
            }
        }
    }

    static let alertThresholds = [50, 80, 100]

    /// Raises the thresholds the tenant's spend has now crossed, inside the settling
    /// transaction. The budget row is locked first: two calls settling at once would each
    /// read the spend without the other's uncommitted row, and a threshold both cross
    /// together (9/10 → 10/10) would be raised by neither. With the lock the later one
    /// waits, then reads (a new statement, a new snapshot) both rows.
    private static func raiseAlerts(tenant: UUID, connection: PostgresConnection, logger: Logger) async throws -> [BudgetAlert] {
        var limit: Int64?
        for try await value in try await connection.query(
            "SELECT monthly_limit_pusd FROM budgets WHERE tenant_id = \(tenant) FOR UPDATE", logger: logger
        ).decode(Int64.self) {
            limit = value
        }
        guard let limit, limit > 0 else { return [] }
        let (spent, _) = try await spend(tenant: tenant, connection: connection, logger: logger)
        var alerts: [BudgetAlert] = []
        // spent × 100 ≥ limit × percent, in full width: a budget above about 92,000 USD
        // times 100 leaves Int64, and the wrapped product raised alerts on the first call.
        func fullWidth(_ value: Int64, _ factor: Int64) -> (Int64, UInt64) {
            let product = value.multipliedFullWidth(by: factor)
            return (product.high, product.low)
        }
        for percent in alertThresholds where fullWidth(spent.picoUSD, 100) >= fullWidth(limit, Int64(percent)) {
            for try await _ in try await connection.query(
                """
                INSERT INTO budget_alerts (tenant_id, period, percent)
                VALUES (\(tenant), date_trunc('month', now() AT TIME ZONE 'UTC')::date, \(percent))
                ON CONFLICT DO NOTHING RETURNING percent
                """, logger: logger
            ).decode(Int.self) {
                alerts.append(BudgetAlert(percent: percent, spent: spent, limit: Money(picoUSD: limit)))
            }
        }
        return alerts
    }

    /// Turns reservations whose step attempt is no longer running (its process died and
    /// the lease was reclaimed, or the run was cancelled mid-call) into ledger rows at
    /// their reserved amount, with usage unknown: the provider may have billed the call,
    /// and the reservation is a true upper bound. Returns how many.
    @discardableResult
    public func settleAbandonedReservations(olderThan grace: Duration = .seconds(2)) async throws -> Int {
        let graceMilliseconds = grace.inMilliseconds
        var count = 0
        for try await _ in try await database.query(
            """
            WITH abandoned AS (
                DELETE FROM reservations r
                WHERE r.created_at < now() - \(graceMilliseconds) * interval '1 millisecond'
                  AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.tenant_id = r.tenant_id AND s.run_id = r.run_id AND s.step_id = r.step_id
                                  AND s.attempt = r.attempt AND s.status = 'running')
                RETURNING r.*
            )
            INSERT INTO model_calls (tenant_id, run_id, step_id, attempt, call_index, workflow, expert, model, prompt_tokens, completion_tokens,
                                     usage_known, price_id, cost_pusd, latency_ms, outcome, error, started_at)
            SELECT tenant_id, run_id, step_id, attempt, call_index, workflow, expert, model, 0, 0, false, price_id, amount_pusd, 0, 'error',
                   'the call ended without reporting its usage (its process stopped, or the run was cancelled); billed at its reservation, an upper bound',
                   started_at
            FROM abandoned
            ON CONFLICT DO NOTHING
            RETURNING call_index
            """, logger: database.logger
        ).decode(Int.self) {
            count += 1
        }
        return count
    }

    // MARK: - Reports

    /// Ledger rows of a tenant, oldest first, for `GET /v1/usage`.
    public func calls(
        tenant: UUID, run: UUID?, from: Date?, to: Date?, limit: Int, after: LedgerCursor?
    ) async throws -> (calls: [LedgerRow], next: LedgerCursor?) {
        var rows: [LedgerRow] = []
        var positions: [LedgerCursor] = []
        let afterMicros = after?.micros ?? Int64.min
        let afterKey = after?.key ?? ""
        // Pages are ordered by start time in exact microseconds, then by the row's key.
        for try await row in try await database.query(
            """
            SELECT run_id, step_id, attempt, call_index, expert, model, prompt_tokens, cache_hit_tokens, cache_miss_tokens, completion_tokens,
                   reasoning_tokens, cost_pusd, price_id, usage_known, workflow, started_at, micros, key
            FROM (SELECT *, (extract(epoch FROM started_at) * 1000000)::int8 AS micros,
                         run_id::text || '/' || step_id || '/' || lpad(attempt::text, 6, '0') || '/' || lpad(call_index::text, 6, '0') AS key
                  FROM model_calls
                  WHERE tenant_id = \(tenant) AND (\(run)::uuid IS NULL OR run_id = \(run))
                    AND (\(from)::timestamptz IS NULL OR started_at >= \(from)) AND (\(to)::timestamptz IS NULL OR started_at < \(to))) c
            WHERE (micros, key) > (\(afterMicros), \(afterKey))
            ORDER BY micros, key
            LIMIT \(limit + 1)
            """, logger: database.logger
        ).decode((UUID, String, Int, Int, String, String, Int, Int, Int, Int, Int, Int64?, String?, Bool, String?, Date, Int64, String).self) {
            rows.append(
                LedgerRow(
                    run: row.0, step: row.1, attempt: row.2, call: row.3, expert: row.4, model: row.5, promptTokens: row.6, cacheHitTokens: row.7,
                    cacheMissTokens: row.8, completionTokens: row.9, reasoningTokens: row.10, cost: row.11.map(Money.init(picoUSD:)), priceID: row.12,
                    usageKnown: row.13, workflow: row.14, startedAt: row.15))
            positions.append(LedgerCursor(micros: row.16, key: row.17))
        }
        var next: LedgerCursor?
        if rows.count > limit {
            rows.removeLast()
            next = positions[limit - 1]
        }
        return (rows, next)
    }

    /// Totals grouped by the given dimensions, for `GET /v1/costs`. `tenant` nil means
    /// every tenant (the admin key); sums are of ledger rows, nothing else.
    public func costs(tenant: UUID?, groupBy: [CostDimension], from: Date?, to: Date?) async throws -> [CostGroup] {
        let keys = groupBy.map(\.sqlExpression)
        let select = keys.isEmpty ? "" : keys.enumerated().map { "\($1) AS k\($0)" }.joined(separator: ", ") + ", "
        let group = keys.isEmpty ? "" : "GROUP BY " + (1...keys.count).map(String.init).joined(separator: ", ")
        let order = keys.isEmpty ? "" : "ORDER BY " + (1...keys.count).map(String.init).joined(separator: ", ")
        let query: PostgresQuery = """
            SELECT \(unescaped: select) count(*)::int8, coalesce(sum(prompt_tokens), 0)::int8, coalesce(sum(cache_hit_tokens), 0)::int8,
                   coalesce(sum(cache_miss_tokens), 0)::int8, coalesce(sum(completion_tokens), 0)::int8, coalesce(sum(reasoning_tokens), 0)::int8,
                   coalesce(sum(cost_pusd), 0)::text, count(*) FILTER (WHERE cost_pusd IS NULL)::int8, count(*) FILTER (WHERE NOT usage_known)::int8,
                   count(*) FILTER (WHERE expert = 'pro')::int8, coalesce(sum(cost_pusd) FILTER (WHERE expert = 'pro'), 0)::text
            FROM model_calls c JOIN tenants t ON t.id = c.tenant_id
            WHERE (\(tenant)::uuid IS NULL OR c.tenant_id = \(tenant))
              AND (\(from)::timestamptz IS NULL OR c.started_at >= \(from)) AND (\(to)::timestamptz IS NULL OR c.started_at < \(to))
            \(unescaped: group) \(unescaped: order)
            """
        var groups: [CostGroup] = []
        let rows = try await database.query(query, logger: database.logger)
        for try await row in rows {
            let cells = row.makeRandomAccess()
            var key: [String: String] = [:]
            for (index, dimension) in groupBy.enumerated() {
                key[dimension.rawValue] = try cells[index].decode(String?.self) ?? ""
            }
            let base = groupBy.count
            func int(_ offset: Int) throws -> Int { try cells[base + offset].decode(Int.self) }
            func money(_ offset: Int) throws -> Money {
                let text = try cells[base + offset].decode(String.self)
                guard let pico = Int64(text) else { throw DatabaseError(.query, "a cost total of \(text) pico-USD is out of range") }
                return Money(picoUSD: pico)
            }
            groups.append(
                CostGroup(
                    key: key, calls: try int(0), promptTokens: try int(1), cacheHitTokens: try int(2), cacheMissTokens: try int(3),
                    completionTokens: try int(4), reasoningTokens: try int(5), cost: try money(6), unpricedCalls: try int(7),
                    estimatedCalls: try int(8), proCalls: try int(9), proCost: try money(10)))
        }
        return groups
    }

    /// Average tokens of a step's past calls (for `yard plan`), by expert.
    public func averageUsage(tenant: UUID, workflow: String, step: String) async throws -> [String: (prompt: Int, completion: Int, calls: Int)] {
        var result: [String: (Int, Int, Int)] = [:]
        for try await (expert, prompt, completion, calls) in try await database.query(
            """
            SELECT expert, avg(prompt_tokens)::int8, avg(completion_tokens)::int8, count(*)::int8 FROM model_calls
            WHERE tenant_id = \(tenant) AND workflow = \(workflow) AND step_id = \(step) AND usage_known
            GROUP BY expert
            """, logger: database.logger
        ).decode((String, Int, Int, Int).self) {
            result[expert] = (prompt, completion, calls)
        }
        return result.mapValues { (prompt: $0.0, completion: $0.1, calls: $0.2) }
    }
}

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
