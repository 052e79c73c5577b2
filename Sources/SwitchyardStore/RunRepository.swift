import Foundation
import Logging
import PostgresNIO
import SwitchyardCore
import SwitchyardMetering

/// An event to append to a run's log.
public struct NewEvent: Sendable, Hashable {
    public var type: RunEventType
    public var stepID: String?
    public var data: JSONValue

    public init(_ type: RunEventType, step: String? = nil, data: JSONValue = [:]) {
        self.type = type
        self.stepID = step
        self.data = data
    }
}

/// How child runs and their parents' steps find each other.
public enum ChildRuns {
    /// The deepest chain of child runs allowed.
    public static let maxDepth = 16

    /// The signal a child run's end delivers to its parent's step. User signal names
    /// cannot start with `__`, so it never collides with one.
    public static func signal(step: String) -> String { "__child__\(step)" }

    /// The idempotency key of the child run a step starts: a step run again after a
    /// crash finds its child instead of starting a second one.
    public static func idempotencyKey(parent: UUID, step: String) -> String { "__child__:\(parent.lowercasedString):\(step)" }
}

/// The outcome of delivering a signal.
public enum SignalDelivery: Sendable, Hashable {
    case delivered(resumedSteps: [String])
    case duplicate
    case runFinished(RunStatus)
}

/// Runs, their steps and event logs, as the API sees them. Every query names its tenant.
public struct RunRepository: Sendable {
    public let database: Database
    /// New top-level runs without an idempotency key, group-committed.
    private let creations: GroupCommit<RunCreation, Date>

    public init(database: Database) {
        self.database = database
        self.creations = GroupCommit { creations in try await Self.write(creations, database: database) }
    }

    /// Creates a run of a stored workflow version with all its steps and its first
    /// event, in one statement (one round trip, one implicit transaction). With an
    /// idempotency key already used by this tenant, returns that run and `created: false`.
    /// A top-level run without a key cannot conflict with anything, so it is written
    /// with the other such runs being created at the same time (``GroupCommit``): under
    /// load, many runs per statement and per WAL flush.
    ///
    /// `notify` sends the `work` notification that wakes idle engines elsewhere. A
    /// caller whose own engine will take the run at once passes false: NOTIFY
    /// serialises committing transactions, and run creation is the busiest path.
    public func createRun(
        tenant: UUID, workflow: String, version: Int, spec: WorkflowSpec, input: JSONValue, idempotencyKey: String?,
        parent: (run: UUID, step: String)? = nil, notify: Bool = true
    ) async throws -> (run: RunRecord, created: Bool) {
        let runID = UUID()
        let ids = spec.steps.map(\.id)
        let positions = Array(spec.steps.indices)
        // Each distinct need is counted down once, however often it is listed.
        let needs = spec.steps.map { Set($0.needs).count }
        let attempts = spec.steps.map { max(1, $0.retry.maxAttempts) }
        let deadline: Int64? = spec.timeout?.milliseconds
        let created: JSONValue = ["workflow": .string(workflow), "version": .int(version), "input": input]
        var createdAt: Date?
        var depth = 0
        if parent == nil && idempotencyKey == nil {
            // Nothing to conflict with: written with whatever other runs are being created now.
            createdAt = try await creations.submit(
                RunCreation(
                    tenant: tenant, runID: runID, workflow: workflow, version: version, input: input, deadlineMilliseconds: deadline,
                    stepIDs: ids, positions: positions, needs: needs, attempts: attempts, created: created, notify: notify))
        }
        if createdAt == nil {
            let statement = CreateRunStatement(
                tenant: tenant, parentRun: parent?.run, runID: runID, workflow: workflow, version: version, input: input,
                idempotencyKey: idempotencyKey,
                stepCount: spec.steps.count, deadlineMilliseconds: deadline, parentStep: parent?.step, stepIDs: ids, positions: positions,
                needs: needs,
                attempts: attempts, created: created, notify: notify)
            for row in try await database.execute(statement) {
                let row = try row.decode((Date?, Int, Int).self)
                createdAt = row.0
                depth = row.1
            }
        }
        if let createdAt {
            let steps = spec.steps.map { step in
                StepRecord(
                    id: step.id, status: step.needs.isEmpty ? .ready : .pending, attempts: 0, expert: nil, output: nil, error: nil, startedAt: nil,
                    finishedAt: nil)
            }
            let run = RunRecord(
                id: runID, tenantID: tenant, workflow: workflow, version: version, status: .queued, input: input, output: nil, error: nil,
                createdAt: createdAt, startedAt: nil, finishedAt: nil, steps: steps)
            return (run, true)
        }
        guard depth >= 0 else {
            throw DatabaseError(.conflict, "the parent run has ended; no child run was started")
        }
        guard depth <= ChildRuns.maxDepth else {
            throw DatabaseError(
                .conflict, "child workflows nest deeper than \(ChildRuns.maxDepth) levels (a workflow that starts itself through others?)")
        }
        guard let idempotencyKey, let existing = try await run(idempotencyKey: idempotencyKey, tenant: tenant) else {
            throw DatabaseError(.query, "run \(runID) was not created")
        }
        guard existing.workflow == workflow else {
            throw DatabaseError(.conflict, "idempotency key \(idempotencyKey) was already used for a run of workflow \(existing.workflow)")
        }
        return (existing, false)
    }

    static let runColumns = "id, tenant_id, workflow, version, status, input, output, error, created_at, started_at, finished_at"
    typealias RunRow = (UUID, UUID, String, Int, String, JSONValue, JSONValue?, JSONValue?, Date, Date?, Date?)

    static func runRecord(_ row: RunRow) -> RunRecord {
        RunRecord(
            id: row.0, tenantID: row.1, workflow: row.2, version: row.3, status: RunStatus(rawValue: row.4) ?? .failed,
            input: row.5, output: row.6, error: ErrorRecord(json: row.7), createdAt: row.8, startedAt: row.9, finishedAt: row.10)
    }

    /// A run with its steps and usage, or nil when this tenant has no such run.
    public func run(_ id: UUID, tenant: UUID) async throws -> RunRecord? {
        var found: RunRecord?
        for try await row in try await database.query(
            "SELECT \(unescaped: Self.runColumns) FROM runs WHERE tenant_id = \(tenant) AND id = \(id)", logger: database.logger
        ).decode(RunRow.self) {
            found = Self.runRecord(row)
        }
        guard var run = found else { return nil }
        for try await (stepID, status, attempt, expert, output, error, startedAt, finishedAt, route, feedback) in try await database.query(
            """
            SELECT step_id, status, attempt, expert, output, error, started_at, finished_at, route, feedback FROM steps
            WHERE tenant_id = \(tenant) AND run_id = \(id) ORDER BY position
            """, logger: database.logger
        ).decode((String, String, Int, String?, JSONValue?, JSONValue?, Date?, Date?, JSONValue?, Bool?).self) {
            run.steps.append(
                StepRecord(
                    id: stepID, status: StepStatus(rawValue: status) ?? .failed, attempts: attempt, expert: expert, output: output,
                    error: ErrorRecord(json: error), startedAt: startedAt, finishedAt: finishedAt, route: route, feedback: feedback))
        }
        var stepCosts: [String: Money] = [:]
        for try await (step, calls, prompt, completion, cost, unpriced, estimated) in try await database.query(
            """
            SELECT step_id, count(*)::int8, coalesce(sum(prompt_tokens), 0)::int8, coalesce(sum(completion_tokens), 0)::int8,
                   coalesce(sum(cost_pusd), 0)::int8, count(*) FILTER (WHERE cost_pusd IS NULL)::int8, count(*) FILTER (WHERE NOT usage_known)::int8
            FROM model_calls WHERE tenant_id = \(tenant) AND run_id = \(id)
            GROUP BY step_id
            """, logger: database.logger
        ).decode((String, Int, Int, Int, Int64, Int, Int).self) {
            let stepCost = Money(picoUSD: cost)
            stepCosts[step] = stepCost
            run.usage.calls += calls
            run.usage.promptTokens += prompt
            run.usage.completionTokens += completion
            run.usage.cost = try run.usage.cost.adding(stepCost)
            run.usage.unpricedCalls += unpriced
            run.usage.estimatedCalls += estimated
        }
        for index in run.steps.indices { run.steps[index].cost = stepCosts[run.steps[index].id] }
        return run
    }

    func run(idempotencyKey: String, tenant: UUID) async throws -> RunRecord? {
        var id: UUID?
        for try await (runID) in try await database.query(
            "SELECT id FROM runs WHERE tenant_id = \(tenant) AND idempotency_key = \(idempotencyKey)", logger: database.logger
        ).decode(UUID.self) {
            id = runID
        }
        guard let id else { return nil }
        return try await run(id, tenant: tenant)
    }

    /// The status of a run, cheaply, for waiting loops.
    public func status(of id: UUID, tenant: UUID) async throws -> RunStatus? {
        if let status = try await database.query(
            "SELECT status FROM runs WHERE tenant_id = \(tenant) AND id = \(id)", logger: database.logger
        ).first(decoding: String.self) {
            return RunStatus(rawValue: status)
        }
        return nil
    }

    /// Runs newest first, filtered, one page at a time.
    public func list(
        tenant: UUID, status: RunStatus? = nil, workflow: String? = nil, limit: Int = 50, after cursor: RunCursor? = nil
    ) async throws -> (runs: [RunRecord], next: RunCursor?) {
        let limit = min(max(limit, 1), 500)
        var runs: [RunRecord] = []
        var lastMicroseconds: Int64 = 0
        var more = false
        for try await row in try await database.query(
            """
            SELECT \(unescaped: Self.runColumns), (extract(epoch FROM created_at) * 1000000)::int8 FROM runs
            WHERE tenant_id = \(tenant)
              AND (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
              AND (\(workflow)::text IS NULL OR workflow = \(workflow))
              AND (\(cursor?.createdMicroseconds)::int8 IS NULL
                   OR (created_at, id) < ('epoch'::timestamptz + \(cursor?.createdMicroseconds) * interval '1 microsecond', \(cursor?.id)))
            ORDER BY created_at DESC, id DESC
            LIMIT \(limit + 1)
            """, logger: database.logger
        ).decode((UUID, UUID, String, Int, String, JSONValue, JSONValue?, JSONValue?, Date, Date?, Date?, Int64).self) {
            guard runs.count < limit else {
                more = true
                break
            }
            runs.append(Self.runRecord((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10)))
            lastMicroseconds = row.11
        }
        var next: RunCursor?
        if more, let last = runs.last {
            next = RunCursor(createdMicroseconds: lastMicroseconds, id: last.id)
        }
        return (runs, next)
    }

    /// The default page of ``events(of:tenant:after:limit:)``.
    public static let eventPage = 500

    /// Events after `seq`, in order.
    public func events(of run: UUID, tenant: UUID, after seq: Int64 = 0, limit: Int = eventPage) async throws -> [RunEvent] {
        var events: [RunEvent] = []
        for try await (seq, type, stepID, data, createdAt) in try await database.query(
            """
            SELECT seq, type, step_id, data, created_at FROM run_events
            WHERE tenant_id = \(tenant) AND run_id = \(run) AND seq > \(seq)
            ORDER BY seq LIMIT \(limit)
            """, logger: database.logger
        ).decode((Int64, String, String?, JSONValue, Date).self) {
            events.append(RunEvent(seq: seq, type: type, stepID: stepID, data: data, createdAt: createdAt))
        }
        return events
    }

    /// Cancels a live run: unfinished steps become `cancelled` (running ones are told to
    /// stop and their late completions are fenced out). Returns the run's status after
    /// the call, or nil when the tenant has no such run.
    public func cancel(_ id: UUID, tenant: UUID, reason: String = "cancelled by request") async throws -> RunStatus? {
        try await finish(id, tenant: tenant, status: .cancelled, error: ErrorRecord(.cancelled, reason))
    }

    /// Ends a live run as `cancelled` or `failed`, cancelling its unfinished steps, in one
    /// transaction. Used by cancellation and by the run deadline.
    public func finish(_ id: UUID, tenant: UUID, status: RunStatus, error: ErrorRecord) async throws -> RunStatus? {
        let logger = database.logger
        let outcome: RunStatus? = try await database.retryingDeadlocks {
            try await database.transaction { connection in
                // Steps first, then the run: the same lock order as step completion.
                let cancelledSteps = try await RunStatements.cancelUnfinishedSteps(of: id, tenant: tenant, connection: connection, logger: logger)
                guard let current = try await RunStatements.lockRun(id, tenant: tenant, connection: connection, logger: logger) else { return nil }
                guard !current.isFinal else { return current }
                try await connection.query(
                    """
                    UPDATE runs SET status = \(status.rawValue), error = \(error.json), finished_at = now()
                    WHERE tenant_id = \(tenant) AND id = \(id)
                    """, logger: logger)
                try await Self.appendEvents(
                    [
                        NewEvent(
                            status.finalEvent ?? .runFailed,
                            data: ["error": error.json, "cancelled_steps": .array(cancelledSteps.map { .string($0) })])
                    ],
                    run: id, tenant: tenant, connection: connection, logger: logger)
                try await connection.query("SELECT pg_notify(\(NotificationChannel.cancel.rawValue), \(id.uuidString))", logger: logger)
                try await Self.resumeParent(of: id, tenant: tenant, status: status, output: nil, error: error, connection: connection, logger: logger)
                return status
            }
        }
        if outcome == status {
            try await cancelChildren(of: id, tenant: tenant)
        }
        return outcome
    }

    /// Records a signal and makes the steps waiting for it ready again.
    public func signal(_ id: UUID, tenant: UUID, name: String, data: JSONValue) async throws -> SignalDelivery? {
        try await database.retryingDeadlocks {
            try await database.transaction { connection in
                try await Self.deliver(signal: name, data: data, run: id, tenant: tenant, connection: connection, logger: database.logger)
            }
        }
    }

    /// Delivers a signal inside the caller's transaction. The run row is locked first:
    /// a step that parks itself to wait takes the same lock before it looks for its
    /// signal, so a signal and a park never miss each other.
    static func deliver(
        signal name: String, data: JSONValue, run id: UUID, tenant: UUID, connection: PostgresConnection, logger: Logger
    ) async throws -> SignalDelivery? {
        guard let current = try await RunStatements.lockRun(id, tenant: tenant, connection: connection, logger: logger) else { return nil }
        guard !current.isFinal else { return .runFinished(current) }
        let inserted = try await connection.query(
            """
            INSERT INTO signals (tenant_id, run_id, name, data) VALUES (\(tenant), \(id), \(name), \(data))
            ON CONFLICT DO NOTHING RETURNING name
            """, logger: logger
        ).collect()
        guard !inserted.isEmpty else { return .duplicate }
        var resumed: [String] = []
        for try await stepID in try await connection.query(
            """
            UPDATE steps SET status = 'ready', ready_at = now()
            WHERE tenant_id = \(tenant) AND run_id = \(id) AND status = 'waiting' AND wait_signal = \(name)
            RETURNING step_id
            """, logger: logger
        ).decode(String.self) {
            resumed.append(stepID)
        }
        try await appendEvents(
            [NewEvent(.runSignalled, data: ["signal": .string(name), "data": data, "resumed_steps": .array(resumed.map { .string($0) })])],
            run: id, tenant: tenant, connection: connection, logger: logger)
        if !resumed.isEmpty {
            try await connection.query("SELECT pg_notify(\(NotificationChannel.work.rawValue), '')", logger: logger)
        }
        return .delivered(resumedSteps: resumed)
    }

    /// When a child run ends, hands its outcome to the parent's waiting step as the
    /// signal ``ChildRuns/signal(step:)``, inside the child's final transaction.
    static func resumeParent(
        of child: UUID, tenant: UUID, status: RunStatus, output: JSONValue?, error: ErrorRecord?, connection: PostgresConnection, logger: Logger
    ) async throws {
        var parent: (UUID, String)?
        for try await row in try await connection.query(
            "SELECT parent_run_id, parent_step_id FROM runs WHERE tenant_id = \(tenant) AND id = \(child) AND parent_run_id IS NOT NULL",
            logger: logger
        ).decode((UUID, String).self) {
            parent = row
        }
        guard let (parentRun, parentStep) = parent else { return }
        let data: JSONValue = [
            "run": .string(child.lowercasedString), "status": .string(status.rawValue), "output": output ?? .null,
            "error": error?.json ?? .null,
        ]
        _ = try await deliver(
            signal: ChildRuns.signal(step: parentStep), data: data, run: parentRun, tenant: tenant, connection: connection, logger: logger)
    }

    /// Cancels live child runs whose parent has ended: `cancelChildren` after a
    /// parent's end may not have run (the process stopped in between).
    @discardableResult
    public func cancelOrphans(limit: Int = 100) async throws -> Int {
        var orphans: [(UUID, UUID)] = []
        for try await row in try await database.query(
            """
            SELECT c.tenant_id, c.id FROM runs c
            JOIN runs p ON p.tenant_id = c.tenant_id AND p.id = c.parent_run_id
            WHERE c.parent_run_id IS NOT NULL AND c.status IN ('queued', 'running', 'waiting')
              AND p.status IN ('succeeded', 'failed', 'cancelled')
            LIMIT \(limit)
            """, logger: database.logger
        ).decode((UUID, UUID).self) {
            orphans.append(row)
        }
        for (tenant, run) in orphans {
            _ = try await cancel(run, tenant: tenant, reason: "the parent run ended")
        }
        return orphans.count
    }

    /// Cancels the live child runs of a run (of one of its steps, when given), and
    /// theirs in turn.
    public func cancelChildren(of parent: UUID, step: String? = nil, tenant: UUID, reason: String = "the parent run ended") async throws {
        var children: [UUID] = []
        for try await id in try await database.query(
            """
            SELECT id FROM runs
            WHERE tenant_id = \(tenant) AND parent_run_id = \(parent) AND (\(step)::text IS NULL OR parent_step_id = \(step))
              AND status IN ('queued', 'running', 'waiting')
            """, logger: database.logger
        ).decode(UUID.self) {
            children.append(id)
        }
        for child in children {
            _ = try await cancel(child, tenant: tenant, reason: reason)
        }
    }

    /// Appends events to a run's log inside the caller's transaction. Bumping the run's
    /// `event_seq` row lock keeps each run's sequence gapless and in commit order.
    @discardableResult
    /// `whileLive`: append only while the run has not ended, so that its final event
    /// stays its last (a call settled after a cancellation is in the ledger, not the log).
    static func appendEvents(
        _ events: [NewEvent], run: UUID, tenant: UUID, connection: PostgresConnection, logger: Logger, whileLive: Bool = false
    ) async throws -> Int64 {
        guard !events.isEmpty else { return 0 }
        let live = RunStatus.allCases.filter { !whileLive || !$0.isFinal }.map(\.rawValue)
        let types = events.map(\.type.rawValue)
        let steps = events.map { $0.stepID ?? "" }
        let data = events.map { StoredJSON.text(of: $0.data) }
        var last: Int64 = 0
        for try await seq in try await connection.query(
            """
            WITH bumped AS (
                UPDATE runs SET event_seq = event_seq + \(events.count)
                WHERE tenant_id = \(tenant) AND id = \(run) AND status = ANY(\(live)::text[]) RETURNING event_seq
            ), inserted AS (
                INSERT INTO run_events (tenant_id, run_id, seq, type, step_id, data)
                SELECT \(tenant), \(run), bumped.event_seq - \(events.count) + e.n, e.type, nullif(e.step, ''), e.data::jsonb
                FROM bumped, unnest(\(types)::text[], \(steps)::text[], \(data)::text[]) WITH ORDINALITY AS e(type, step, data, n)
            )
            SELECT event_seq FROM bumped
            """, logger: logger
        ).decode(Int64.self) {
            last = seq
        }
        return last
    }
}

/// Run creation (see ``RunRepository/createRun(tenant:workflow:version:spec:input:idempotencyKey:parent:notify:)``),
/// prepared once per connection: it is the API's busiest statement.
struct CreateRunStatement: PostgresPreparedStatement {
    typealias Row = PostgresRow

    static let sql = """
            WITH parent_run AS (
                SELECT depth, status FROM runs WHERE tenant_id = $1::uuid AND id = $2::uuid FOR SHARE
            ), parent AS (
                -- A child is created only while its parent is live (the shared lock keeps
                -- it so until this commits); -1 marks a parent that has ended.
                SELECT coalesce((SELECT CASE WHEN status IN ('queued', 'running', 'waiting') THEN depth + 1 ELSE -1 END FROM parent_run), 0) AS depth
            ), run AS (
                INSERT INTO runs (tenant_id, id, workflow, version, status, input, idempotency_key, remaining_steps, event_seq, deadline,
                                  parent_run_id, parent_step_id, depth)
                SELECT $1::uuid, $3::uuid, $4::text, $5::int, 'queued', $6::jsonb, $7::text, $8::int, 1,
                       now() + $9::int8 * interval '1 millisecond', $2::uuid, $10::text, parent.depth
                FROM parent WHERE parent.depth BETWEEN 0 AND $11::int
                ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING created_at
            ), steps AS (
                INSERT INTO steps (tenant_id, run_id, step_id, position, status, pending_needs, max_attempts, ready_at)
                SELECT $1::uuid, $3::uuid, s.id, s.position, CASE WHEN s.needs = 0 THEN 'ready' ELSE 'pending' END, s.needs, s.attempts,
                       CASE WHEN s.needs = 0 THEN now() END
                FROM run, unnest($12::text[], $13::int[], $14::int[], $15::int[]) AS s(id, position, needs, attempts)
            ), event AS (
                INSERT INTO run_events (tenant_id, run_id, seq, type, data)
                SELECT $1::uuid, $3::uuid, 1, $16::text, $17::jsonb FROM run
            ), notified AS (
                SELECT pg_notify($18::text, '') FROM run WHERE $19::bool
            )
            SELECT (SELECT created_at FROM run), (SELECT depth FROM parent), (SELECT count(*) FROM notified)
        """

    let tenant: UUID
    let parentRun: UUID?
    let runID: UUID
    let workflow: String
    let version: Int
    let input: JSONValue
    let idempotencyKey: String?
    let stepCount: Int
    let deadlineMilliseconds: Int64?
    let parentStep: String?
    let stepIDs: [String]
    let positions: [Int]
    let needs: [Int]
    let attempts: [Int]
    let created: JSONValue
    let notify: Bool

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 19)
        bindings.append(tenant)
        bindings.append(parentRun)
        bindings.append(runID)
        bindings.append(workflow)
        bindings.append(Int32(clamping: version))
        try bindings.append(input)
        bindings.append(idempotencyKey)
        bindings.append(Int32(clamping: stepCount))
        bindings.append(deadlineMilliseconds)
        bindings.append(parentStep)
        bindings.append(Int32(ChildRuns.maxDepth))
        bindings.append(stepIDs)
        bindings.append(positions.map { Int32(clamping: $0) })
        bindings.append(needs.map { Int32(clamping: $0) })
        bindings.append(attempts.map { Int32(clamping: $0) })
        bindings.append(RunEventType.runCreated.rawValue)
        try bindings.append(created)
        bindings.append(NotificationChannel.work.rawValue)
        bindings.append(notify)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
