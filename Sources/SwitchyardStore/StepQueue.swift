import Foundation
import Logging
import PostgresNIO
import SwitchyardCore

/// The engine's side of the `steps` table: claiming ready steps in batches, leases and
/// their heartbeat, fenced completion, and the timers (retries, waits, deadlines).
///
/// Lock order, to keep transactions free of deadlocks: step rows first, then the run row.
public struct StepQueue: Sendable {
    public let database: Database
    /// This process's lease owner id; a restarted process gets a new one.
    public let owner: UUID

    public init(database: Database, owner: UUID = UUID()) {
        self.database = database
        self.owner = owner
    }

    /// Claims up to `limit` ready steps in one statement: marks them running under a
    /// lease, bumps their attempt, records `step.started` and returns them with their
    /// run's input and finished steps. Steps are taken in weighted round robin across
    /// tenants (oldest first within each), so a tenant's backlog never holds up
    /// another tenant's work.
    /// `tenantCap` is the default cap on a tenant's running steps (across all
    /// servers) for tenants without their own `max_concurrent_steps`; nil: no cap.
    /// Two servers claiming at the same instant may together pass a cap by at most
    /// one claim batch: it is a fairness bound, not a billing one.
    public func claim(limit: Int, lease: Duration, tenantCap: Int? = nil) async throws -> [ClaimedStep] {
        guard limit > 0 else { return [] }
        let statement = ClaimStepsStatement(
            limit: limit, defaultCap: tenantCap ?? Int(Int32.max), owner: owner, leaseMilliseconds: lease.inMilliseconds)
        var claimed: [ClaimedStep] = []
        for row in try await database.execute(statement) {
            let row = try row.decode((UUID, UUID, String, Int, Int, String, Int, JSONValue, JSONValue).self)
            var finished: [String: FinishedStep] = [:]
            for (id, value) in row.8.objectValue ?? [:] {
                finished[id] = FinishedStep(status: StepStatus(rawValue: value["status"]?.stringValue ?? "") ?? .failed, output: value["output"])
            }
            claimed.append(
                ClaimedStep(
                    tenantID: row.0, runID: row.1, stepID: row.2, attempt: row.3, maxAttempts: row.4, workflow: row.5,
                    version: row.6, input: row.7, finished: finished))
        }
        return claimed
    }

    /// Extends the leases of the steps this process is running now (not of every row
    /// it once claimed: a step it gave up on must be let go to expire). Returns the
    /// steps that are still this process's: a step missing from the answer is no longer
    /// its own (its run was cancelled, or its lease expired and was taken over).
    ///
    /// A heartbeat never waits for a row lock (`SKIP LOCKED`), so it cannot deadlock
    /// with the statements that are finishing or cancelling those steps: a step locked
    /// by one right now keeps its lease as it is this time (it is being finished, or the
    /// next heartbeat sees what became of it) and is still answered as this process's.
    @discardableResult
    public func heartbeat(_ steps: [ClaimedStep], lease: Duration) async throws -> [ClaimedStep] {
        guard !steps.isEmpty else { return [] }
        let milliseconds = lease.inMilliseconds
        var mine = Set<StepKey>()
        for try await (run, step) in try await database.query(
            """
            WITH keys AS (
                SELECT * FROM unnest(\(steps.map(\.tenantID)), \(steps.map(\.runID)), \(steps.map(\.stepID)), \(steps.map(\.attempt)))
                    AS k(tenant_id, run_id, step_id, attempt)
            ), mine AS (
                SELECT s.run_id, s.step_id FROM steps s JOIN keys k
                    ON s.tenant_id = k.tenant_id AND s.run_id = k.run_id AND s.step_id = k.step_id AND s.attempt = k.attempt
                WHERE s.lease_owner = \(owner) AND s.status = 'running'
            ), free AS (
                SELECT s.tenant_id, s.run_id, s.step_id FROM steps s JOIN keys k
                    ON s.tenant_id = k.tenant_id AND s.run_id = k.run_id AND s.step_id = k.step_id AND s.attempt = k.attempt
                WHERE s.lease_owner = \(owner) AND s.status = 'running'
                FOR UPDATE OF s SKIP LOCKED
            ), renewed AS (
                UPDATE steps s SET lease_expires_at = now() + \(milliseconds) * interval '1 millisecond'
                FROM free f WHERE s.tenant_id = f.tenant_id AND s.run_id = f.run_id AND s.step_id = f.step_id
                RETURNING 1
            )
            SELECT run_id, step_id FROM mine WHERE (SELECT count(*) FROM renewed) >= 0
            """, logger: database.logger
        ).decode((UUID, String).self) {
            mine.insert(StepKey(run: run, step: step))
        }
        return steps.filter { mine.contains(StepKey(run: $0.runID, step: $0.stepID)) }
    }

    private struct StepKey: Hashable {
        var run: UUID
        var step: String
    }

    /// Lets go of claimed steps this process will not finish, so that they expire now
    /// and any process may run them again, instead of after the whole lease. The owner
    /// is cleared too: a late outcome of these attempts is fenced out, and a heartbeat
    /// already on its way renews nothing.
    public func release(_ steps: [ClaimedStep]) async throws {
        guard !steps.isEmpty else { return }
        try await database.query(
            """
            UPDATE steps s SET lease_expires_at = now(), lease_owner = NULL
            FROM unnest(\(steps.map(\.tenantID)), \(steps.map(\.runID)), \(steps.map(\.stepID)), \(steps.map(\.attempt)))
                 AS k(tenant_id, run_id, step_id, attempt)
            WHERE s.tenant_id = k.tenant_id AND s.run_id = k.run_id AND s.step_id = k.step_id AND s.attempt = k.attempt
              AND s.lease_owner = \(owner) AND s.status = 'running'
            """, logger: database.logger)
    }

    /// The data of a signal delivered to the run, if any.
    public func signal(named name: String, run: UUID, tenant: UUID) async throws -> JSONValue? {
        if let data = try await database.query(
            "SELECT data FROM signals WHERE tenant_id = \(tenant) AND run_id = \(run) AND name = \(name)", logger: database.logger
        ).first(decoding: JSONValue.self) {
            return data
        }
        return nil
    }

    /// Commits a step's transition, fenced on (step, attempt, lease owner), together
    /// with its events, the successors it makes ready, and the run's end when it was the
    /// last step. A completion whose lease is no longer ours changes nothing.
    ///
    /// `notifyOthers` sends a `work` notification when successors became ready, for
    /// when this process cannot take them itself right away.
    public func complete(
        _ step: ClaimedStep, _ transition: StepTransition, dependents: [String], notifyOthers: Bool,
        finalize: @escaping RunFinalizer
    ) async throws -> CompletionResult {
        try await database.retryingDeadlocks {
            switch transition {
            case .succeeded(let output, let expert):
                let event = NewEvent(.stepSucceeded, step: step.stepID, data: ["attempt": .int(step.attempt)])
                return try await completeInOneStatement(
                    step, as: .succeeded, output: output, expert: expert, event: event, dependents: dependents, notifyOthers: notifyOthers,
                    finalize: finalize)
            case .skipped(let reason):
                let event = NewEvent(.stepSkipped, step: step.stepID, data: ["reason": .string(reason)])
                return try await completeInOneStatement(
                    step, as: .skipped, output: nil, expert: nil, event: event, dependents: dependents, notifyOthers: notifyOthers, finalize: finalize
                )
            case .failed, .retry, .wait:
                return try await database.transaction { connection in
                    try await completeInTransaction(
                        step, transition, dependents: dependents, notifyOthers: notifyOthers, finalize: finalize, connection: connection)
                }
            }
        }
    }

    /// The hot path, a step that succeeded or was skipped: one statement (so one round
    /// trip and one implicit transaction) fences the step, makes its successors ready,
    /// counts it off the run and appends its event. Only the run's last step takes a
    /// second transaction, to compute the run's output and end it.
    private func completeInOneStatement(
        _ step: ClaimedStep, as status: StepStatus, output: JSONValue?, expert: String?, event: NewEvent, dependents: [String],
        notifyOthers: Bool, finalize: @escaping RunFinalizer
    ) async throws -> CompletionResult {
        let tenant = step.tenantID
        let run = step.runID
        var result: (fenced: Bool, ready: [String], remaining: Int, runStatus: String)?
        for try await row in try await database.query(
            """
            WITH fenced AS (
                UPDATE steps SET status = \(status.rawValue), output = \(output), error = NULL, expert = coalesce(\(expert), expert),
                       lease_owner = NULL, lease_expires_at = NULL, finished_at = now()
                WHERE tenant_id = \(tenant) AND run_id = \(run) AND step_id = \(step.stepID)
                  AND attempt = \(step.attempt) AND lease_owner = \(owner) AND status = 'running'
                RETURNING 1
            ), successors AS (
                UPDATE steps SET pending_needs = pending_needs - 1,
                       status = CASE WHEN pending_needs = 1 AND status = 'pending' THEN 'ready' ELSE status END,
                       ready_at = CASE WHEN pending_needs = 1 AND status = 'pending' THEN now() ELSE ready_at END
                WHERE tenant_id = \(tenant) AND run_id = \(run) AND step_id = ANY(\(dependents)) AND EXISTS (SELECT 1 FROM fenced)
                RETURNING step_id, status
            ), counted AS (
                UPDATE runs SET remaining_steps = remaining_steps - 1, event_seq = event_seq + 1
                WHERE tenant_id = \(tenant) AND id = \(run) AND EXISTS (SELECT 1 FROM fenced)
                RETURNING remaining_steps, status, event_seq
            ), logged AS (
                INSERT INTO run_events (tenant_id, run_id, seq, type, step_id, data)
                SELECT \(tenant), \(run), counted.event_seq, \(event.type.rawValue), \(step.stepID), \(event.data) FROM counted
            ), ready AS (
                SELECT coalesce(array_agg(step_id), '{}') AS ids FROM successors WHERE status = 'ready'
            ), notified AS (
                SELECT pg_notify(\(NotificationChannel.work.rawValue), '') FROM ready WHERE \(notifyOthers) AND cardinality(ready.ids) > 0
            )
            SELECT EXISTS (SELECT 1 FROM fenced), (SELECT ids FROM ready), coalesce((SELECT remaining_steps FROM counted), -1),
                   coalesce((SELECT status FROM counted), ''), (SELECT count(*) FROM notified)
            """, logger: database.logger
        ).decode((Bool, [String], Int, String, Int).self) {
            result = (row.0, row.1, row.2, row.3)
        }
        guard let result, result.fenced else { return .rejected }
        var finishedAs: RunStatus?
        if result.remaining == 0, RunStatus(rawValue: result.runStatus)?.isFinal == false {
            finishedAs = try await endRun(run, tenant: tenant, finalize: finalize)
        }
        return .committed(newlyReady: result.ready, runFinished: finishedAs)
    }

    /// Runs whose steps are all final but which have not ended: their last step's
    /// process stopped between committing the step and ending the run.
    public func runsAwaitingEnd(limit: Int = 100) async throws -> [(tenant: UUID, run: UUID, workflow: String, version: Int, input: JSONValue)] {
        var result: [(tenant: UUID, run: UUID, workflow: String, version: Int, input: JSONValue)] = []
        for try await row in try await database.query(
            """
            SELECT tenant_id, id, workflow, version, input FROM runs
            WHERE remaining_steps = 0 AND status IN ('queued', 'running', 'waiting')
            LIMIT \(limit)
            """, logger: database.logger
        ).decode((UUID, UUID, String, Int, JSONValue).self) {
            result.append((tenant: row.0, run: row.1, workflow: row.2, version: row.3, input: row.4))
        }
        return result
    }

    /// Ends a run whose steps are all final, unless it has ended already.
    public func endRun(_ run: UUID, tenant: UUID, finalize: @escaping RunFinalizer) async throws -> RunStatus? {
        try await database.retryingDeadlocks {
            try await database.transaction { connection in
                let (status, events) = try await finishRun(run, tenant: tenant, finalize: finalize, connection: connection)
                try await RunRepository.appendEvents(events, run: run, tenant: tenant, connection: connection, logger: database.logger)
                return status
            }
        }
    }

    /// Ends a run whose steps are all final: its output from the finalizer, or its
    /// failure, and the parent's step resumed if it is a child. Returns the run's end
    /// and the events to append.
    private func finishRun(
        _ run: UUID, tenant: UUID, finalize: @escaping RunFinalizer, connection: PostgresConnection
    ) async throws -> (RunStatus?, [NewEvent]) {
        let logger = database.logger
        guard let current = try await RunStatements.lockRun(run, tenant: tenant, connection: connection, logger: logger), !current.isFinal else {
            return (nil, [])
        }
        var outputs: [String: FinishedStep] = [:]
        for try await (id, value, output) in try await connection.query(
            "SELECT step_id, status, output FROM steps WHERE tenant_id = \(tenant) AND run_id = \(run)", logger: logger
        ).decode((String, String, JSONValue?).self) {
            outputs[id] = FinishedStep(status: StepStatus(rawValue: value) ?? .failed, output: output)
        }
        switch finalize(outputs) {
        case .success(let runOutput):
            try await connection.query(
                "UPDATE runs SET status = 'succeeded', output = \(runOutput), finished_at = now() WHERE tenant_id = \(tenant) AND id = \(run)",
                logger: logger)
            try await RunRepository.resumeParent(
                of: run, tenant: tenant, status: .succeeded, output: runOutput, error: nil, connection: connection, logger: logger)
            return (.succeeded, [NewEvent(.runSucceeded, data: ["output": runOutput])])
        case .failure(let e):
            try await connection.query(
                "UPDATE runs SET status = 'failed', error = \(e.json), finished_at = now() WHERE tenant_id = \(tenant) AND id = \(run)",
                logger: logger)
            try await RunRepository.resumeParent(
                of: run, tenant: tenant, status: .failed, output: nil, error: e, connection: connection, logger: logger)
            return (.failed, [NewEvent(.runFailed, data: ["error": e.json])])
        }
    }

    private func completeInTransaction(
        _ step: ClaimedStep, _ transition: StepTransition, dependents: [String], notifyOthers: Bool,
        finalize: @escaping RunFinalizer, connection: PostgresConnection
    ) async throws -> CompletionResult {
        let logger = database.logger
        let tenant = step.tenantID
        let run = step.runID
        let status: StepStatus
        var output: JSONValue?
        var error: ErrorRecord?
        var expert: String?
        var readyDelay: Int64?
        var waitSignal: String?
        var waitTimeout: Int64?
        var events: [NewEvent] = []
        let attempt = JSONValue.int(step.attempt)
        switch transition {
        case .succeeded(let value, let e):
            status = .succeeded
            output = value
            expert = e
            events.append(NewEvent(.stepSucceeded, step: step.stepID, data: ["attempt": attempt]))
        case .skipped(let reason):
            status = .skipped
            events.append(NewEvent(.stepSkipped, step: step.stepID, data: ["reason": .string(reason)]))
        case .failed(let e, _, let ex):
            status = .failed
            error = e
            expert = ex
            events.append(NewEvent(.stepFailed, step: step.stepID, data: ["attempt": attempt, "error": e.json]))
        case .retry(let e, let delay, let ex):
            status = .ready
            error = e
            expert = ex
            readyDelay = delay.milliseconds
            events.append(
                NewEvent(.stepRetrying, step: step.stepID, data: ["attempt": attempt, "error": e.json, "delay_ms": .int(Int(delay.milliseconds))]))
        case .wait(let signal, let timeout):
            status = .waiting
            waitSignal = signal
            waitTimeout = timeout?.milliseconds
            events.append(NewEvent(.stepWaiting, step: step.stepID, data: ["signal": .string(signal)]))
        }

        let fenced = try await connection.query(
            """
            UPDATE steps SET status = \(status.rawValue), output = \(output), error = \(error?.json),
                   expert = coalesce(\(expert), expert), lease_owner = NULL, lease_expires_at = NULL,
                   ready_at = CASE WHEN \(readyDelay)::int8 IS NULL THEN ready_at ELSE now() + \(readyDelay) * interval '1 millisecond' END,
                   wait_signal = \(waitSignal),
                   wait_deadline = CASE WHEN \(waitTimeout)::int8 IS NULL THEN NULL
                                        ELSE coalesce(wait_deadline, now() + \(waitTimeout) * interval '1 millisecond') END,
                   finished_at = CASE WHEN \(status.isFinal) THEN now() END
            WHERE tenant_id = \(tenant) AND run_id = \(run) AND step_id = \(step.stepID)
              AND attempt = \(step.attempt) AND lease_owner = \(owner) AND status = 'running'
            RETURNING 1
            """, logger: logger
        ).collect()
        guard !fenced.isEmpty else { return .rejected }

        var newlyReady: [String] = []
        var failsRun: ErrorRecord?
        var decrement = 0
        switch transition {
        case .succeeded, .skipped, .failed(_, continueRun: true, _):
            decrement = 1
            if !dependents.isEmpty {
                for try await (id, newStatus) in try await connection.query(
                    """
                    UPDATE steps SET pending_needs = pending_needs - 1,
                           status = CASE WHEN pending_needs = 1 AND status = 'pending' THEN 'ready' ELSE status END,
                           ready_at = CASE WHEN pending_needs = 1 AND status = 'pending' THEN now() ELSE ready_at END
                    WHERE tenant_id = \(tenant) AND run_id = \(run) AND step_id = ANY(\(dependents))
                    RETURNING step_id, status
                    """, logger: logger
                ).decode((String, String).self) where newStatus == StepStatus.ready.rawValue {
                    newlyReady.append(id)
                }
            }
        case .failed(let e, continueRun: false, _):
            failsRun = ErrorRecord(.stepFailed, "step \(step.stepID) failed: \(e.message)")
            let cancelled = try await RunStatements.cancelUnfinishedSteps(of: run, tenant: tenant, connection: connection, logger: logger)
            if !cancelled.isEmpty {
                events.append(NewEvent(.stepsCancelled, data: ["steps": .array(cancelled.map { .string($0) })]))
            }
        case .retry, .wait:
            break
        }

        // The run row: remaining steps, status, and the end of the run.
        var remaining = 1
        var runStatus: RunStatus = .running
        for try await (left, current) in try await connection.query(
            """
            UPDATE runs SET remaining_steps = remaining_steps - \(decrement)
            WHERE tenant_id = \(tenant) AND id = \(run)
            RETURNING remaining_steps, status
            """, logger: logger
        ).decode((Int, String).self) {
            remaining = left
            runStatus = RunStatus(rawValue: current) ?? .running
        }
        var finishedAs: RunStatus?
        if !runStatus.isFinal {
            if let failsRun {
                finishedAs = .failed
                try await connection.query(
                    "UPDATE runs SET status = 'failed', error = \(failsRun.json), finished_at = now() WHERE tenant_id = \(tenant) AND id = \(run)",
                    logger: logger)
                events.append(NewEvent(.runFailed, data: ["error": failsRun.json]))
                try await connection.query("SELECT pg_notify(\(NotificationChannel.cancel.rawValue), \(run.uuidString))", logger: logger)
                try await RunRepository.resumeParent(
                    of: run, tenant: tenant, status: .failed, output: nil, error: failsRun, connection: connection, logger: logger)
            } else if remaining == 0 {
                let (status, finalEvents) = try await finishRun(run, tenant: tenant, finalize: finalize, connection: connection)
                finishedAs = status
                events += finalEvents
            } else if case .wait(let signal, _) = transition {
                // The signal may have arrived while the step ran: the run row is locked
                // now, as `deliver` locks it, so a signal committed before is visible
                // here and one committed after will find the step waiting.
                for try await id in try await connection.query(
                    """
                    UPDATE steps SET status = 'ready', ready_at = now()
                    WHERE tenant_id = \(tenant) AND run_id = \(run) AND step_id = \(step.stepID) AND status = 'waiting'
                      AND EXISTS (SELECT 1 FROM signals WHERE tenant_id = \(tenant) AND run_id = \(run) AND name = \(signal))
                    RETURNING step_id
                    """, logger: logger
                ).decode(String.self) {
                    newlyReady.append(id)
                }
                // The run waits when nothing of it is ready or running any more.
                try await connection.query(
                    """
                    UPDATE runs SET status = 'waiting'
                    WHERE tenant_id = \(tenant) AND id = \(run) AND status = 'running'
                      AND NOT EXISTS (SELECT 1 FROM steps WHERE tenant_id = \(tenant) AND run_id = \(run) AND status IN ('ready', 'running'))
                    """, logger: logger)
            }
        }
        try await RunRepository.appendEvents(events, run: run, tenant: tenant, connection: connection, logger: logger)
        if notifyOthers && (!newlyReady.isEmpty || readyDelay != nil) {
            try await connection.query("SELECT pg_notify(\(NotificationChannel.work.rawValue), '')", logger: logger)
        }
        return .committed(newlyReady: newlyReady, runFinished: finishedAs)
    }
}

/// The claim (see ``StepQueue/claim(limit:lease:tenantCap:)``), prepared once per
/// connection: planning its recursive CTE anew for every claim cost PostgreSQL more
/// than running it.
struct ClaimStepsStatement: PostgresPreparedStatement {
    typealias Row = PostgresRow

    static let sql = """
            WITH RECURSIVE ready_tenants(tenant_id) AS (
                -- The tenants with ready work, by a skip scan of steps_ready_by_tenant.
                (SELECT tenant_id FROM steps WHERE status = 'ready' AND ready_at <= now() ORDER BY tenant_id LIMIT 1)
                UNION ALL
                SELECT (SELECT s.tenant_id FROM steps s
                        WHERE s.status = 'ready' AND s.ready_at <= now() AND s.tenant_id > r.tenant_id
                        ORDER BY s.tenant_id LIMIT 1)
                FROM ready_tenants r WHERE r.tenant_id IS NOT NULL
            ), candidates AS (
                -- Each tenant's oldest ready steps, locked, numbered in turn.
                SELECT c.tenant_id, c.run_id, c.step_id, c.ready_at, t.weight,
                       row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.ready_at) AS turn
                FROM ready_tenants r
                JOIN tenants t ON t.id = r.tenant_id
                CROSS JOIN LATERAL (
                    SELECT tenant_id, run_id, step_id, ready_at FROM steps
                    WHERE tenant_id = r.tenant_id AND status = 'ready' AND ready_at <= now()
                    ORDER BY ready_at
                    -- No more than the tenant's free slots under its cap on running steps.
                    LIMIT least($1::int, greatest(0, coalesce(t.max_concurrent_steps, $2::int)
                        - (SELECT count(*) FROM steps x WHERE x.tenant_id = r.tenant_id AND x.status = 'running')))
                    FOR UPDATE SKIP LOCKED
                ) c
            ), picked AS (
                -- Round robin weighted by tenant: a tenant of weight 2 gets two turns per round.
                SELECT tenant_id, run_id, step_id FROM candidates
                ORDER BY ceil(turn::float8 / weight), ready_at
                LIMIT $1::int
            ), claimed AS (
                UPDATE steps s SET status = 'running', attempt = s.attempt + 1, lease_owner = $3::uuid,
                       lease_expires_at = now() + $4::int8 * interval '1 millisecond',
                       started_at = coalesce(s.started_at, now())
                FROM picked p
                WHERE s.tenant_id = p.tenant_id AND s.run_id = p.run_id AND s.step_id = p.step_id
                RETURNING s.tenant_id, s.run_id, s.step_id, s.attempt, s.max_attempts
            ), per_run AS (
                SELECT tenant_id, run_id, count(*)::int8 AS n FROM claimed GROUP BY tenant_id, run_id
            ), bumped AS (
                UPDATE runs r SET event_seq = r.event_seq + pr.n,
                       status = CASE WHEN r.status IN ('queued', 'waiting') THEN 'running' ELSE r.status END,
                       started_at = coalesce(r.started_at, now())
                FROM per_run pr
                WHERE r.tenant_id = pr.tenant_id AND r.id = pr.run_id
                RETURNING r.tenant_id, r.id, r.event_seq - pr.n AS base_seq, r.workflow, r.version, r.input
            ), events AS (
                INSERT INTO run_events (tenant_id, run_id, seq, type, step_id, data)
                SELECT c.tenant_id, c.run_id,
                       b.base_seq + row_number() OVER (PARTITION BY c.tenant_id, c.run_id ORDER BY c.step_id),
                       $5::text, c.step_id, jsonb_build_object('attempt', c.attempt)
                FROM claimed c JOIN bumped b ON b.tenant_id = c.tenant_id AND b.id = c.run_id
            )
            SELECT c.tenant_id, c.run_id, c.step_id, c.attempt, c.max_attempts, b.workflow, b.version, b.input,
                   (SELECT coalesce(jsonb_object_agg(u.step_id, jsonb_build_object('status', u.status, 'output', u.output)), '{}'::jsonb)
                    FROM steps u
                    WHERE u.tenant_id = c.tenant_id AND u.run_id = c.run_id AND u.status IN ('succeeded', 'failed', 'skipped'))
            FROM claimed c JOIN bumped b ON b.tenant_id = c.tenant_id AND b.id = c.run_id
        """

    let limit: Int
    let defaultCap: Int
    let owner: UUID
    let leaseMilliseconds: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(Int32(clamping: limit))
        bindings.append(Int32(clamping: defaultCap))
        bindings.append(owner)
        bindings.append(leaseMilliseconds)
        bindings.append(RunEventType.stepStarted.rawValue)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
