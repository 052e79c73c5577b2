import Foundation
import Logging
import NIOCore
import PostgresNIO
import SwitchyardCore

/// Where the PostgreSQL server is, parsed from a `postgres://` URL or given by the
/// embedded launcher.
public struct DatabaseConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool = false
    public var maxConnections: Int = 24

    public init(host: String, port: Int = 5432, username: String, password: String?, database: String) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses `postgres://user:password@host:port/database?sslmode=require`.
    public init(url: String) throws(DatabaseError) {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw DatabaseError(.configuration, "DATABASE_URL must look like postgres://user:password@host:5432/database, got \(url.prefix(60))")
        }
        guard let host = components.host, !host.isEmpty else {
            throw DatabaseError(.configuration, "DATABASE_URL has no host")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        self.init(
            host: host, port: components.port ?? 5432,
            username: components.user?.removingPercentEncoding ?? "postgres",
            password: components.password?.removingPercentEncoding,
            database: database.isEmpty ? "postgres" : database)
        let sslmode = components.queryItems?.first { $0.name == "sslmode" }?.value
        requireTLS = sslmode == "require" || sslmode == "verify-full"
    }

    /// The same server, another database.
    public func with(database: String) -> DatabaseConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    public var url: String {
        let credentials = password.map { "\(username):\($0)" } ?? username
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }
}

/// A database failure, with a code a caller can branch on and a message a user can act on.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case configuration, unreachable, migration, conflict, notFound = "not_found", query
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// The connection pool and the few things every repository needs from it.
///
/// `Database` is a `Service`-like value: `run()` must be running (in a task group or a
/// service group) for queries to make progress, as with PostgresNIO's client.
public struct Database: Sendable {
    public let client: PostgresClient
    public let configuration: DatabaseConfiguration
    public let logger: Logger

    public init(configuration: DatabaseConfiguration, logger: Logger = Logger(label: "switchyard.db")) {
        self.configuration = configuration
        self.logger = logger
        self.client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the pool until the surrounding task is cancelled.
    public func run() async {
        await client.run()
    }

    /// Fails fast with a plain message when the server cannot be reached, rather than
    /// letting the pool retry for a minute.
    public func checkReachable(timeout: Duration = .seconds(10)) async throws(DatabaseError) {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await client.query("SELECT 1", logger: logger)
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw DatabaseError(.unreachable, "no answer within \(timeout)")
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            throw DatabaseError(.unreachable, "cannot reach PostgreSQL at \(configuration.host):\(configuration.port)/\(configuration.database): \(Self.describe(error))")
        }
    }

    /// Runs `body` in one transaction on one connection.
    public func transaction<Result: Sendable>(_ body: (PostgresConnection) async throws -> Result) async throws -> Result {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(connection)
            }
        } catch let error as PostgresTransactionError {
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }

    /// Runs `body` again when PostgreSQL broke a deadlock by aborting it (SQLSTATE 40P01)
    /// or a serialisation failed (40001); both leave nothing behind.
    public func retryingDeadlocks<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch let error as PSQLError where ["40P01", "40001"].contains(error.serverInfo?[.sqlState] ?? "") && attempt < 5 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...20) * attempt))
            }
        }
    }

    /// A readable text for PostgresNIO's errors, which hide the server's message in
    /// their default description.
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message
            }
            return String(reflecting: error)
        }
        if let error = error as? DatabaseError { return error.message }
        return "\(error)"
    }

    /// Whether `error` is PostgreSQL's unique violation (SQLSTATE 23505).
    public static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }
}

/// Step outputs, inputs and event data bind and decode as `jsonb`.
extension JSONValue: PostgresCodable {}
