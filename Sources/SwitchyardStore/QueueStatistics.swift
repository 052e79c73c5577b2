import Foundation
import Logging
import PostgresNIO

/// How much ready work waits, per tenant: what `GET /metrics` shows as queue depth and
/// the age of the oldest ready step. One query per scrape, never per step.
public struct QueueStatistics: Sendable {
    /// One tenant's ready work (or, for `other`, several tenants' together).
    public struct TenantQueue: Sendable, Hashable {
        public var tenant: String
        public var readySteps: Int
        /// Seconds since the oldest ready step became ready.
        public var oldestReadyAge: Double
    }

    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// The `top` tenants with the most ready steps, by name, and the rest summed up as
    /// `other` (the largest age of them), so that the label's values are at most
    /// `top + 1` however many tenants there are.
    public func readyQueues(top: Int = 10) async throws -> [TenantQueue] {
        var queues: [TenantQueue] = []
        for try await (name, count, age) in try await database.query(
            """
            SELECT t.name, q.n, q.age FROM (
                SELECT tenant_id, count(*)::int8 AS n,
                       greatest(0, extract(epoch FROM now() - min(ready_at)))::float8 AS age
                FROM steps WHERE status = 'ready' AND ready_at <= now()
                GROUP BY tenant_id
            ) q JOIN tenants t ON t.id = q.tenant_id
            ORDER BY q.n DESC, t.name
            """, logger: database.logger
        ).decode((String, Int, Double).self) {
            queues.append(TenantQueue(tenant: name, readySteps: count, oldestReadyAge: age))
        }
        guard queues.count > top else { return queues }
        let rest = queues[top...]
        var kept = Array(queues[..<top])
        kept.append(
            TenantQueue(tenant: "other", readySteps: rest.reduce(0) { $0 + $1.readySteps }, oldestReadyAge: rest.map(\.oldestReadyAge).max() ?? 0))
        return kept
    }
}
