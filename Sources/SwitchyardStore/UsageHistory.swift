import Foundation
import PostgresNIO

/// Past calls of one step by one expert, from the ledger (calls with known usage only):
/// what a cost plan bounds its estimates with.
public struct PastUsage: Sendable, Hashable {
    public var calls: Int
    public var minPrompt: Int
    public var maxPrompt: Int
    public var averagePrompt: Int
    public var minCompletion: Int
    public var maxCompletion: Int
    public var averageCompletion: Int

    public init(
        calls: Int, minPrompt: Int, maxPrompt: Int, averagePrompt: Int, minCompletion: Int, maxCompletion: Int, averageCompletion: Int
    ) {
        self.calls = calls
        self.minPrompt = minPrompt
        self.maxPrompt = maxPrompt
        self.averagePrompt = averagePrompt
        self.minCompletion = minCompletion
        self.maxCompletion = maxCompletion
        self.averageCompletion = averageCompletion
    }
}

extension MeteringRepository {
    /// The smallest, largest and average tokens of a step's past calls, by expert, for
    /// `yard plan`. Calls whose usage the provider never reported are left out: their
    /// token counts are not what was billed.
    public func pastUsage(tenant: UUID, workflow: String, step: String) async throws -> [String: PastUsage] {
        var result: [String: PastUsage] = [:]
        for try await row in try await database.query(
            """
            SELECT expert, count(*)::int8, min(prompt_tokens)::int8, max(prompt_tokens)::int8, avg(prompt_tokens)::int8,
                   min(completion_tokens)::int8, max(completion_tokens)::int8, avg(completion_tokens)::int8
            FROM model_calls WHERE tenant_id = \(tenant) AND workflow = \(workflow) AND step_id = \(step) AND usage_known
            GROUP BY expert
            """, logger: database.logger
        ).decode((String, Int, Int, Int, Int, Int, Int, Int).self) {
            result[row.0] = PastUsage(
                calls: row.1, minPrompt: row.2, maxPrompt: row.3, averagePrompt: row.4, minCompletion: row.5, maxCompletion: row.6,
                averageCompletion: row.7)
        }
        return result
    }

    /// The model each expert billed last for this tenant: what the experts really run,
    /// which a plan prefers to what this server configures.
    public func expertModels(tenant: UUID) async throws -> [String: String] {
        var result: [String: String] = [:]
        for try await (expert, model) in try await database.query(
            "SELECT DISTINCT ON (expert) expert, model FROM model_calls WHERE tenant_id = \(tenant) ORDER BY expert, started_at DESC",
            logger: database.logger
        ).decode((String, String).self) {
            result[expert] = model
        }
        return result
    }
}
