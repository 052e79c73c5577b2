import Foundation
import Logging
import PostgresNIO
import SwitchyardStore
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The one PostgreSQL cluster of a test process, started by the same embedded launcher
/// that `yard serve` uses. Each test gets its own database, cloned from a migrated
/// template, so tests run in parallel without seeing each other's rows or steps.
actor TestCluster {
    static let shared = TestCluster()

    private var running: EmbeddedPostgres.Running?
    /// Creating the template is shared by every caller: the actor is reentrant across
    /// its awaits, so a flag would let two tests build it at once.
    private var template: Task<Void, any Error>?
    static let template = "switchyard_template"

    /// The cluster's address (the `postgres` database), starting it on first use.
    func server() throws -> DatabaseConfiguration {
        if let running { return running.configuration }
        // One cluster per test process, removed at exit: two test runs at once (a
        // developer's and CI's) never share or stop each other's server.
        let root = "/tmp/switchyard-test-pg-\(getuid())-\(getpid())"
        // Tests run in parallel, each with a pool or two: room for a few hundred connections.
        let started = try EmbeddedPostgres(dataDirectory: root + "/postgres", database: "switchyard", maxConnections: 600).start()
        running = started
        TestClusterShutdown.register(started, removing: root)
        return started.configuration
    }

    /// A new, migrated, empty database.
    func makeDatabase() async throws -> DatabaseConfiguration {
        let server = try server()
        let template =
            self.template
            ?? Task {
                try await Self.admin(server, "DROP DATABASE IF EXISTS \(Self.template) WITH (FORCE)")
                try await Self.admin(server, "CREATE DATABASE \(Self.template)")
                let database = Database(configuration: server.with(database: Self.template), logger: Logger(label: "test.template"))
                _ = try await database.withRunningPool {
                    try await ProjectFiles.prepare(database)
                }
            }
        self.template = template
        try await template.value
        let name = "test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20))"
        var attempt = 0
        while true {
            do {
                try await Self.admin(server, "CREATE DATABASE \(name) TEMPLATE \(Self.template)")
                break
            } catch {
                // The template's last connection may still be closing.
                attempt += 1
                if attempt > 50 { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        var configuration = server.with(database: name)
        configuration.maxConnections = 6
        // Tests run many engines at once on two cores: a busy pool is not an outage.
        configuration.acquireTimeout = .seconds(30)
        configuration.statementTimeout = .seconds(30)
        return configuration
    }

    func dropDatabase(_ configuration: DatabaseConfiguration) async {
        guard let server = try? server() else { return }
        try? await Self.admin(server, "DROP DATABASE IF EXISTS \(configuration.database) WITH (FORCE)")
    }

    /// Runs one statement on the server's maintenance database.
    static func admin(_ server: DatabaseConfiguration, _ sql: String) async throws {
        let configuration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: server.username, password: server.password, database: "postgres", tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: Logger(label: "test.admin"))
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "test.admin"))
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}

/// Stops the cluster when the test process exits, if this process started it.
enum TestClusterShutdown {
    /// Written once, by the actor that starts the cluster, before `atexit` can read it.
    nonisolated(unsafe) private static var cluster: (EmbeddedPostgres.Running, String)?

    static func register(_ running: EmbeddedPostgres.Running, removing directory: String) {
        cluster = (running, directory)
        atexit {
            guard let (running, directory) = TestClusterShutdown.cluster else { return }
            running.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}
