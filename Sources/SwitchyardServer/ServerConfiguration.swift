import Foundation
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardObservability
import SwitchyardStore
import SwitchyardTools
import Yams

/// The server's configuration file (`yard serve --config FILE`), YAML:
///
/// ```yaml
/// host: 127.0.0.1
/// port: 8080
/// database_url: postgres://…      # else DATABASE_URL, else the embedded server
/// admin_key: …                    # else YARD_ADMIN_KEY
/// engine: { concurrency: 64, lease: 30s }
/// gate: { threshold: 0.06 }           # the `auto` gate's default quality/cost target
/// egress: { allow: ["127.0.0.1", "10.0.0.0/8", "kb.internal"] }   # private hosts tools may reach
/// limits: { runs_per_second: 20, run_burst: 40, max_running_steps: 200 }   # per tenant, defaults
/// retention: { runs: 30d, events: 7d, interval: 10m }   # finished runs pruned after this, per tenant defaults
/// experts:
///   flash: { provider: openai, model: deepseek-v4-flash, api_key_env: DEEPSEEK_API_KEY }
///   pro:   { provider: scripted, script: Workflows/demo-script.yaml }
/// ```
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var databaseURL: String?
    public var adminKey: String?
    public var engine = EngineConfiguration()
    public var experts: [String: ExpertConfiguration] = [:]
    /// Hosts and networks HTTP tools of every tenant may reach although they are
    /// private, loopback or link-local (each tenant's own list adds to it).
    public var egress = EgressPolicy.publicOnly
    /// The key that seals tenant secrets. Never read from the file: from
    /// `SWITCHYARD_SECRET_KEY` unless set here (tests do).
    public var secretKey: SecretKey?
    /// The default token bucket on run creation per tenant (nil: no limit); tenants
    /// may have their own (admin API).
    public var runsPerSecond: Double?
    public var runBurst: Int?
    /// Where relative paths in the file (scripts) are resolved first.
    public var baseDirectory: String?
    /// The connection pool's size and deadlines (`database:`), applied to whichever
    /// database the server uses.
    public var databasePool = DatabasePoolSettings()
    /// How long finished runs and their logs are kept (tenants may have their own),
    /// and how the background pruning pass runs (`retention:`).
    public var retention = RetentionConfiguration()
    /// How often a quiet event stream writes a keep-alive comment (see `EventStream`).
    public var eventHeartbeat: Duration = .seconds(5)
    /// Where tenant YAML is parsed, and its deadline (see ``YAMLParseGuard``).
    public var yamlParsing: YAMLParseGuard = .shared
    /// A second port serving only `GET /metrics`, without authentication
    /// (`observability.metrics_port`); nil: `/metrics` is on the API port, admin key only.
    public var metricsPort: Int?
    /// How many tenants the queue gauges name; the rest are summed as `other`.
    public var metricsTopTenants = 10
    /// The log lines' format (`logging.format`), applied by `yard serve`.
    public var logFormat: LogFormat = .text
    /// The lowest level logged (`logging.level`), applied by `yard serve`; else `LOG_LEVEL`, else info.
    public var logLevel: Logger.Level?
    /// Where spans go: never read from the file; `yard serve` makes it from the `OTEL_*`
    /// environment variables (nil: tracing off). Its service runs beside the server.
    public var tracing: OTelTracing.Backend?

    public init() {}

    /// The defaults when no `experts:` are configured. With `DEEPSEEK_API_KEY` in the
    /// environment, `flash` and `pro` are DeepSeek's V4 Flash and Pro. Without it, both
    /// run the local model in-process when it is installed (`localModel`, found by
    /// default where `Scripts/setup-local-model.sh` puts it), so that a machine without
    /// a key or a network still runs real models; else both are scripted from the demo
    /// script that ships in `Workflows/`, so that the demo still runs.
    public static func defaultExperts(
        workflowsDirectory: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        localModel: String? = ExpertConfiguration.installedLocalModel()
    ) -> [String: ExpertConfiguration] {
        if let key = environment["DEEPSEEK_API_KEY"], !key.isEmpty {
            return [
                ExpertTier.flash.rawValue: ExpertConfiguration(
                    provider: .openai, model: "deepseek-v4-flash", baseURL: ExpertConfiguration.deepSeekBaseURL, apiKeyEnv: "DEEPSEEK_API_KEY"),
                ExpertTier.pro.rawValue: ExpertConfiguration(
                    provider: .openai, model: "deepseek-v4-pro", baseURL: ExpertConfiguration.deepSeekBaseURL, apiKeyEnv: "DEEPSEEK_API_KEY"),
            ]
        }
        if let localModel {
            return [
                ExpertTier.flash.rawValue: ExpertConfiguration(provider: .local, model: localModel, maxTokens: 256),
                ExpertTier.pro.rawValue: ExpertConfiguration(provider: .local, model: localModel, maxTokens: 512),
            ]
        }
        return scriptedExperts(workflowsDirectory: workflowsDirectory)
    }

    /// `flash` and `pro` answering from the demo script (deterministic: the demo's full tour).
    public static func scriptedExperts(workflowsDirectory: String?) -> [String: ExpertConfiguration] {
        let script = (workflowsDirectory ?? "Workflows") + "/demo-script.yaml"
        return [
            ExpertTier.flash.rawValue: ExpertConfiguration(provider: .scripted, script: script, model: "scripted-flash"),
            ExpertTier.pro.rawValue: ExpertConfiguration(provider: .scripted, script: script, model: "scripted-pro"),
        ]
    }

    /// Reads a configuration file; unknown keys are errors, as in workflows.
    public static func load(path: String) throws(ConfigurationError) -> ServerConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError("cannot read the config file \(path)")
        }
        var configuration = try parse(text, file: path)
        configuration.baseDirectory = (path as NSString).deletingLastPathComponent
        return configuration
    }

}

/// The connection pool's size and deadlines (`database:` in the config file).
public struct DatabasePoolSettings: Sendable, Hashable {
    public var maxConnections: Int?
    public var acquireTimeout: Duration?
    public var statementTimeout: Duration?

    public init() {}

    /// `database` with these settings applied where set.
    public func applied(to database: DatabaseConfiguration) -> DatabaseConfiguration {
        var database = database
        if let maxConnections { database.maxConnections = maxConnections }
        if let acquireTimeout { database.acquireTimeout = acquireTimeout }
        if let statementTimeout { database.statementTimeout = statementTimeout }
        return database
    }
}
/// The format of log lines: `text` (swift-log's default) or `json`, one object a line.
public enum LogFormat: String, Sendable, Hashable {
    case text, json
}

/// A mistake in the server configuration, with where it is.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
