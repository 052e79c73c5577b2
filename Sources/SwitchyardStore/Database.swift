import Foundation
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle
import SwitchyardCore
import Synchronization

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
    /// The longest a database call waits for a connection from the pool. While
    /// PostgreSQL cannot be reached this is how soon a call fails (and the API answers
    /// 503), so it is short.
    public var acquireTimeout: Duration = .seconds(5)
    /// The longest one database call (a statement, or a whole transaction) may take
    /// once it has its connection. PostgreSQL enforces the same bound on its side
    /// (`statement_timeout`, `idle_in_transaction_session_timeout`), so a call given up
    /// here never leaves a backend holding row locks.
    public var statementTimeout: Duration = .seconds(10)

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
        configuration.options.connectTimeout = min(acquireTimeout, .seconds(5))
        let milliseconds = statementTimeout.inMilliseconds
        configuration.options.additionalStartupParameters = [
            ("application_name", "switchyard"),
            ("statement_timeout", "\(milliseconds)"),
            ("idle_in_transaction_session_timeout", "\(milliseconds)"),
        ]
        return configuration
    }
}

/// A database failure, with a code a caller can branch on and a message a user can act on.
public struct DatabaseError: Error, CustomStringConvertible, Sendable {
    /// For `unavailable`: the call found no connection or lost it (an outage), rather
    /// than ran out of time on a working one (a stall, an overload).
    var isConnectionFailure = false

    public enum Code: String, Sendable {
        case configuration, unreachable, migration, conflict
        case notFound = "not_found"
        case query
        /// The call did not get a connection or an answer in time, or its connection
        /// broke: PostgreSQL is down, restarting, stalled or overloaded. Trying again
        /// later may succeed.
        case unavailable
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
public struct Database: Service, Sendable {
    public let client: PostgresClient
    public let configuration: DatabaseConfiguration
    public let logger: Logger
    /// Counts of this pool's calls, for tests and operators (an idle server must make
    /// only a few calls per second).
    public let statistics = DatabaseStatistics()

    public init(configuration: DatabaseConfiguration, logger: Logger = Logger(label: "switchyard.db")) {
        self.configuration = configuration
        self.logger = logger
        self.client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the pool until the surrounding task is cancelled (the `Service`
    /// requirement: a process may run its database beside its other services).
    public func run() async {
        await client.run()
    }

    /// Runs the pool while `body` runs, and stops it when `body` returns or throws:
    /// the shape of every command and harness that needs the database for one job.
    public func withRunningPool<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self, returning: Result.self) { group in
            group.addTask { await self.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    /// Fails fast with a plain message when the server cannot be reached, rather than
    /// letting the pool retry for a minute.
    public func checkReachable(timeout: Duration = .seconds(10)) async throws(DatabaseError) {
        do {
            _ = try await withConnection(timeout: timeout, acquireTimeout: timeout) { connection in
                try await connection.query("SELECT 1", logger: logger)
            }
        } catch {
            throw DatabaseError(
                .unreachable,
                "cannot reach PostgreSQL at \(configuration.host):\(configuration.port)/\(configuration.database): \(Self.describe(error))")
        }
    }

    /// Runs one statement and returns all its rows, within the configured deadlines
    /// (see ``withConnection(timeout:file:line:_:)``).
    @discardableResult
    public func query(
        _ query: PostgresQuery, logger: Logger? = nil, timeout: Duration? = nil, file: String = #fileID, line: Int = #line
    ) async throws -> PostgresRows {
        let logger = logger ?? self.logger
        if let timeout, timeout > configuration.statementTimeout {
            // PostgreSQL's own bound is the configured one: raise it for this statement.
            let milliseconds = timeout.inMilliseconds
            return try await transaction(timeout: timeout, file: file, line: line) { connection in
                try await connection.query("SELECT set_config('statement_timeout', \(String(milliseconds)), true)", logger: logger)
                return PostgresRows(try await connection.query(query, logger: logger, file: file, line: line).collect())
            }
        }
        return try await withConnection(timeout: timeout, file: file, line: line) { connection in
            PostgresRows(try await connection.query(query, logger: logger, file: file, line: line).collect())
        }
    }

    /// Runs a prepared statement (parsed and planned once per connection, then only
    /// bound and executed) and returns all its rows, within the configured deadlines.
    /// The engine's hot statements go this way: PostgreSQL spends more on planning
    /// their CTEs than on running them.
    public func execute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, file: String = #fileID, line: Int = #line
    ) async throws -> [Statement.Row] where Statement.Row: Sendable {
        let logger = self.logger
        return try await withConnection(file: file, line: line) { connection in
            var rows: [Statement.Row] = []
            for try await row in try await connection.execute(statement, logger: logger, file: file, line: line) {
                rows.append(row)
            }
            return rows
        }
    }

    /// Runs `body` in one transaction on one connection, within the configured
    /// deadlines (see ``withConnection(timeout:file:line:_:)``).
    ///
    /// BEGIN, COMMIT and ROLLBACK are sent here rather than by PostgresNIO's
    /// `withTransaction`, so that no ROLLBACK is written to a connection that broke (or
    /// that a deadline closed): PostgreSQL rolls such a transaction back by itself, and
    /// a statement written to a closed connection is never answered.
    public func transaction<Result: Sendable>(
        timeout: Duration? = nil, file: String = #fileID, line: Int = #line, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let logger = self.logger
        return try await withConnection(timeout: timeout, file: file, line: line) { connection in
            try await connection.query("BEGIN", logger: logger)
            let value: Result
            do {
                value = try await body(connection)
            } catch {
                if !connection.isClosed && !Self.isUnavailable(error) {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                }
                throw error
            }
            try await connection.query("COMMIT", logger: logger)
            return value
        }
    }

    /// Runs `body` on a pooled connection, with two deadlines: a connection within
    /// ``DatabaseConfiguration/acquireTimeout``, and the whole of `body` within
    /// `timeout` (default ``DatabaseConfiguration/statementTimeout``). Past either,
    /// the call throws ``DatabaseError/Code/unavailable`` and its connection is closed.
    ///
    /// The deadline holds whatever the driver does: PostgresNIO does not cancel a query
    /// in flight, and a query written to a connection that closed at that moment (a
    /// PostgreSQL restart) is never answered, so `body` may never return. The call
    /// therefore runs `body` in a task of its own and stops waiting for it when the
    /// deadline passes (see `DeadlineCall`), rather than await it forever.
    public func withConnection<Result: Sendable>(
        timeout: Duration? = nil, acquireTimeout: Duration? = nil, file: String = #fileID, line: Int = #line,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        statistics.recordCall()
        defer { statistics.recordCallEnded() }
        // While PostgreSQL is known to be unreachable, a call waits for a connection only
        // briefly: long enough to get one as soon as the server is back, not so long
        // that every caller (an API request) hangs through the outage.
        var acquire = acquireTimeout ?? configuration.acquireTimeout
        if statistics.isUnreachable { acquire = min(acquire, Self.acquireTimeoutWhileDown) }
        let call = DeadlineCall<Result>(acquireTimeout: acquire, timeout: timeout ?? configuration.statementTimeout, site: "\(file):\(line)")
        let client = self.client
        let statistics = self.statistics
        do {
            let result = try await call.run { call in
                try await client.withConnection { connection in
                    try call.attach(connection)
                    let outcome: Swift.Result<Result, any Error>
                    do {
                        outcome = .success(try await body(connection))
                    } catch {
                        outcome = .failure(error)
                    }
                    // The caller learns the outcome while the connection is still this
                    // call's: a deadline passing from now on closes nothing.
                    call.finish(outcome, on: connection)
                    return try outcome.get()
                }
            }
            statistics.recordReachable()
            return result
        } catch {
            if Self.isConnectionFailure(error) {
                statistics.recordUnreachable()
            } else if !(error is CancellationError) {
                statistics.recordReachable()
            }
            throw error
        }
    }

    /// How long a call waits for a connection while the database is known to be down.
    static let acquireTimeoutWhileDown: Duration = .seconds(1)

    /// Runs `body` again when PostgreSQL broke a deadlock by aborting it (SQLSTATE 40P01)
    /// or a serialisation failed (40001); both leave nothing behind.
    public func retryingDeadlocks<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch  where [.deadlockDetected, .serializationFailure].contains(Self.sqlState(of: error)) && attempt < 5 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...20) * attempt))
            }
        }
    }

    /// Whether `error` says PostgreSQL could not be reached or did not answer (a
    /// restart, a stall, an overload, a broken connection) rather than refused the
    /// statement: a call that failed so may succeed if tried again later.
    public static func isUnavailable(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError { return error.code == .unavailable || error.code == .unreachable }
        // The pool's own errors (its circuit breaker trips after a minute of failed
        // connection attempts) come from a module PostgresNIO does not export.
        if String(reflecting: type(of: error)).hasSuffix("ConnectionPoolError") { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection, .poolClosed:
            return true
        case .server:
            // A statement timeout, or the session idled in a transaction past its limit
            // (a stalled client), counts as unavailable too.
            return isConnectionFailure(error)
                || [.tooManyConnections, .queryCanceled, .idleInTransactionSessionTimeout].contains(sqlState(of: error))
        default:
            return false
        }
    }

    /// Runs `body` again, with backoff, while it fails because PostgreSQL is
    /// unreachable, until `deadline`; any other error, or the last one, is thrown.
    public static func retryingWhileUnavailable<T: Sendable>(until deadline: ContinuousClock.Instant, _ body: () async throws -> T) async throws -> T
    {
        var pause = Duration.milliseconds(100)
        while true {
            do {
                return try await body()
            } catch  where isUnavailable(error) && ContinuousClock.now + pause < deadline {
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    /// Whether `error` says the database could not be reached at all (no connection, a
    /// broken one, a server shutting down), as opposed to slow: only these make
    /// calls wait briefly for a connection (see ``DatabaseStatistics/isUnreachable``),
    /// so that an overloaded pool is not mistaken for an outage.
    static func isConnectionFailure(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError { return error.code == .unavailable && error.isConnectionFailure }
        if let state = sqlState(of: error) {
            // Class 08 is "connection exception"; the rest: shutting down, crashed, not
            // accepting connections yet.
            return state.raw.hasPrefix("08") || [.adminShutdown, .crashShutdown, .cannotConnectNow].contains(state)
        }
        return isUnavailable(error)
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

    /// Whether `error` is PostgreSQL's unique violation.
    public static func isUniqueViolation(_ error: any Error) -> Bool {
        sqlState(of: error) == .uniqueViolation
    }

    /// The SQLSTATE of an error the server sent; nil for any other error.
    public static func sqlState(of error: any Error) -> PostgresError.Code? {
        guard let error = error as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState] else { return nil }
        return PostgresError.Code(raw: state)
    }
}

/// Counts of a pool's database calls, and whether the database answered the last one.
public final class DatabaseStatistics: Sendable {
    private let calls = Atomic<Int>(0)
    private let unavailable = Atomic<Int>(0)
    private let unreachable = Atomic<Bool>(false)
    private let inFlight = Atomic<Int>(0)

    public init() {}

    /// Calls made so far (statements and transactions, each counted once).
    public var callCount: Int { calls.load(ordering: .relaxed) }

    /// Calls that failed because the database could not be reached or did not answer.
    public var unavailableCount: Int { unavailable.load(ordering: .relaxed) }

    /// Whether the last call that ended failed for want of the database.
    public var isUnreachable: Bool { unreachable.load(ordering: .relaxed) }

    /// Calls under way now: holding a connection or waiting for one (`/metrics`).
    public var callsInFlight: Int { inFlight.load(ordering: .relaxed) }

    func recordCall() {
        calls.add(1, ordering: .relaxed)
        inFlight.add(1, ordering: .relaxed)
    }

    func recordCallEnded() {
        inFlight.subtract(1, ordering: .relaxed)
    }

    func recordReachable() {
        if unreachable.load(ordering: .relaxed) { unreachable.store(false, ordering: .relaxed) }
    }

    func recordUnreachable() {
        unavailable.add(1, ordering: .relaxed)
        unreachable.store(true, ordering: .relaxed)
    }
}
