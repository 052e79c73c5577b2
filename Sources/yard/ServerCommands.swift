import ArgumentParser
import Foundation
import Logging
import SwitchyardCore
import SwitchyardObservability
import SwitchyardServer
import SwitchyardStore

/// Finds the database: `DATABASE_URL` (or the config's `database_url`), else the
/// embedded PostgreSQL server under `--data-dir`.
struct DatabaseBootstrap {
    var configuration: DatabaseConfiguration
    var embedded: EmbeddedPostgres.Running?

    static func resolve(url: String?, dataDirectory: String?) throws -> DatabaseBootstrap {
        if let url = url ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            return DatabaseBootstrap(configuration: try DatabaseConfiguration(url: url), embedded: nil)
        }
        let directory = dataDirectory.map { ($0 as NSString).standardizingPath + "/postgres" } ?? EmbeddedPostgres.defaultDataDirectory()
        do {
            let running = try EmbeddedPostgres(dataDirectory: directory).start()
            return DatabaseBootstrap(configuration: running.configuration, embedded: running)
        } catch {
            throw CLIError(error.message)
        }
    }

    func stop() {
        embedded?.stop()
    }
}

struct ServerOptions: ParsableArguments {
    @Option(help: "The server config file (YAML).")
    var config: String?

    @Option(help: "Folder for the embedded PostgreSQL cluster when DATABASE_URL is not set.")
    var dataDir: String?

    func load() throws -> ServerConfiguration {
        guard let config else { return ServerConfiguration() }
        do {
            return try ServerConfiguration.load(path: config)
        } catch {
            throw CLIError(error.message)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the Switchyard server: the HTTP API and the engine.")

    @OptionGroup var server: ServerOptions

    @Option(help: "Port to listen on (default 8080; 0 picks a free one).")
    var port: Int?

    @Option(help: "Address to bind (default 127.0.0.1).")
    var host: String?

    func run() async throws {
        var configuration = try server.load()
        if let port { configuration.port = port }
        if let host { configuration.host = host }
        // The process-global systems are bootstrapped here, in the executable only.
        let level =
            configuration.logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        let format = configuration.logFormat
        LoggingSystem.bootstrap { label in
            switch format {
            case .json:
                return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        do {
            configuration.tracing = try OTelTracing.fromEnvironment(logger: Logger(label: "switchyard.otel"))
        } catch {
            throw CLIError("tracing: the OTEL_* environment is not usable: \(error)")
        }
        let database = try DatabaseBootstrap.resolve(url: configuration.databaseURL, dataDirectory: server.dataDir)
        defer { database.stop() }
        let app = try SwitchyardServer(configuration: configuration, database: database.configuration)
        try await app.run()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations and exit.")

    @OptionGroup var server: ServerOptions

    func run() async throws {
        let configuration = try server.load()
        let bootstrap = try DatabaseBootstrap.resolve(url: configuration.databaseURL, dataDirectory: server.dataDir)
        defer { bootstrap.stop() }
        let database = Database(configuration: bootstrap.configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            do {
                try await database.checkReachable()
                let applied = try await ProjectFiles.prepare(database)
                print(applied.isEmpty ? "the database is up to date" : "applied migrations \(applied.map(String.init).joined(separator: ", "))")
            } catch let error as DatabaseError {
                group.cancelAll()
                throw CLIError(error.message)
            }
            group.cancelAll()
        }
    }
}
