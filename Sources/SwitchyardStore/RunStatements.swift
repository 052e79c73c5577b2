import Foundation
import Logging
import PostgresNIO
import SwitchyardCore

/// Statements on a run that several transactions share (cancellation, step
/// completion, signal delivery), written once so that their lock order stays the same
/// everywhere: a run's steps first, then its run row.
enum RunStatements {
    /// Locks the run's row for the rest of the transaction and returns its status; nil
    /// when the tenant has no such run. Step completion, cancellation and signal
    /// delivery take this lock, so they never interleave on one run.
    static func lockRun(_ run: UUID, tenant: UUID, connection: PostgresConnection, logger: Logger) async throws -> RunStatus? {
        try await connection.query(
            "SELECT status FROM runs WHERE tenant_id = \(tenant) AND id = \(run) FOR UPDATE", logger: logger
        ).first(decoding: String.self).flatMap(RunStatus.init(rawValue:))
    }

    /// Cancels the run's unfinished steps; returns their ids, sorted.
    static func cancelUnfinishedSteps(of run: UUID, tenant: UUID, connection: PostgresConnection, logger: Logger) async throws -> [String] {
        var cancelled: [String] = []
        for try await stepID in try await connection.query(
            """
            UPDATE steps SET status = 'cancelled', lease_owner = NULL, finished_at = now()
            WHERE tenant_id = \(tenant) AND run_id = \(run) AND status IN ('pending', 'ready', 'running', 'waiting')
            RETURNING step_id
            """, logger: logger
        ).decode(String.self) {
            cancelled.append(stepID)
        }
        return cancelled.sorted()
    }
}
