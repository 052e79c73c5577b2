import Crypto
import Foundation
import PostgresNIO
import SwitchyardCore

/// Tenants and their API keys. Keys are random, shown once, and stored as SHA-256
/// digests. A key reads `sy_<tenant id>_<secret>`: naming the tenant lets the lookup
/// use the tenant-led unique key, as every tenant-owned query does.
public struct TenantRepository: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// Creates a tenant and its first API key.
    public func createTenant(name: String) async throws -> (Tenant, apiKey: String) {
        let tenant = Tenant(id: UUID(), name: name)
        let key = TenantAPIKey.generate(tenant: tenant.id)
        do {
            try await database.transaction { connection in
                try await connection.query("INSERT INTO tenants (id, name) VALUES (\(tenant.id), \(name))", logger: database.logger)
                try await insert(key, connection: connection)
            }
        } catch  where Database.isUniqueViolation(error) {
            throw DatabaseError(.conflict, "a tenant named \(name) already exists")
        }
        return (tenant, key.text)
    }

    /// Creates another API key for an existing tenant; nil when there is no such tenant.
    public func createKey(tenant id: UUID) async throws -> String? {
        guard try await tenant(id: id) != nil else { return nil }
        let key = TenantAPIKey.generate(tenant: id)
        try await database.transaction { connection in
            try await insert(key, connection: connection)
        }
        return key.text
    }

    public func tenant(id: UUID) async throws -> Tenant? {
        if case let (id, name)? = try await database.query(
            "SELECT id, name FROM tenants WHERE id = \(id)", logger: database.logger
        ).first(decoding: (UUID, String).self) {
            return Tenant(id: id, name: name)
        }
        return nil
    }

    public func tenants() async throws -> [Tenant] {
        var result: [Tenant] = []
        for try await (id, name) in try await database.query(
            "SELECT id, name FROM tenants ORDER BY name", logger: database.logger
        ).decode((UUID, String).self) {
            result.append(Tenant(id: id, name: name))
        }
        return result
    }

    /// The tenant's own settings for the gate and for tool egress; nil for no such tenant.
    public func settings(tenant id: UUID) async throws -> TenantSettings? {
        if case let (threshold, egress, steps, rate, burst)? = try await database.query(
            "SELECT gate_threshold, egress_allow, max_concurrent_steps, runs_per_second, run_burst FROM tenants WHERE id = \(id)",
            logger: database.logger
        ).first(decoding: (Double?, [String], Int?, Double?, Int?).self) {
            return TenantSettings(gateThreshold: threshold, egressAllow: egress, maxRunningSteps: steps, runsPerSecond: rate, runBurst: burst)
        }
        return nil
    }

    /// Replaces the tenant's settings; false when there is no such tenant.
    public func updateSettings(tenant id: UUID, _ settings: TenantSettings) async throws -> Bool {
        if try await database.query(
            """
            UPDATE tenants SET gate_threshold = \(settings.gateThreshold), egress_allow = \(settings.egressAllow),
                max_concurrent_steps = \(settings.maxRunningSteps), runs_per_second = \(settings.runsPerSecond), run_burst = \(settings.runBurst)
            WHERE id = \(id) RETURNING id
            """, logger: database.logger
        ).first(decoding: UUID.self) != nil {
            return true
        }
        return false
    }

    /// The tenant a key belongs to, or nil for a malformed, unknown or revoked key.
    /// Asked on every request, so prepared once per connection; never cached, so a
    /// revoked key stops working at once on every server.
    public func authenticate(key text: String) async throws -> Tenant? {
        guard let tenantID = TenantAPIKey.tenant(in: text) else { return nil }
        let statement = AuthenticateStatement(tenant: tenantID, digest: TenantAPIKey.digest(text))
        guard let (id, name) = try await database.execute(statement).first else { return nil }
        return Tenant(id: id, name: name)
    }

    private func insert(_ key: TenantAPIKey, connection: PostgresConnection) async throws {
        try await connection.query(
            """
            INSERT INTO api_keys (tenant_id, id, digest, prefix)
            VALUES (\(key.tenant), \(UUID()), \(TenantAPIKey.digest(key.text)), \(String(key.text.prefix(12))))
            """, logger: database.logger)
    }
}

/// Per-tenant settings an operator sets with the admin key.
public struct TenantSettings: Sendable, Hashable {
    /// The `auto` gate's threshold; nil uses the server's default.
    public var gateThreshold: Double?
    /// Hosts and CIDRs this tenant's tools may reach, on top of the server's list.
    public var egressAllow: [String]
    /// Fair use, each nil for the server's default: the most steps running at once,
    /// and the token bucket on run creation.
    public var maxRunningSteps: Int?
    public var runsPerSecond: Double?
    public var runBurst: Int?

    public init(
        gateThreshold: Double? = nil, egressAllow: [String] = [], maxRunningSteps: Int? = nil, runsPerSecond: Double? = nil, runBurst: Int? = nil
    ) {
        self.gateThreshold = gateThreshold
        self.egressAllow = egressAllow
        self.maxRunningSteps = maxRunningSteps
        self.runsPerSecond = runsPerSecond
        self.runBurst = runBurst
    }
}

/// The text form of an API key and its digest.
struct TenantAPIKey: Sendable {
    var tenant: UUID
    var text: String

    static func generate(tenant: UUID) -> TenantAPIKey {
        var bytes = [UInt8](repeating: 0, count: 24)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = generator.next() }
        let secret = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "A").replacingOccurrences(of: "/", with: "B").replacingOccurrences(of: "=", with: "")
        let tenantHex = tenant.uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        return TenantAPIKey(tenant: tenant, text: "sy_\(tenantHex)_\(secret)")
    }

    static func tenant(in text: String) -> UUID? {
        let parts = text.split(separator: "_", maxSplits: 2)
        guard parts.count == 3, parts[0] == "sy", parts[1].count == 32 else { return nil }
        let hex = Array(parts[1])
        let dashed =
            String(hex[0..<8]) + "-" + String(hex[8..<12]) + "-" + String(hex[12..<16]) + "-" + String(hex[16..<20]) + "-" + String(hex[20..<32])
        return UUID(uuidString: dashed)
    }

    static func digest(_ text: String) -> Data {
        Data(SHA256.hash(data: Data(text.utf8)))
    }
}

/// The key lookup behind ``TenantRepository/authenticate(key:)``.
struct AuthenticateStatement: PostgresPreparedStatement {
    typealias Row = (UUID, String)

    static let sql = """
        SELECT t.id, t.name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
        WHERE k.tenant_id = $1::uuid AND k.digest = $2::bytea AND k.revoked_at IS NULL
        """

    let tenant: UUID
    let digest: Data

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(tenant)
        try bindings.append(digest)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
