import Foundation
import PostgresNIO

/// A token bucket per tenant on run creation, kept in PostgreSQL so that every server
/// draws from the same bucket: a tenant gets `rate` runs per second on average and
/// bursts of up to `burst`, however many servers it spreads its requests over.
/// (Bucket levels are rates, not money: floating point is fine here.)
public struct RunRateLimiter: Sendable {
    public let database: Database
    /// The server's default; a tenant's own `runs_per_second`/`run_burst` win.
    public let defaultRate: Double?
    public let defaultBurst: Int?

    public init(database: Database, defaultRate: Double?, defaultBurst: Int?) {
        self.database = database
        self.defaultRate = defaultRate
        self.defaultBurst = defaultBurst
    }

    public enum Decision: Sendable, Hashable {
        case allowed
        /// Try again after this long.
        case limited(retryAfter: Duration)
    }

    /// Takes one token for a new run, or says how long until one is there.
    public func acquire(tenant: UUID) async throws -> Decision {
        var limits: (rate: Double, burst: Int)?
        for try await (rate, burst) in try await database.query(
            "SELECT runs_per_second, run_burst FROM tenants WHERE id = \(tenant)", logger: database.logger
        ).decode((Double?, Int?).self) {
            if let rate = rate ?? defaultRate, rate > 0 {
                limits = (rate, max(1, burst ?? defaultBurst ?? Int(rate.rounded(.up))))
            }
        }
        guard let (rate, burst) = limits else { return .allowed }
        return try await database.transaction { connection in
            try await connection.query(
                "INSERT INTO run_buckets (tenant_id, tokens, updated_at) VALUES (\(tenant), \(Double(burst)), now()) ON CONFLICT DO NOTHING",
                logger: database.logger)
            var level = 0.0
            for try await current in try await connection.query(
                """
                UPDATE run_buckets SET tokens = least(\(Double(burst)), tokens + extract(epoch FROM now() - updated_at)::float8 * \(rate)),
                       updated_at = now()
                WHERE tenant_id = \(tenant)
                RETURNING tokens
                """, logger: database.logger
            ).decode(Double.self) {
                level = current
            }
            guard level >= 1 else {
                let seconds = (1 - level) / rate
                return .limited(retryAfter: .milliseconds(Int64((seconds * 1000).rounded(.up))))
            }
            try await connection.query("UPDATE run_buckets SET tokens = tokens - 1 WHERE tenant_id = \(tenant)", logger: database.logger)
            return .allowed
        }
    }
}
