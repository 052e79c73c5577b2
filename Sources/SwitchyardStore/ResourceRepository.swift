import Crypto
import Foundation
import PostgresNIO
import SwitchyardCore

/// Workflow, agent and tool versions of each tenant. Versions are immutable: applying
/// a changed document stores version N+1, an unchanged one stores nothing.
public struct ResourceRepository: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// Stores the documents in one transaction. Applies of one tenant are serialised
    /// by an advisory lock so that two concurrent applies cannot both take version N+1.
    public func apply(_ documents: [ResourceDocument], tenant: UUID) async throws -> [AppliedResource] {
        try await database.transaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(tenant.uuidString)))", logger: database.logger)
            var applied: [AppliedResource] = []
            for document in documents {
                let spec = try ResourceCoding.encode(document.resource)
                let digest = ResourceCoding.digest(spec)
                var latest: (Int, String)?
                for try await row in try await connection.query(
                    """
                    SELECT version, digest FROM resource_versions
                    WHERE tenant_id = \(tenant) AND kind = \(document.kind.rawValue) AND name = \(document.name)
                    ORDER BY version DESC LIMIT 1
                    """, logger: database.logger
                ).decode((Int, String).self) {
                    latest = row
                }
                if let latest, latest.1 == digest {
                    applied.append(AppliedResource(kind: document.kind, name: document.name, version: latest.0, changed: false))
                    continue
                }
                let version = (latest?.0 ?? 0) + 1
                try await connection.query(
                    """
                    INSERT INTO resource_versions (tenant_id, kind, name, version, source, spec, digest)
                    VALUES (\(tenant), \(document.kind.rawValue), \(document.name), \(version), \(document.source), \(spec)::jsonb, \(digest))
                    """, logger: database.logger)
                applied.append(AppliedResource(kind: document.kind, name: document.name, version: version, changed: true))
            }
            return applied
        }
    }

    /// The latest version of every resource of `kind`, by name.
    public func latest(kind: ResourceKind, tenant: UUID) async throws -> [ResourceVersion] {
        try await versions(
            """
            SELECT DISTINCT ON (name) kind, name, version, source, spec::text, created_at FROM resource_versions
            WHERE tenant_id = \(tenant) AND kind = \(kind.rawValue) ORDER BY name, version DESC
            """)
    }

    /// One version of a resource, the latest when `version` is nil.
    public func find(kind: ResourceKind, name: String, version: Int? = nil, tenant: UUID) async throws -> ResourceVersion? {
        let query: PostgresQuery
        if let version {
            query = """
                SELECT kind, name, version, source, spec::text, created_at FROM resource_versions
                WHERE tenant_id = \(tenant) AND kind = \(kind.rawValue) AND name = \(name) AND version = \(version)
                """
        } else {
            query = """
                SELECT kind, name, version, source, spec::text, created_at FROM resource_versions
                WHERE tenant_id = \(tenant) AND kind = \(kind.rawValue) AND name = \(name) ORDER BY version DESC LIMIT 1
                """
        }
        return try await versions(query).first
    }

    /// The number of a resource's latest version, nil when it has none. Prepared once
    /// per connection: every run created over the API asks it, and with it a cached
    /// decoded version (versions are immutable) stands in for ``find(kind:name:version:tenant:)``.
    public func latestVersion(kind: ResourceKind, name: String, tenant: UUID) async throws -> Int? {
        try await database.execute(LatestVersionStatement(tenant: tenant, kind: kind.rawValue, name: name)).first.map(Int.init)
    }

    /// What a new batch of documents may refer to: the tenant's latest agents and tools
    /// and its workflow names.
    public func catalog(tenant: UUID) async throws -> ResourceCatalog {
        var catalog = ResourceCatalog()
        for version in try await latest(kind: .agent, tenant: tenant) {
            if case .agent(let agent) = version.resource { catalog.agents[agent.name] = agent }
        }
        for version in try await latest(kind: .tool, tenant: tenant) {
            if case .tool(let tool) = version.resource { catalog.tools[tool.name] = tool }
        }
        for version in try await latest(kind: .workflow, tenant: tenant) {
            catalog.workflows.insert(version.name)
        }
        return catalog
    }

    private func versions(_ query: PostgresQuery) async throws -> [ResourceVersion] {
        var result: [ResourceVersion] = []
        for try await (kind, name, version, source, spec, createdAt) in try await database.query(query, logger: database.logger)
            .decode((String, String, Int, String, String, Date).self)
        {
            guard let kind = ResourceKind(rawValue: kind) else { continue }
            let resource = try ResourceCoding.decode(kind: kind, json: spec)
            result.append(ResourceVersion(kind: kind, name: name, version: version, source: source, resource: resource, createdAt: createdAt))
        }
        return result
    }
}

/// The JSON form of compiled resources as stored in `resource_versions.spec`.
public enum ResourceCoding {
    public static func encode(_ resource: Resource) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data: Data
        switch resource {
        case .workflow(let w): data = try encoder.encode(w)
        case .agent(let a): data = try encoder.encode(a)
        case .tool(let t): data = try encoder.encode(t)
        }
        return String(decoding: data, as: UTF8.self)
    }

    public static func decode(kind: ResourceKind, json: String) throws -> Resource {
        let decoder = JSONDecoder()
        let data = Data(json.utf8)
        switch kind {
        case .workflow: return .workflow(try decoder.decode(WorkflowSpec.self, from: data))
        case .agent: return .agent(try decoder.decode(AgentSpec.self, from: data))
        case .tool: return .tool(try decoder.decode(ToolSpec.self, from: data))
        }
    }

    static func digest(_ json: String) -> String {
        sha256Hex(json)
    }
}

/// Lower-case hex SHA-256 of a text's UTF-8 bytes: the one digest used for
/// migration checksums and resource versions.
func sha256Hex(_ text: String) -> String {
    SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
}

/// The lookup behind ``ResourceRepository/latestVersion(kind:name:tenant:)``.
struct LatestVersionStatement: PostgresPreparedStatement {
    typealias Row = Int32

    static let sql = """
        SELECT version FROM resource_versions WHERE tenant_id = $1::uuid AND kind = $2::text AND name = $3::text
        ORDER BY version DESC LIMIT 1
        """

    let tenant: UUID
    let kind: String
    let name: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(tenant)
        bindings.append(kind)
        bindings.append(name)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
