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

    /// Takes one token for a new run, or says how long until one is there: one
    /// statement (one round trip, one implicit transaction) reads the tenant's limits,
    /// refills its bucket for the time since it was last drawn from and takes a token
    /// if there is one; a bucket with no token is left as it is. The row lock on the
    /// bucket orders concurrent callers on every server, so two never take one token.
    /// Prepared once per connection: every run created over the API asks it.
    public func acquire(tenant: UUID) async throws -> Decision {
        let row = try await database.execute(
            DrawRunTokenStatement(tenant: tenant, defaultRate: defaultRate, defaultBurst: defaultBurst.map { Int32(clamping: $0) })
        ).first
        guard let (rate, drawn) = row, let rate, rate > 0, !drawn else { return .allowed }
        // Refused: the bucket's level now (this statement's snapshot may predate other
        // servers' draws) says how long until the next token.
        let level = try await database.query(
            """
            SELECT tokens + extract(epoch FROM now() - updated_at)::float8 * \(rate) FROM run_buckets WHERE tenant_id = \(tenant)
            """, logger: database.logger
        ).first(decoding: Double.self)
        let seconds = max(0.001, (1 - min(1, level ?? 0)) / rate)
        return .limited(retryAfter: .milliseconds(Int64((seconds * 1000).rounded(.up))))
    }
}

/// The draw behind ``RunRateLimiter/acquire(tenant:)``: the tenant's rate (nil for
/// no limit) and whether a token was taken.
struct DrawRunTokenStatement: PostgresPreparedStatement {
    typealias Row = (Double?, Bool)

    static let sql = """
        WITH limits AS (
            SELECT coalesce(runs_per_second, $2::float8) AS rate,
                   greatest(1, coalesce(run_burst, $3::int, ceil(coalesce(runs_per_second, $2::float8))::int)) AS burst
            FROM tenants WHERE id = $1::uuid
        ), drawn AS (
            INSERT INTO run_buckets AS b (tenant_id, tokens, updated_at)
            SELECT $1::uuid, l.burst - 1, now() FROM limits l WHERE l.rate > 0
            ON CONFLICT (tenant_id) DO UPDATE SET
                tokens = least((SELECT burst FROM limits),
                               b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * (SELECT rate FROM limits)) - 1,
                updated_at = now()
            WHERE least((SELECT burst FROM limits),
                        b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * (SELECT rate FROM limits)) >= 1
            RETURNING b.tokens
        )
        SELECT (SELECT rate FROM limits), EXISTS (SELECT 1 FROM drawn)
        """

    let tenant: UUID
    let defaultRate: Double?
    let defaultBurst: Int32?

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(tenant)
        bindings.append(defaultRate)
        bindings.append(defaultBurst)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
