import Foundation
import PostgresNIO
import SwitchyardCore

/// A new top-level run without an idempotency key: the kind the API creates by the
/// thousand, written in batches (see ``RunRepository/createRun(tenant:workflow:version:spec:input:idempotencyKey:parent:notify:)``).
struct RunCreation: Sendable {
    var tenant: UUID
    var runID: UUID
    var workflow: String
    var version: Int
    var input: JSONValue
    /// The run's deadline from its creation; nil for none.
    var deadlineMilliseconds: Int64?
    var stepIDs: [String]
    var positions: [Int]
    var needs: [Int]
    var attempts: [Int]
    /// The `run.created` event's data.
    var created: JSONValue
    var notify: Bool
}

extension RunRepository {
    /// Writes a batch of new runs, their steps and first events in one statement; one
    /// creation time per run, in order.
    static func write(_ creations: [RunCreation], database: Database) async throws -> [Date] {
        var created: [UUID: Date] = [:]
        for (id, createdAt) in try await database.execute(CreateRunsStatement(creations: creations)) {
            created[id] = createdAt
        }
        return try creations.map { creation in
            guard let date = created[creation.runID] else { throw DatabaseError(.query, "run \(creation.runID) was not created") }
            return date
        }
    }
}

/// Many top-level runs created at once (group commit of run creation): the batch form
/// of ``CreateRunStatement`` for runs with no parent and no idempotency key, so that no
/// row of the batch can conflict with another. Prepared once per connection.
struct CreateRunsStatement: PostgresPreparedStatement {
    typealias Row = (UUID, Date)

    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::int[], $7::int8[], $8::text[])
                WITH ORDINALITY AS i(tenant_id, id, workflow, version, input, step_count, deadline_ms, created, n)
        ), run AS (
            INSERT INTO runs (tenant_id, id, workflow, version, status, input, remaining_steps, event_seq, deadline, depth)
            SELECT tenant_id, id, workflow, version, 'queued', input::jsonb, step_count, 1,
                   CASE WHEN deadline_ms >= 0 THEN now() + deadline_ms * interval '1 millisecond' END, 0
            FROM input ORDER BY n
            RETURNING id, created_at
        ), steps AS (
            INSERT INTO steps (tenant_id, run_id, step_id, position, status, pending_needs, max_attempts, ready_at)
            SELECT i.tenant_id, i.id, s.step_id, s.position, CASE WHEN s.needs = 0 THEN 'ready' ELSE 'pending' END, s.needs, s.attempts,
                   CASE WHEN s.needs = 0 THEN now() END
            FROM unnest($9::int8[], $10::text[], $11::int[], $12::int[], $13::int[]) AS s(n, step_id, position, needs, attempts)
            JOIN input i ON i.n = s.n
        ), event AS (
            INSERT INTO run_events (tenant_id, run_id, seq, type, data)
            SELECT tenant_id, id, 1, $14::text, created::jsonb FROM input
        ), notified AS (
            SELECT pg_notify($15::text, '') WHERE $16::bool
        )
        SELECT id, created_at FROM run, (SELECT count(*) FROM notified) AS n
        """

    let creations: [RunCreation]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 16)
        bindings.append(creations.map(\.tenant))
        bindings.append(creations.map(\.runID))
        bindings.append(creations.map(\.workflow))
        bindings.append(creations.map { Int32(clamping: $0.version) })
        bindings.append(creations.map { StoredJSON.text(of: $0.input) })
        bindings.append(creations.map { Int32(clamping: $0.stepIDs.count) })
        bindings.append(creations.map { $0.deadlineMilliseconds ?? -1 })
        bindings.append(creations.map { StoredJSON.text(of: $0.created) })
        var owners: [Int64] = []
        var ids: [String] = []
        var positions: [Int32] = []
        var needs: [Int32] = []
        var attempts: [Int32] = []
        for (index, creation) in creations.enumerated() {
            owners.append(contentsOf: repeatElement(Int64(index + 1), count: creation.stepIDs.count))
            ids.append(contentsOf: creation.stepIDs)
            positions.append(contentsOf: creation.positions.map { Int32(clamping: $0) })
            needs.append(contentsOf: creation.needs.map { Int32(clamping: $0) })
            attempts.append(contentsOf: creation.attempts.map { Int32(clamping: $0) })
        }
        bindings.append(owners)
        bindings.append(ids)
        bindings.append(positions)
        bindings.append(needs)
        bindings.append(attempts)
        bindings.append(RunEventType.runCreated.rawValue)
        bindings.append(NotificationChannel.work.rawValue)
        bindings.append(creations.contains(where: \.notify))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
