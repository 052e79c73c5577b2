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
}
