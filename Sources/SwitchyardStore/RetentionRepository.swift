import Foundation
import Logging
import PostgresNIO
import SwitchyardCore

/// What a tenant set for retention; nil fields use the server's default.
public struct TenantRetention: Sendable, Hashable {
    public var runs: RetentionPeriod?
    public var events: RetentionPeriod?

    public init(runs: RetentionPeriod? = nil, events: RetentionPeriod? = nil) {
        self.runs = runs
        self.events = events
    }
}

/// Rows deleted (or, in a dry run, that would be) by pruning.
public struct PruneCounts: Sendable, Hashable {
    /// Finished runs deleted with their steps, events and signals.
    public var runs = 0
    public var steps = 0
    /// Events deleted, with their runs or by trimming a log to its final event.
    public var events = 0
    public var signals = 0
    /// Runs kept whose event logs were cut down to their final event.
    public var trimmedRuns = 0
    /// Ledger rows deleted by the ledger's own retention (off by default).
    public var ledgerRows = 0

    public init() {}

    public static func + (a: PruneCounts, b: PruneCounts) -> PruneCounts {
        var sum = a
        sum.runs += b.runs
        sum.steps += b.steps
        sum.events += b.events
        sum.signals += b.signals
        sum.trimmedRuns += b.trimmedRuns
        sum.ledgerRows += b.ledgerRows
        return sum
    }
}

/// The size of one table and what it holds, as PostgreSQL reports it.
public struct TableSize: Sendable, Hashable {
    public var table: String
    /// `pg_total_relation_size`: heap, indexes and TOAST.
    public var totalBytes: Int64
    public var indexBytes: Int64
    public var liveRows: Int64
    public var deadRows: Int64
}

/// Deleting what has outlived its retention, in batches: finished runs with their
/// steps, events and signals; the event logs of runs kept longer than their events;
/// and, only when configured, old ledger rows. Every statement names its tenant, takes
/// at most `limit` runs, and commits at once, so no hot table is locked for long; runs
/// are taken with `FOR UPDATE SKIP LOCKED`, so servers pruning at the same time take
/// disjoint batches and never wait on each other or on the engine.
///
/// A run is pruned only when it is final, finished before the cutoff, its parent (if
/// any) is not live, and it has no live children: a live parent still waits for its
/// child's signal, and a live child is cancelled by way of its parent's row.
public struct RetentionRepository: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// The advisory lock class of pruning passes ("prun"); the second key is the tenant's hash.
    static let lockClass: Int32 = 0x7072_756E

    static let finalStatuses = RunStatus.allCases.filter(\.isFinal).map { "'\($0.rawValue)'" }.joined(separator: ", ")
    static let liveStatuses = RunStatus.allCases.filter { !$0.isFinal }.map { "'\($0.rawValue)'" }.joined(separator: ", ")
    static let finalEvents = RunEventType.final.map { "'\($0.rawValue)'" }.sorted().joined(separator: ", ")

    /// The conditions on a run `r` that make it prunable, besides its tenant and cutoff.
    static let prunable = """
        r.status IN (\(finalStatuses))
        AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.tenant_id = r.tenant_id AND p.id = r.parent_run_id AND p.status IN (\(liveStatuses)))
        AND NOT EXISTS (SELECT 1 FROM runs c WHERE c.tenant_id = r.tenant_id AND c.parent_run_id = r.id AND c.status IN (\(liveStatuses)))
        """

    // MARK: - Settings

    /// The tenant's retention settings; nil when there is no such tenant.
    public func retention(tenant id: UUID) async throws -> TenantRetention? {
        if case let (runs, events)? = try await database.query(
            "SELECT run_retention_ms, event_retention_ms FROM tenants WHERE id = \(id)", logger: database.logger
        ).first(decoding: (Int64?, Int64?).self) {
            return TenantRetention(
                runs: runs.map(RetentionPeriod.init(storedMilliseconds:)), events: events.map(RetentionPeriod.init(storedMilliseconds:)))
        }
        return nil
    }

    /// Replaces the tenant's retention settings; false when there is no such tenant.
    public func setRetention(tenant id: UUID, _ retention: TenantRetention) async throws -> Bool {
        try await database.query(
            """
            UPDATE tenants SET run_retention_ms = \(retention.runs?.storedMilliseconds), event_retention_ms = \(retention.events?.storedMilliseconds)
            WHERE id = \(id) RETURNING id
            """, logger: database.logger
        ).first(decoding: UUID.self) != nil
    }

    /// Every tenant with its settings, for a pass over all of them. (`tenants` is small:
    /// a reference table, see docs/SCALE-OUT.md.)
    public func tenantsForPruning() async throws -> [(tenant: UUID, retention: TenantRetention)] {
        var result: [(UUID, TenantRetention)] = []
        for try await (id, runs, events) in try await database.query(
            "SELECT id, run_retention_ms, event_retention_ms FROM tenants ORDER BY id", logger: database.logger
        ).decode((UUID, Int64?, Int64?).self) {
            result.append(
                (
                    id,
                    TenantRetention(
                        runs: runs.map(RetentionPeriod.init(storedMilliseconds:)), events: events.map(RetentionPeriod.init(storedMilliseconds:)))
                ))
        }
        return result.map { (tenant: $0.0, retention: $0.1) }
    }

    // MARK: - Batches

    /// Takes this pass's lock on the tenant inside a batch's transaction: waiting for
    /// another server's batch to commit (`wait`), or giving up at once when it holds it.
    private static func lockTenant(_ tenant: UUID, wait: Bool, connection: PostgresConnection, logger: Logger) async throws -> Bool {
        if wait {
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockClass), hashtext(\(tenant.uuidString)))", logger: logger)
            return true
        }
        return try await connection.query(
            "SELECT pg_try_advisory_xact_lock(\(lockClass), hashtext(\(tenant.uuidString)))", logger: logger
        ).first(decoding: Bool.self) ?? false
    }

    /// Deletes up to `limit` of the tenant's prunable runs that finished more than
    /// `olderThan` milliseconds ago, oldest first, with their steps, events and
    /// signals, in one short transaction. Returns nil when `wait` is false and another
    /// server is pruning this tenant at this moment.
    public func pruneRuns(tenant: UUID, olderThan milliseconds: Int64, limit: Int, wait: Bool = true) async throws -> PruneCounts? {
        let logger = database.logger
        return try await database.retryingDeadlocks {
            try await database.transaction { connection -> PruneCounts? in
                guard try await Self.lockTenant(tenant, wait: wait, connection: connection, logger: logger) else { return nil }
                var counts = PruneCounts()
                for try await row in try await connection.query(
                    """
                    WITH victims AS (
                        SELECT r.tenant_id, r.id FROM runs r
                        WHERE r.tenant_id = \(tenant) AND r.finished_at < now() - \(milliseconds) * interval '1 millisecond'
                          AND \(unescaped: Self.prunable)
                        ORDER BY r.finished_at
                        LIMIT \(limit)
                        FOR UPDATE OF r SKIP LOCKED
                    ), steps_gone AS (
                        DELETE FROM steps s USING victims v WHERE s.tenant_id = v.tenant_id AND s.run_id = v.id RETURNING 1
                    ), events_gone AS (
                        DELETE FROM run_events e USING victims v WHERE e.tenant_id = v.tenant_id AND e.run_id = v.id RETURNING 1
                    ), signals_gone AS (
                        DELETE FROM signals g USING victims v WHERE g.tenant_id = v.tenant_id AND g.run_id = v.id RETURNING 1
                    ), runs_gone AS (
                        DELETE FROM runs r USING victims v WHERE r.tenant_id = v.tenant_id AND r.id = v.id RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM runs_gone)::int8, (SELECT count(*) FROM steps_gone)::int8,
                           (SELECT count(*) FROM events_gone)::int8, (SELECT count(*) FROM signals_gone)::int8
                    """, logger: logger
                ).decode((Int, Int, Int, Int).self) {
                    (counts.runs, counts.steps, counts.events, counts.signals) = row
                }
                return counts
            }
        }
    }

    /// Cuts the event logs of up to `limit` of the tenant's runs that finished more than
    /// `olderThan` milliseconds ago down to their final event (which keeps a stream
    /// of the run ending at once), marking them so that no later pass reads them again.
    /// Returns nil as ``pruneRuns(tenant:olderThan:limit:wait:)`` does.
    public func trimEvents(tenant: UUID, olderThan milliseconds: Int64, limit: Int, wait: Bool = true) async throws -> PruneCounts? {
        let logger = database.logger
        return try await database.retryingDeadlocks {
            try await database.transaction { connection -> PruneCounts? in
                guard try await Self.lockTenant(tenant, wait: wait, connection: connection, logger: logger) else { return nil }
                var counts = PruneCounts()
                for try await row in try await connection.query(
                    """
                    WITH victims AS (
                        SELECT r.tenant_id, r.id FROM runs r
                        WHERE r.tenant_id = \(tenant) AND r.finished_at < now() - \(milliseconds) * interval '1 millisecond'
                          AND r.events_pruned_at IS NULL AND r.status IN (\(unescaped: Self.finalStatuses))
                        ORDER BY r.finished_at
                        LIMIT \(limit)
                        FOR UPDATE OF r SKIP LOCKED
                    ), events_gone AS (
                        DELETE FROM run_events e USING victims v
                        WHERE e.tenant_id = v.tenant_id AND e.run_id = v.id AND e.type NOT IN (\(unescaped: Self.finalEvents))
                        RETURNING 1
                    ), marked AS (
                        UPDATE runs r SET events_pruned_at = now() FROM victims v WHERE r.tenant_id = v.tenant_id AND r.id = v.id RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM marked)::int8, (SELECT count(*) FROM events_gone)::int8
                    """, logger: logger
                ).decode((Int, Int).self) {
                    (counts.trimmedRuns, counts.events) = row
                }
                return counts
            }
        }
    }

    /// Deletes up to `limit` of the tenant's ledger rows of calls that started more than
    /// `olderThan` milliseconds ago. Only the ledger's own retention calls this (off by
    /// default); run pruning never touches the ledger.
    public func pruneLedger(tenant: UUID, olderThan milliseconds: Int64, limit: Int) async throws -> Int {
        try await database.query(
            """
            WITH victims AS (
                SELECT tenant_id, run_id, step_id, attempt, call_index FROM model_calls
                WHERE tenant_id = \(tenant) AND started_at < now() - \(milliseconds) * interval '1 millisecond'
                LIMIT \(limit)
                FOR UPDATE SKIP LOCKED
            )
            DELETE FROM model_calls m USING victims v
            WHERE m.tenant_id = v.tenant_id AND m.run_id = v.run_id AND m.step_id = v.step_id AND m.attempt = v.attempt
              AND m.call_index = v.call_index
            RETURNING 1
            """, logger: database.logger
        ).count
    }

    /// What ``pruneRuns(tenant:olderThan:limit:wait:)`` and
    /// ``trimEvents(tenant:olderThan:limit:wait:)`` would delete now, without deleting
    /// anything: `runsOlderThan` and `eventsOlderThan` nil skip that part.
    public func countPrunable(tenant: UUID, runsOlderThan: Int64?, eventsOlderThan: Int64?, ledgerOlderThan: Int64?) async throws -> PruneCounts {
        var counts = PruneCounts()
        for try await row in try await database.query(
            """
            WITH victims AS (
                SELECT r.tenant_id, r.id FROM runs r
                WHERE r.tenant_id = \(tenant) AND \(runsOlderThan)::int8 IS NOT NULL
                  AND r.finished_at < now() - \(runsOlderThan) * interval '1 millisecond' AND \(unescaped: Self.prunable)
            ), trimmed AS (
                SELECT r.tenant_id, r.id FROM runs r
                WHERE r.tenant_id = \(tenant) AND \(eventsOlderThan)::int8 IS NOT NULL
                  AND r.finished_at < now() - \(eventsOlderThan) * interval '1 millisecond'
                  AND r.events_pruned_at IS NULL AND r.status IN (\(unescaped: Self.finalStatuses))
                  AND NOT EXISTS (SELECT 1 FROM victims v WHERE v.id = r.id)
            )
            SELECT (SELECT count(*) FROM victims)::int8,
                   (SELECT count(*) FROM steps s JOIN victims v ON s.tenant_id = v.tenant_id AND s.run_id = v.id)::int8,
                   (SELECT count(*) FROM run_events e JOIN victims v ON e.tenant_id = v.tenant_id AND e.run_id = v.id)::int8
                   + (SELECT count(*) FROM run_events e JOIN trimmed t ON e.tenant_id = t.tenant_id AND e.run_id = t.id
                      WHERE e.type NOT IN (\(unescaped: Self.finalEvents)))::int8,
                   (SELECT count(*) FROM signals g JOIN victims v ON g.tenant_id = v.tenant_id AND g.run_id = v.id)::int8,
                   (SELECT count(*) FROM trimmed)::int8,
                   (SELECT count(*) FROM model_calls WHERE tenant_id = \(tenant) AND \(ledgerOlderThan)::int8 IS NOT NULL
                      AND started_at < now() - \(ledgerOlderThan) * interval '1 millisecond')::int8
            """, logger: database.logger
        ).decode((Int, Int, Int, Int, Int, Int).self) {
            (counts.runs, counts.steps, counts.events, counts.signals, counts.trimmedRuns, counts.ledgerRows) = row
        }
        return counts
    }

    // MARK: - Measuring

    /// The tables retention shrinks, in the order reports show them.
    public static let prunedTables = ["runs", "steps", "run_events", "signals", "model_calls"]

    /// Sizes and row counts of `tables` (PostgreSQL's statistics: live and dead row
    /// counts lag commits by up to a second).
    public func tableSizes(_ tables: [String] = prunedTables) async throws -> [TableSize] {
        var sizes: [TableSize] = []
        for try await (name, total, indexes, live, dead) in try await database.query(
            """
            SELECT c.relname::text, pg_total_relation_size(c.oid), pg_indexes_size(c.oid),
                   coalesce(s.n_live_tup, 0), coalesce(s.n_dead_tup, 0)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
            WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(\(tables)::text[])
            """, logger: database.logger
        ).decode((String, Int64, Int64, Int64, Int64).self) {
            sizes.append(TableSize(table: name, totalBytes: total, indexBytes: indexes, liveRows: live, deadRows: dead))
        }
        return sizes.sorted { (tables.firstIndex(of: $0.table) ?? 0) < (tables.firstIndex(of: $1.table) ?? 0) }
    }

    /// `VACUUM (ANALYZE)` of `tables`, as autovacuum would do after a pass: for
    /// benchmarks and soaks that measure what pruning leaves, not for the server (whose
    /// tables autovacuum looks after, see `Migrations/0008_retention.sql`).
    public func vacuum(_ tables: [String] = prunedTables) async throws {
        for table in tables where tables.allSatisfy({ Self.prunedTables.contains($0) }) {
            try await database.query("VACUUM (ANALYZE) \(unescaped: table)", logger: database.logger, timeout: nil)
        }
    }
}
