import Foundation
import PostgresNIO
import SwitchyardStore
import Testing

/// The schema stays distributable by `tenant_id` (Citus, see docs/SCALE-OUT.md), read
/// from PostgreSQL's catalog after every migration: each tenant-owned table has a
/// `tenant_id` that leads its primary key, every unique constraint and unique index,
/// and every foreign key to another tenant-owned table (so that the rows a statement
/// touches are co-located on one node); the tables without `tenant_id` are an explicit,
/// small list, each with its role in a distributed cluster. A new table or key that
/// breaks this fails here, naming it.
@Suite("Distribution: the schema is distributable by tenant_id")
struct DistributionCatalogTests {
    /// Tables without `tenant_id`, and what each becomes under Citus.
    static let global: [String: String] = [
        // Reference tables: copied to every node, joined locally with any shard.
        "tenants": "reference table (the tenant directory: its id is every other table's tenant_id, its name is unique across tenants)",
        "prices": "reference table (the price book, shared by every tenant)",
        // Coordinator-local tables: never joined with tenant data on a worker.
        "schema_migrations": "coordinator-local (the migrator's record)",
        "event_followers": "coordinator-local (which server process follows which run: process state, not tenant data)",
    ]

    /// Reference tables a tenant-owned table may point at with a foreign key that does not lead with tenant_id.
    static let referenceTables: Set<String> = ["tenants", "prices"]

    struct Key: Sendable, CustomStringConvertible {
        var table: String
        var name: String
        var kind: String
        var columns: [String]
        var referencedTable: String?
        var referencedColumns: [String]

        var description: String {
            "\(kind) \(name) on \(table)(\(columns.joined(separator: ", ")))"
                + (referencedTable.map { " -> \($0)(\(referencedColumns.joined(separator: ", ")))" } ?? "")
        }
    }

    @Test("every tenant-owned table's keys lead with tenant_id; the global tables are the known few")
    func schemaIsDistributable() async throws {
        try await withTestStore { store in
            let database = store.database
            var tables: [String: (hasTenant: Bool, tenantNotNull: Bool)] = [:]
            for try await (name, hasTenant, notNull) in try await database.query(
                """
                SELECT c.relname::text,
                       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
                       coalesce((SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'), false)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                """
            ).decode((String, Bool, Bool).self) {
                tables[name] = (hasTenant, notNull)
            }
            #expect(tables.count >= 16, "the schema's tables: \(tables.keys.sorted())")

            // Primary keys, unique constraints and foreign keys, with their columns in order.
            var keys: [Key] = []
            for try await (table, name, kind, columns, referenced, referencedColumns) in try await database.query(
                """
                SELECT t.relname::text, k.conname::text, k.contype::text,
                       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
                       r.relname::text,
                       ARRAY(SELECT a.attname::text FROM unnest(coalesce(k.confkey, '{}')) WITH ORDINALITY u(n, i)
                             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
                FROM pg_constraint k JOIN pg_class t ON t.oid = k.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
                LEFT JOIN pg_class r ON r.oid = k.confrelid
                WHERE n.nspname = current_schema() AND k.contype IN ('p', 'u', 'f')
                """
            ).decode((String, String, String, [String], String?, [String]).self) {
                let kind = ["p": "primary key", "u": "unique constraint", "f": "foreign key"][kind] ?? kind
                keys.append(
                    Key(table: table, name: name, kind: kind, columns: columns, referencedTable: referenced, referencedColumns: referencedColumns))
            }
            // Unique indexes, including those no constraint declares (partial, expression).
            for try await (table, name, columns) in try await database.query(
                """
                SELECT t.relname::text, ic.relname::text,
                       ARRAY(SELECT coalesce(a.attname::text, '(expression)') FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, o)
                             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n ORDER BY u.o)
                FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
                JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = current_schema() AND i.indisunique
                """
            ).decode((String, String, [String]).self) {
                keys.append(Key(table: table, name: name, kind: "unique index", columns: columns, referencedTable: nil, referencedColumns: []))
            }

            let withoutTenant = Set(tables.filter { !$0.value.hasTenant }.keys)
            #expect(
                withoutTenant == Set(Self.global.keys),
                "tables without tenant_id must be the listed global ones: unlisted \(withoutTenant.subtracting(Self.global.keys).sorted()), listed but tenant-owned or missing \(Set(Self.global.keys).subtracting(withoutTenant).sorted())"
            )
            for (table, facts) in tables where facts.hasTenant {
                #expect(facts.tenantNotNull, "\(table).tenant_id must be NOT NULL")
                #expect(keys.contains { $0.table == table && $0.kind == "primary key" }, "\(table) has no primary key")
            }
            for key in keys where tables[key.table]?.hasTenant == true {
                switch key.kind {
                case "foreign key":
                    guard let target = key.referencedTable else { continue }
                    if Self.referenceTables.contains(target) {
                        if target == "tenants" {
                            #expect(key.columns == ["tenant_id"] && key.referencedColumns == ["id"], "\(key) must be (tenant_id) -> tenants(id)")
                        }
                    } else {
                        #expect(tables[target]?.hasTenant == true, "\(key) points at a table that is neither tenant-owned nor a reference table")
                        #expect(
                            key.columns.first == "tenant_id" && key.referencedColumns.first == "tenant_id",
                            "\(key) must lead with tenant_id on both sides (co-located)")
                    }
                default:
                    #expect(key.columns.first == "tenant_id", "\(key) must lead with tenant_id")
                }
            }
            // A global table never points at tenant-owned data (a reference table cannot
            // reference a distributed one).
            for key in keys where key.kind == "foreign key" && Self.global[key.table] != nil {
                #expect(Self.global[key.referencedTable ?? ""] != nil, "\(key): a global table must not reference a tenant-owned one")
            }
            // The check itself sees the keys it is about.
            #expect(keys.contains { $0.table == "steps" && $0.kind == "foreign key" && $0.columns == ["tenant_id", "run_id"] })
            #expect(keys.contains { $0.name == "runs_idempotency" && $0.columns == ["tenant_id", "idempotency_key"] })
        }
    }
}
