import Foundation
import PostgresNIO
import SwitchyardCore

/// Tenant secrets as sealed bytes. Sealing and opening happen above this layer (the
/// key never reaches the database); this repository only stores ciphertext.
public struct SecretRepository: Sendable {
    public let database: Database

    public init(database: Database) {
        self.database = database
    }

    /// Creates or replaces a secret; true when it was created.
    @discardableResult
    public func put(tenant: UUID, name: String, ciphertext: Data) async throws -> Bool {
        if let inserted = try await database.query(
            """
            INSERT INTO secrets (tenant_id, name, ciphertext) VALUES (\(tenant), \(name), \(ciphertext))
            ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, updated_at = now()
            RETURNING (xmax = 0)
            """, logger: database.logger
        ).first(decoding: Bool.self) {
            return inserted
        }
        return false
    }

    /// True when a secret was deleted.
    public func delete(tenant: UUID, name: String) async throws -> Bool {
        if try await database.query(
            "DELETE FROM secrets WHERE tenant_id = \(tenant) AND name = \(name) RETURNING name", logger: database.logger
        ).first(decoding: String.self) != nil {
            return true
        }
        return false
    }

    /// Names and update times only: values never leave through listings.
    public func list(tenant: UUID) async throws -> [(name: String, updatedAt: Date)] {
        var result: [(String, Date)] = []
        for try await row in try await database.query(
            "SELECT name, updated_at FROM secrets WHERE tenant_id = \(tenant) ORDER BY name", logger: database.logger
        ).decode((String, Date).self) {
            result.append(row)
        }
        return result.map { (name: $0.0, updatedAt: $0.1) }
    }

    /// The sealed values of the named secrets (missing names are absent from the result).
    public func sealed(tenant: UUID, names: Set<String>) async throws -> [String: Data] {
        guard !names.isEmpty else { return [:] }
        var result: [String: Data] = [:]
        for try await (name, ciphertext) in try await database.query(
            "SELECT name, ciphertext FROM secrets WHERE tenant_id = \(tenant) AND name = ANY(\(Array(names)))", logger: database.logger
        ).decode((String, Data).self) {
            result[name] = ciphertext
        }
        return result
    }
}
