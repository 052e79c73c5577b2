import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardMetering

/// Reading the ledger: usage pages and cost reports.
extension MeteringRepository {
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
