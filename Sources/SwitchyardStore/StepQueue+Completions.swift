import Foundation
import Logging
import PostgresNIO
import SwitchyardCore

/// A step that succeeded or was skipped, ready to be committed with others in one
/// statement (see ``StepQueue/complete(_:notifyOthers:)``).
public struct StepCompletion: Sendable, Hashable {
    /// Only the two outcomes that never fail the run or park the step: they are the
    /// bulk of the traffic and commit without locking the run row first.
    public enum Outcome: Sendable, Hashable {
        case succeeded(output: JSONValue, expert: String?)
        case skipped(reason: String)
    }

    public var step: ClaimedStep
    public var outcome: Outcome
    /// The steps that need this one.
    public var dependents: [String]
    /// How the run ends if this is its last step, worked out by the engine from the
    /// outputs the claim carried; nil when the engine could not know them all (a step
    /// of a parallel branch finished after this one was claimed). The run is then ended
    /// by ``StepQueue/endRun(_:tenant:finalize:)`` instead, one transaction later.
    public var runEnd: RunEnd?

    public init(step: ClaimedStep, outcome: Outcome, dependents: [String], runEnd: RunEnd? = nil) {
        self.step = step
        self.outcome = outcome
        self.dependents = dependents
        self.runEnd = runEnd
    }

}

extension StepCompletion.Outcome {
    /// The outcome of `transition` when it is one a batch can commit; nil for the
    /// transitions that lock the run first (a failure, a retry, a wait).
    public init?(_ transition: StepTransition) {
        switch transition {
        case .succeeded(let output, let expert): self = .succeeded(output: output, expert: expert)
        case .skipped(let reason): self = .skipped(reason: reason)
        case .failed, .retry, .wait: return nil
        }
    }
}

/// How a run ends: its output, or why it failed (the finalizer's answer).
public enum RunEnd: Sendable, Hashable {
    case succeeded(JSONValue)
    case failed(ErrorRecord)

    public init(_ result: Result<JSONValue, ErrorRecord>) {
        switch result {
        case .success(let output): self = .succeeded(output)
        case .failure(let error): self = .failed(error)
        }
    }

    var status: RunStatus {
        switch self {
        case .succeeded: .succeeded
        case .failed: .failed
        }
    }

    /// The run's `output` or `error` column, and its final event's data.
    var value: JSONValue {
        switch self {
        case .succeeded(let output): output
        case .failed(let error): error.json
        }
    }
}

extension StepQueue {
    /// Commits many successful or skipped steps in one statement: each is fenced on
    /// (step, attempt, lease owner) as ``complete(_:_:dependents:notifyOthers:finalize:)``
    /// fences one, makes its successors ready, counts it off its run and appends its
    /// event; a run whose last step is among them ends in the same statement when the
    /// completion carries its end (and the run is not a child, whose parent's step must
    /// be resumed in the same transaction). Returns one result per completion, in order;
    /// a result `.committed` with `runFinished == nil` while the run has no steps left
    /// means the caller must end the run with ``endRun(_:tenant:finalize:)``.
    ///
    /// One statement means one transaction, one WAL flush and one round trip for the
    /// whole batch: the engine gathers the steps that finish while the previous batch
    /// is being written (group commit), so under load each commit carries many steps,
    /// and an idle engine commits a lone step at once.
    public func complete(_ completions: [StepCompletion], notifyOthers: Bool) async throws -> [CompletionOutcome] {
        guard !completions.isEmpty else { return [] }
        // Listed in lock order (as heartbeats list theirs); `order[n - 1]` is the caller's index.
        let order = completions.indices.sorted { ClaimedStep.lockOrder(completions[$0].step, completions[$1].step) }
        let statement = CompleteStepsStatement(completions: order.map { completions[$0] }, owner: owner, notify: notifyOthers)
        var outcomes = [CompletionOutcome](repeating: CompletionOutcome(result: .rejected, runAwaitsEnd: false), count: completions.count)
        let rows = try await database.retryingDeadlocks { try await database.execute(statement) }
        for row in rows {
            let (n, fenced, ready, remaining, ended, runStatus, _) = try row.decode((Int, Bool, [String], Int, Bool, String, Int).self)
            guard fenced, order.indices.contains(n - 1) else { continue }
            let index = order[n - 1]
            let live = RunStatus(rawValue: runStatus)?.isFinal == false
            outcomes[index] = CompletionOutcome(
                result: .committed(newlyReady: ready, runFinished: ended ? RunStatus(rawValue: runStatus) : nil),
                runAwaitsEnd: remaining == 0 && live)
        }
        return outcomes
    }
}

/// What committing one ``StepCompletion`` did.
public struct CompletionOutcome: Sendable, Hashable {
    public var result: CompletionResult
    /// The run has no steps left but was not ended by the batch: end it with
    /// ``StepQueue/endRun(_:tenant:finalize:)``.
    public var runAwaitsEnd: Bool
}

/// The group-commit statement (see ``StepQueue/complete(_:notifyOthers:)``), prepared
/// once per connection: it is the engine's busiest statement, and parsing and planning
/// it anew each time would cost PostgreSQL more than running it.
///
/// Lock order as everywhere: the steps' rows (fence, then successors), then the runs'.
struct CompleteStepsStatement: PostgresPreparedStatement {
    typealias Row = PostgresRow

    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[],
                                 $9::text[], $10::text[])
                WITH ORDINALITY AS i(tenant_id, run_id, step_id, attempt, status, output, expert, reason, run_end, end_value, n)
        ), fenced AS (
            UPDATE steps s SET status = i.status,
                   output = CASE WHEN i.status = 'succeeded' THEN i.output::jsonb END,
                   error = NULL, expert = coalesce(nullif(i.expert, ''), s.expert),
                   lease_owner = NULL, lease_expires_at = NULL, finished_at = now()
            FROM input i
            WHERE s.tenant_id = i.tenant_id AND s.run_id = i.run_id AND s.step_id = i.step_id
              AND s.attempt = i.attempt AND s.lease_owner = $11 AND s.status = 'running'
            RETURNING i.n, i.tenant_id, i.run_id, i.step_id, i.attempt, i.status, i.reason, i.run_end, i.end_value
        ), needs AS (
            -- A successor of two steps of the batch is counted down twice, at once.
            SELECT f.tenant_id, f.run_id, d.step_id, count(*)::int AS k
            FROM fenced f JOIN unnest($12::int8[], $13::text[]) AS d(n, step_id) ON d.n = f.n
            GROUP BY f.tenant_id, f.run_id, d.step_id
        ), successors AS (
            UPDATE steps s SET pending_needs = s.pending_needs - d.k,
                   status = CASE WHEN s.pending_needs = d.k AND s.status = 'pending' THEN 'ready' ELSE s.status END,
                   ready_at = CASE WHEN s.pending_needs = d.k AND s.status = 'pending' THEN now() ELSE s.ready_at END
            FROM needs d
            WHERE s.tenant_id = d.tenant_id AND s.run_id = d.run_id AND s.step_id = d.step_id
            RETURNING s.tenant_id, s.run_id, s.step_id, s.status
        ), per_run AS (
            SELECT tenant_id, run_id, count(*)::int AS k, max(n) AS last_n FROM fenced GROUP BY tenant_id, run_id
        ), ending AS (
            -- The run's end is the one its last completion of the batch carries.
            SELECT p.tenant_id, p.run_id, p.k, p.last_n, f.run_end, f.end_value
            FROM per_run p JOIN fenced f ON f.n = p.last_n
        ), counted AS (
            UPDATE runs r SET
                   remaining_steps = r.remaining_steps - e.k,
                   event_seq = r.event_seq + e.k
                       + CASE WHEN e.run_end <> '' AND r.remaining_steps = e.k AND r.parent_run_id IS NULL
                                   AND r.status IN ('queued', 'running', 'waiting') THEN 1 ELSE 0 END,
                   status = CASE WHEN e.run_end <> '' AND r.remaining_steps = e.k AND r.parent_run_id IS NULL
                                      AND r.status IN ('queued', 'running', 'waiting') THEN e.run_end ELSE r.status END,
                   output = CASE WHEN e.run_end = 'succeeded' AND r.remaining_steps = e.k AND r.parent_run_id IS NULL
                                      AND r.status IN ('queued', 'running', 'waiting') THEN e.end_value::jsonb ELSE r.output END,
                   error = CASE WHEN e.run_end = 'failed' AND r.remaining_steps = e.k AND r.parent_run_id IS NULL
                                     AND r.status IN ('queued', 'running', 'waiting') THEN e.end_value::jsonb ELSE r.error END,
                   finished_at = CASE WHEN e.run_end <> '' AND r.remaining_steps = e.k AND r.parent_run_id IS NULL
                                           AND r.status IN ('queued', 'running', 'waiting') THEN now() ELSE r.finished_at END
            FROM ending e
            WHERE r.tenant_id = e.tenant_id AND r.id = e.run_id
            -- A fenced step's run was live (ending a run cancels its running steps first,
            -- under their row locks), so a run now in the end this batch brought was
            -- ended by it.
            RETURNING r.tenant_id, r.id, r.remaining_steps, r.status, r.output, r.error, r.event_seq, e.k, e.last_n,
                      (e.run_end <> '' AND r.status = e.run_end AND r.remaining_steps = 0 AND r.parent_run_id IS NULL) AS ended
        ), logged AS (
            INSERT INTO run_events (tenant_id, run_id, seq, type, step_id, data)
            SELECT f.tenant_id, f.run_id,
                   c.event_seq - c.k - (CASE WHEN c.ended THEN 1 ELSE 0 END)
                       + row_number() OVER (PARTITION BY f.tenant_id, f.run_id ORDER BY f.n),
                   CASE WHEN f.status = 'succeeded' THEN $14 ELSE $15 END, f.step_id,
                   CASE WHEN f.status = 'succeeded' THEN jsonb_build_object('attempt', f.attempt)
                        ELSE jsonb_build_object('reason', f.reason) END
            FROM fenced f JOIN counted c ON c.tenant_id = f.tenant_id AND c.id = f.run_id
            UNION ALL
            SELECT c.tenant_id, c.id, c.event_seq,
                   CASE WHEN c.status = 'succeeded' THEN $16 ELSE $17 END, NULL,
                   CASE WHEN c.status = 'succeeded' THEN jsonb_build_object('output', c.output)
                        ELSE jsonb_build_object('error', c.error) END
            FROM counted c WHERE c.ended
        ), ready AS (
            SELECT tenant_id, run_id, array_agg(step_id ORDER BY step_id) AS ids
            FROM successors WHERE status = 'ready' GROUP BY tenant_id, run_id
        ), notified AS (
            SELECT pg_notify($18, '') FROM (SELECT 1 FROM ready LIMIT 1) any_ready WHERE $19
        )
        SELECT i.n::int8, f.n IS NOT NULL, coalesce(r.ids, '{}'), coalesce(c.remaining_steps, -1),
               coalesce(c.ended AND c.last_n = i.n, false), coalesce(c.status, ''),
               (SELECT count(*) FROM notified)
        FROM input i
        LEFT JOIN fenced f ON f.n = i.n
        LEFT JOIN counted c ON c.tenant_id = i.tenant_id AND c.id = i.run_id
        LEFT JOIN ready r ON r.tenant_id = i.tenant_id AND r.run_id = i.run_id
        """

    let completions: [StepCompletion]
    let owner: UUID
    let notify: Bool

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 19)
        bindings.append(completions.map(\.step.tenantID))
        bindings.append(completions.map(\.step.runID))
        bindings.append(completions.map(\.step.stepID))
        bindings.append(completions.map { Int64($0.step.attempt) })
        var statuses: [String] = []
        var outputs: [String] = []
        var experts: [String] = []
        var reasons: [String] = []
        for completion in completions {
            switch completion.outcome {
            case .succeeded(let output, let expert):
                statuses.append(StepStatus.succeeded.rawValue)
                outputs.append(StoredJSON.text(of: output))
                experts.append(expert ?? "")
                reasons.append("")
            case .skipped(let reason):
                statuses.append(StepStatus.skipped.rawValue)
                outputs.append("")
                experts.append("")
                reasons.append(reason)
            }
        }
        bindings.append(statuses)
        bindings.append(outputs)
        bindings.append(experts)
        bindings.append(reasons)
        bindings.append(completions.map { $0.runEnd?.status.rawValue ?? "" })
        bindings.append(completions.map { $0.runEnd.map { StoredJSON.text(of: $0.value) } ?? "" })
        bindings.append(owner)
        var dependentOf: [Int64] = []
        var dependents: [String] = []
        for (index, completion) in completions.enumerated() {
            for dependent in Set(completion.dependents).sorted() {
                dependentOf.append(Int64(index + 1))
                dependents.append(dependent)
            }
        }
        bindings.append(dependentOf)
        bindings.append(dependents)
        bindings.append(RunEventType.stepSucceeded.rawValue)
        bindings.append(RunEventType.stepSkipped.rawValue)
        bindings.append(RunEventType.runSucceeded.rawValue)
        bindings.append(RunEventType.runFailed.rawValue)
        bindings.append(NotificationChannel.work.rawValue)
        bindings.append(notify)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
