import Foundation
import Logging
import PostgresNIO
import SwitchyardMetering

/// One numbered SQL file from `Migrations/` (`0001_initial.sql`).
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    /// SHA-256 of the file's text: an applied migration whose file later changes is
    /// refused, because the database would no longer match what the file says.
    public var checksum: String {
        sha256Hex(sql)
    }

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// Reads every `NNNN_name.sql` in `directory`, in version order.
    public static func load(from directory: String) throws(DatabaseError) -> [Migration] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw DatabaseError(.migration, "cannot read migrations from \(directory): \(error.localizedDescription)")
        }
        var migrations: [Migration] = []
        for file in files where file.hasSuffix(".sql") {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw DatabaseError(.migration, "migration file \(file) must be named NNNN_name.sql")
            }
            guard let sql = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else {
                throw DatabaseError(.migration, "cannot read \(directory)/\(file)")
            }
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw DatabaseError(.migration, "two migrations share version \(a.version): \(a.name) and \(b.name)")
        }
        return migrations
    }
}

/// Applies migrations in order, all pending ones in one transaction, under an
/// advisory lock so that replicas starting together do not race.
public struct Migrator: Sendable {
    /// The advisory lock key ("swyd" in ASCII), shared by every Switchyard process.
    static let lockKey: Int64 = 0x7377_7964

    public var database: Database

    public init(database: Database) {
        self.database = database
    }

    /// Applies what is pending and returns the versions applied now.
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [Int] {
        let logger = database.logger
        do {
            // Migrations may rebuild large tables, and wait for another server's: no
            // statement deadline but an hour's.
            return try await database.transaction(timeout: .seconds(3600)) { connection in
                try await connection.query("SET LOCAL statement_timeout = 0", logger: logger)
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                try await connection.query(
                    """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """, logger: logger)
                var applied: [Int: (String, String)] = [:]
                for try await (version, name, checksum) in try await connection.query(
                    "SELECT version, name, checksum FROM schema_migrations", logger: logger
                ).decode((Int, String, String).self) {
                    applied[version] = (name, checksum)
                }
                var appliedNow: [Int] = []
                for migration in migrations {
                    if let (name, checksum) = applied[migration.version] {
                        guard checksum == migration.checksum else {
                            throw DatabaseError(
                                .migration,
                                "migration \(migration.version)_\(name) was changed after it was applied; add a new migration instead of editing it")
                        }
                        continue
                    }
                    do {
                        for statement in SQLScript.statements(in: migration.sql) {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                    } catch {
                        throw DatabaseError(.migration, "migration \(migration.version)_\(migration.name) failed: \(Database.describe(error))")
                    }
                    try await connection.query(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                        logger: logger)
                    appliedNow.append(migration.version)
                }
                return appliedNow
            }
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw DatabaseError(.migration, "migrating failed: \(Database.describe(error))")
        }
    }
}

/// Finds the folders the product ships beside its code (`Migrations/`, `Workflows/`):
/// an explicit environment variable, the working directory, an installed
/// `share/switchyard` next to the executable, then the source tree this binary was
/// built from (for `swift run` and `swift test`).
public enum ProjectFiles {
    public static func directory(_ name: String, environmentVariable: String) -> String? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment[environmentVariable], !explicit.isEmpty {
            candidates.append(explicit)
        }
        candidates.append(fm.currentDirectoryPath + "/" + name)
        // /proc/self/exe names the binary however it was started (by PATH or by path).
        let executablePath = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first ?? ""
        let executable = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(executable.appendingPathComponent("../share/switchyard/\(name)").standardized.path)
        let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(sourceRoot.appendingPathComponent(name).path)
        var isDirectory: ObjCBool = false
        return candidates.first { fm.fileExists(atPath: $0, isDirectory: &isDirectory) && isDirectory.boolValue }
    }

    /// The price book rows this build ships (`Data/prices.yaml`).
    public static func priceSeed() throws(DatabaseError) -> [PriceRow] {
        guard let directory = directory("Data", environmentVariable: "SWITCHYARD_DATA") else {
            throw DatabaseError(.migration, "cannot find the Data directory (with prices.yaml); set SWITCHYARD_DATA to its path")
        }
        let path = directory + "/prices.yaml"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DatabaseError(.migration, "cannot read \(path)")
        }
        do {
            return try PriceBook.parseSeed(text)
        } catch {
            throw DatabaseError(.migration, "\(path): \(error)")
        }
    }

    /// Brings a database up to date: migrations, then the shipped price rows that are
    /// missing (rows are never changed once there). Returns the migrations applied.
    @discardableResult
    public static func prepare(_ database: Database) async throws -> [Int] {
        let applied = try await Migrator(database: database).migrate(try migrations())
        try await MeteringRepository(database: database).seed(try priceSeed())
        return applied
    }

    /// The migrations this build ships.
    public static func migrations() throws(DatabaseError) -> [Migration] {
        guard let directory = directory("Migrations", environmentVariable: "SWITCHYARD_MIGRATIONS") else {
            throw DatabaseError(.migration, "cannot find the Migrations directory; set SWITCHYARD_MIGRATIONS to its path")
        }
        return try Migration.load(from: directory)
    }
}

/// Splits a SQL file into statements at top-level semicolons, so that each runs as
/// one extended-protocol query (PostgresNIO sends every query as a prepared statement,
/// which may hold only one command). Semicolons inside comments, quoted strings,
/// quoted identifiers and dollar-quoted bodies do not split.
enum SQLScript {
    static func statements(in sql: String) -> [String] {
        let chars = Array(sql.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var i = 0
        func flush() {
            let text = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty && !isOnlyComments(text) { statements.append(text) }
            current = String.UnicodeScalarView()
        }
        while i < chars.count {
            let c = chars[i]
            let next: Unicode.Scalar? = i + 1 < chars.count ? chars[i + 1] : nil
            if c == "-" && next == "-" {
                while i < chars.count && chars[i] != "\n" {
                    current.append(chars[i])
                    i += 1
                }
                continue
            }
            if c == "/" && next == "*" {
                while i < chars.count && !(chars[i] == "*" && i + 1 < chars.count && chars[i + 1] == "/") {
                    current.append(chars[i])
                    i += 1
                }
                if i < chars.count {
                    current.append(contentsOf: [chars[i], chars[i + 1]])
                    i += 2
                }
                continue
            }
            if c == "'" || c == "\"" {
                current.append(c)
                i += 1
                while i < chars.count && chars[i] != c {
                    current.append(chars[i])
                    i += 1
                }
                if i < chars.count {
                    current.append(chars[i])
                    i += 1
                }
                continue
            }
            if c == "$" {
                // A dollar quote: $tag$ … $tag$.
                var j = i + 1
                while j < chars.count && (chars[j].properties.isAlphabetic || chars[j] == "_" || ("0"..."9").contains(chars[j])) { j += 1 }
                if j < chars.count && chars[j] == "$" {
                    let tag = Array(chars[i...j])
                    current.append(contentsOf: tag)
                    i = j + 1
                    while i < chars.count {
                        if chars[i] == "$" && i + tag.count <= chars.count && Array(chars[i..<(i + tag.count)]) == tag {
                            current.append(contentsOf: tag)
                            i += tag.count
                            break
                        }
                        current.append(chars[i])
                        i += 1
                    }
                    continue
                }
            }
            if c == ";" {
                flush()
                i += 1
                continue
            }
            current.append(c)
            i += 1
        }
        flush()
        return statements
    }

    private static func isOnlyComments(_ text: String) -> Bool {
        text.split(separator: "\n").allSatisfy {
            $0.trimmingCharacters(in: .whitespaces).hasPrefix("--") || $0.trimmingCharacters(in: .whitespaces).isEmpty
        }
    }
}
