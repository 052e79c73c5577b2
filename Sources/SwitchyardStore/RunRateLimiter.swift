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
    /// Draws of one token each, group-committed: one statement draws for every request
    /// waiting meanwhile, so a tenant's requests do not queue one by one for its bucket
    /// row's lock and commit.
    private let draws: GroupCommit<UUID, Decision>

    public init(database: Database, defaultRate: Double?, defaultBurst: Int?) {
        self.database = database
        self.defaultRate = defaultRate
        self.defaultBurst = defaultBurst
        self.draws = GroupCommit { tenants in
            try await Self.draw(tenants, database: database, defaultRate: defaultRate, defaultBurst: defaultBurst)
        }
    }

    public enum Decision: Sendable, Hashable {
        case allowed
        /// Try again after this long.
        case limited(retryAfter: Duration)
    }

    /// Takes one token for a new run, or says how long until one is there. The bucket's
    /// row lock orders concurrent draws on every server, so two never take one token.
    public func acquire(tenant: UUID) async throws -> Decision {
        try await draws.submit(tenant)
    }

    /// One decision per request, in order: each tenant's requests are granted in
    /// arrival order as far as its bucket allows (one statement for all of them: the
    /// tenants' limits, each bucket refilled for the time since its last draw, and as
    /// many tokens taken as there are and were asked for).
    static func draw(_ tenants: [UUID], database: Database, defaultRate: Double?, defaultBurst: Int?) async throws -> [Decision] {
        var asked: [UUID: Int] = [:]
        for tenant in tenants { asked[tenant, default: 0] += 1 }
        let statement = DrawRunTokensStatement(
            tenants: Array(asked.keys), counts: asked.values.map { Int32(clamping: $0) }, defaultRate: defaultRate,
            defaultBurst: defaultBurst.map { Int32(clamping: $0) })
        var grants: [UUID: (granted: Int, rate: Double, left: Double)] = [:]
        for (tenant, rate, granted, left) in try await database.execute(statement) {
            grants[tenant] = (Int(granted), rate, left)
        }
        return tenants.map { tenant in
            guard let grant = grants[tenant], grant.rate > 0 else { return .allowed }
            if grant.granted > 0 {
                grants[tenant]?.granted -= 1
                return .allowed
            }
            // Refused: the level the draw left says how long until the next token.
            let seconds = max(0.001, (1 - min(1, grant.left)) / grant.rate)
            return .limited(retryAfter: .milliseconds(Int64((seconds * 1000).rounded(.up))))
        }
    }
}

/// The draw behind ``RunRateLimiter/draw(_:database:defaultRate:defaultBurst:)``: per
/// tenant asked, its rate (0 for no limit), the tokens granted and the level left.
/// Buckets are written in tenant order, so two servers' draws lock them in one order.
struct DrawRunTokensStatement: PostgresPreparedStatement {
    typealias Row = (UUID, Double, Int32, Double)

    static let sql = """
        WITH limits AS (
            SELECT a.tenant_id, a.n, coalesce(t.runs_per_second, $3::float8, 0) AS rate,
                   greatest(1, coalesce(t.run_burst, $4::int, ceil(coalesce(t.runs_per_second, $3::float8))::int)) AS burst
            FROM unnest($1::uuid[], $2::int[]) AS a(tenant_id, n) JOIN tenants t ON t.id = a.tenant_id
        ), drawn AS (
            INSERT INTO run_buckets AS b (tenant_id, tokens, updated_at, granted)
            SELECT tenant_id, burst - least(n, burst), now(), least(n, burst) FROM limits WHERE rate > 0 ORDER BY tenant_id
            ON CONFLICT (tenant_id) DO UPDATE SET
                granted = least((SELECT l.n FROM limits l WHERE l.tenant_id = b.tenant_id),
                                floor(least((SELECT l.burst FROM limits l WHERE l.tenant_id = b.tenant_id),
                                            b.tokens + extract(epoch FROM now() - b.updated_at)::float8
                                                * (SELECT l.rate FROM limits l WHERE l.tenant_id = b.tenant_id))))::int,
                tokens = least((SELECT l.burst FROM limits l WHERE l.tenant_id = b.tenant_id),
                               b.tokens + extract(epoch FROM now() - b.updated_at)::float8
                                   * (SELECT l.rate FROM limits l WHERE l.tenant_id = b.tenant_id))
                         - least((SELECT l.n FROM limits l WHERE l.tenant_id = b.tenant_id),
                                 floor(least((SELECT l.burst FROM limits l WHERE l.tenant_id = b.tenant_id),
                                             b.tokens + extract(epoch FROM now() - b.updated_at)::float8
                                                 * (SELECT l.rate FROM limits l WHERE l.tenant_id = b.tenant_id)))),
                updated_at = now()
            RETURNING b.tenant_id, b.granted, b.tokens
        )
        SELECT l.tenant_id, l.rate, coalesce(d.granted, l.n)::int, coalesce(d.tokens, 0)
        FROM limits l LEFT JOIN drawn d ON d.tenant_id = l.tenant_id
        """

    let tenants: [UUID]
    let counts: [Int32]
    let defaultRate: Double?
    let defaultBurst: Int32?

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(tenants)
        bindings.append(counts)
        bindings.append(defaultRate)
        bindings.append(defaultBurst)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
