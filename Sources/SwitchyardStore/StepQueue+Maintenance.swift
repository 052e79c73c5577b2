import Foundation
import Logging
import PostgresNIO
import SwitchyardCore

/// The step queue's timers and bookkeeping: expired leases and waits, overdue runs,
/// the maintenance survey, and events appended outside a completion.
extension StepQueue {
    /// Returns steps whose lease expired (their process died or stalled) to the ready
    /// queue; the next claim runs them as a new attempt.
    @discardableResult
    public func reclaimExpiredLeases(limit: Int = 500) async throws -> Int {
        var count = 0
        for try await (tenant, run, step, attempt) in try await database.query(
            """
            WITH expired AS (
                SELECT tenant_id, run_id, step_id FROM steps
                WHERE status = 'running' AND lease_expires_at < now()
                LIMIT \(limit) FOR UPDATE SKIP LOCKED
            )
            UPDATE steps s SET status = 'ready', ready_at = now(), lease_owner = NULL, lease_expires_at = NULL
            FROM expired e WHERE s.tenant_id = e.tenant_id AND s.run_id = e.run_id AND s.step_id = e.step_id
            RETURNING s.tenant_id, s.run_id, s.step_id, s.attempt
            """, logger: database.logger
        ).decode((UUID, UUID, String, Int).self) {
            count += 1
            _ = try? await database.transaction { connection in
                try await RunRepository.appendEvents(
                    [NewEvent(.stepLeaseExpired, step: step, data: ["attempt": .int(attempt)])], run: run, tenant: tenant,
                    connection: connection, logger: database.logger)
            }
        }
        return count
    }

    /// Makes waiting steps whose wait deadline passed ready again, so that the executor
    /// sees the missing signal and fails them with `wait_timeout`.
    @discardableResult
    public func wakeExpiredWaits(limit: Int = 500) async throws -> Int {
        try await database.query(
            """
            WITH expired AS (
                SELECT tenant_id, run_id, step_id FROM steps
                WHERE status = 'waiting' AND wait_deadline < now()
                LIMIT \(limit) FOR UPDATE SKIP LOCKED
            )
            UPDATE steps s SET status = 'ready', ready_at = now()
            FROM expired e WHERE s.tenant_id = e.tenant_id AND s.run_id = e.run_id AND s.step_id = e.step_id
            RETURNING 1
            """, logger: database.logger
        ).collect().count
    }

    /// Live runs past their deadline.
    public func overdueRuns(limit: Int = 100) async throws -> [(tenant: UUID, run: UUID)] {
        var result: [(UUID, UUID)] = []
        for try await row in try await database.query(
            """
            SELECT tenant_id, id FROM runs
            WHERE deadline < now() AND status IN ('queued', 'running', 'waiting')
            LIMIT \(limit)
            """, logger: database.logger
        ).decode((UUID, UUID).self) {
            result.append(row)
        }
        return result.map { (tenant: $0.0, run: $0.1) }
    }

    /// Whether the wait deadline of a step has passed.
    public func waitDeadlinePassed(_ step: ClaimedStep) async throws -> Bool {
        if let passed = try await database.query(
            """
            SELECT coalesce(wait_deadline < now(), false) FROM steps
            WHERE tenant_id = \(step.tenantID) AND run_id = \(step.runID) AND step_id = \(step.stepID)
            """, logger: database.logger
        ).first(decoding: Bool.self) {
            return passed
        }
        return false
    }

    /// How long until the earliest ready step may start (a retry's backoff), or nil when
    /// no step is ready. (NULL must stay NULL here: `greatest(0, NULL)` is 0, which once
    /// made an idle dispatcher poll every millisecond.)
    public func nextReadyDelay() async throws -> Duration? {
        if let milliseconds = try await database.query(
            """
            SELECT (extract(epoch FROM (min(ready_at) - now())) * 1000)::int8 FROM steps WHERE status = 'ready'
            """, logger: database.logger
        ).first(decoding: Int64?.self) {
            return milliseconds.map { .milliseconds(max(0, $0)) }
        }
        return nil
    }

    /// The tables of the engine's hot statements.
    static let hotTables = ["steps", "runs", "run_events"]

    /// Analyses the hot tables that were never analysed and have since grown past
    /// `threshold` rows changed (and past their size as last estimated), and returns
    /// their names. The engine's statements are prepared, and PostgreSQL keeps a prepared
    /// statement's generic plan for the life of the connection unless the statistics
    /// of its tables change: plans made while a fresh database's tables were empty
    /// (a sequential scan of `steps`, `runs` looked up through `runs_by_created`) would
    /// otherwise stay in use until autovacuum's next pass, a minute or more into the
    /// first load. Each table is analysed here at most once in a database's life: from
    /// then on autovacuum keeps its statistics (an ANALYZE holds back pruning on a table
    /// being churned, so this does not repeat it).
    @discardableResult
    public func refreshStaleStatistics(threshold: Int = 1000) async throws -> [String] {
        var stale: [String] = []
        for try await name in try await database.query(
            """
            SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
            WHERE s.relname = ANY(\(Self.hotTables)) AND s.schemaname = current_schema()
              AND coalesce(s.last_analyze, s.last_autoanalyze) IS NULL
              AND s.n_mod_since_analyze >= \(threshold) AND s.n_mod_since_analyze > greatest(c.reltuples, 0)
            """, logger: database.logger
        ).decode(String.self) {
            stale.append(name)
        }
        for name in stale where Self.hotTables.contains(name) {
            try await database.query(PostgresQuery(unsafeSQL: "ANALYZE \(name)"), logger: database.logger)
        }
        return stale
    }

    /// Which of the maintenance sweeps have anything to do, in one query, so that an
    /// idle engine does not run six.
    public func maintenanceDue() async throws -> MaintenanceDue {
        for try await row in try await database.query(
            """
            SELECT EXISTS (SELECT 1 FROM steps WHERE status = 'running' AND lease_expires_at < now()),
                   EXISTS (SELECT 1 FROM steps WHERE status = 'waiting' AND wait_deadline < now()),
                   EXISTS (SELECT 1 FROM runs WHERE remaining_steps = 0 AND status IN ('queued', 'running', 'waiting')),
                   EXISTS (SELECT 1 FROM runs c JOIN runs p ON p.tenant_id = c.tenant_id AND p.id = c.parent_run_id
                           WHERE c.parent_run_id IS NOT NULL AND c.status IN ('queued', 'running', 'waiting')
                             AND p.status IN ('succeeded', 'failed', 'cancelled')),
                   EXISTS (SELECT 1 FROM reservations),
                   EXISTS (SELECT 1 FROM runs WHERE deadline < now() AND status IN ('queued', 'running', 'waiting'))
            """, logger: database.logger
        ).decode((Bool, Bool, Bool, Bool, Bool, Bool).self) {
            return MaintenanceDue(
                expiredLeases: row.0, expiredWaits: row.1, runsAwaitingEnd: row.2, orphanedChildren: row.3, abandonedReservations: row.4,
                overdueRuns: row.5)
        }
        return MaintenanceDue()
    }

    /// Stores the gate's decision on the step and appends its `model.routed` event, in
    /// one transaction. Only this attempt's owner writes it: a stale attempt whose lease
    /// was taken over changes nothing.
    public func recordRoute(_ claim: ClaimedStep, route: JSONValue, event: NewEvent) async throws {
        try await database.transaction { connection in
            let rows = try await connection.query(
                """
                UPDATE steps SET route = \(route)
                WHERE tenant_id = \(claim.tenantID) AND run_id = \(claim.runID) AND step_id = \(claim.stepID)
                  AND attempt = \(claim.attempt) AND lease_owner = \(owner)
                RETURNING step_id
                """, logger: database.logger)
            var updated = false
            for try await _ in rows.decode(String.self) { updated = true }
            guard updated else { return }
            try await RunRepository.appendEvents(
                [event], run: claim.runID, tenant: claim.tenantID, connection: connection, logger: database.logger, whileLive: true)
        }
    }

    /// Appends events outside a completion (for example `model.called`), while the run
    /// is live: once it has ended, its final event stays the last.
    public func appendEvents(_ events: [NewEvent], run: UUID, tenant: UUID) async throws {
        _ = try await database.transaction { connection in
            try await RunRepository.appendEvents(events, run: run, tenant: tenant, connection: connection, logger: database.logger, whileLive: true)
        }
    }
}
