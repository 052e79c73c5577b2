import Foundation
import PostgresNIO
import SwitchyardCore

/// Read-only figures about a tenant's runs, for benchmarks (`yard bench engine`).
extension RunRepository {
    /// Milliseconds from the run's creation to its first step's start, from the
    /// database's own timestamps; nil until a step has started.
    public func triggerLatency(of run: UUID, tenant: UUID) async throws -> Double? {
        try await database.query(
            """
            SELECT (extract(epoch FROM (min(e.created_at) - r.created_at)) * 1000)::float8
            FROM run_events e JOIN runs r ON r.tenant_id = e.tenant_id AND r.id = e.run_id
            WHERE e.tenant_id = \(tenant) AND e.run_id = \(run) AND e.type = \(RunEventType.stepStarted.rawValue)
            GROUP BY r.created_at
            """, logger: database.logger
        ).first(decoding: Double.self)
    }

    /// How many of the tenant's runs have not finished.
    public func liveRunCount(tenant: UUID) async throws -> Int {
        let live = RunStatus.allCases.filter { !$0.isFinal }.map(\.rawValue)
        return try await database.query(
            "SELECT count(*)::int8 FROM runs WHERE tenant_id = \(tenant) AND status = ANY(\(live))", logger: database.logger
        ).first(decoding: Int.self) ?? 0
    }
}
