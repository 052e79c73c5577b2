import Foundation
import PostgresNIO
import SwitchyardCore
import SwitchyardGate

/// What the gate has learned, per tenant and step, in PostgreSQL: every replica reads
/// and updates the same history, and it survives restarts.
public struct GateRepository: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// The history of one step (`workflow/step`); empty when nothing was learned yet.
    public func history(tenant: UUID, stepKey: String) async throws -> StepHistory {
        for try await (fs, ff, ps, pf) in try await database.query(
            """
            SELECT flash_successes, flash_failures, pro_successes, pro_failures FROM gate_history
            WHERE tenant_id = \(tenant) AND step_key = \(stepKey)
            """, logger: database.logger
        ).decode((Double, Double, Double, Double).self) {
            return StepHistory(flashSuccesses: fs, flashFailures: ff, proSuccesses: ps, proFailures: pf)
        }
        return .empty
    }

    /// Records one outcome. The row is locked while ``StepHistory/record(_:succeeded:)``
    /// applies it, so concurrent outcomes on several servers all count.
    public func record(tenant: UUID, stepKey: String, expert: ExpertTier, succeeded: Bool) async throws {
        try await database.retryingDeadlocks {
            try await database.transaction { connection in
                try await Self.record(
                    tenant: tenant, stepKey: stepKey, expert: expert, succeeded: succeeded, connection: connection, logger: database.logger)
            }
        }
    }

    static func record(
        tenant: UUID, stepKey: String, expert: ExpertTier, succeeded: Bool, connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.query(
            "INSERT INTO gate_history (tenant_id, step_key) VALUES (\(tenant), \(stepKey)) ON CONFLICT DO NOTHING", logger: logger)
        var history = StepHistory.empty
        for try await (fs, ff, ps, pf) in try await connection.query(
            """
            SELECT flash_successes, flash_failures, pro_successes, pro_failures FROM gate_history
            WHERE tenant_id = \(tenant) AND step_key = \(stepKey) FOR UPDATE
            """, logger: logger
        ).decode((Double, Double, Double, Double).self) {
            history = StepHistory(flashSuccesses: fs, flashFailures: ff, proSuccesses: ps, proFailures: pf)
        }
        history.record(expert, succeeded: succeeded)
        try await connection.query(
            """
            UPDATE gate_history SET flash_successes = \(history.flashSuccesses), flash_failures = \(history.flashFailures),
                pro_successes = \(history.proSuccesses), pro_failures = \(history.proFailures), updated_at = now()
            WHERE tenant_id = \(tenant) AND step_key = \(stepKey)
            """, logger: logger)
    }

    /// Stores feedback on a finished model step and teaches the gate: the expert that
    /// answered gets a success or a failure. The same feedback twice is learned once;
    /// a changed opinion is learned again.
    public func feedback(tenant: UUID, run: UUID, step: String, good: Bool) async throws -> FeedbackResult {
        try await database.retryingDeadlocks {
            try await database.transaction { connection in
                var found: (String, String, JSONValue?, Bool?)?
                for try await row in try await connection.query(
                    """
                    SELECT r.workflow, s.status, s.route, s.feedback FROM steps s
                    JOIN runs r ON r.tenant_id = s.tenant_id AND r.id = s.run_id
                    WHERE s.tenant_id = \(tenant) AND s.run_id = \(run) AND s.step_id = \(step)
                    FOR UPDATE OF s
                    """, logger: database.logger
                ).decode((String, String, JSONValue?, Bool?).self) {
                    found = row
                }
                guard let (workflow, status, route, previous) = found else { return .notFound }
                guard status == StepStatus.succeeded.rawValue || status == StepStatus.failed.rawValue else {
                    return .notFinished(status: status)
                }
                guard let expertName = route?["expert"]?.stringValue else { return .notAModelStep }
                guard previous != good else { return .recorded(expert: expertName, learned: false) }
                try await connection.query(
                    "UPDATE steps SET feedback = \(good) WHERE tenant_id = \(tenant) AND run_id = \(run) AND step_id = \(step)",
                    logger: database.logger)
                guard let tier = ExpertTier(rawValue: expertName) else { return .recorded(expert: expertName, learned: false) }
                try await Self.record(
                    tenant: tenant, stepKey: GateRepository.stepKey(workflow: workflow, step: step), expert: tier, succeeded: good,
                    connection: connection, logger: database.logger)
                return .recorded(expert: expertName, learned: true)
            }
        }
    }

    /// The identity the gate learns under: the same step of the same workflow shares
    /// its history across runs and versions.
    public static func stepKey(workflow: String, step: String) -> String { "\(workflow)/\(step)" }
}

/// What became of feedback on a step.
public enum FeedbackResult: Sendable, Hashable {
    case notFound
    case notFinished(status: String)
    case notAModelStep
    /// Stored; `learned` is false when it repeated earlier feedback or the expert is not flash or pro.
    case recorded(expert: String, learned: Bool)
}
