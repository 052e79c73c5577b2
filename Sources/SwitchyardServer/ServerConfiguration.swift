import Foundation
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
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
    /// How often a quiet event stream writes a keep-alive comment (see `EventStream`).
    public var eventHeartbeat: Duration = .seconds(5)
    /// Where tenant YAML is parsed, and its deadline (see ``YAMLParseGuard``).
    public var yamlParsing: YAMLParseGuard = .shared

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
                "flash": ExpertConfiguration(
                    provider: .openai, model: "deepseek-v4-flash", baseURL: ExpertConfiguration.deepSeekBaseURL, apiKeyEnv: "DEEPSEEK_API_KEY"),
                "pro": ExpertConfiguration(
                    provider: .openai, model: "deepseek-v4-pro", baseURL: ExpertConfiguration.deepSeekBaseURL, apiKeyEnv: "DEEPSEEK_API_KEY"),
            ]
        }
        if let localModel {
            return [
                "flash": ExpertConfiguration(provider: .local, model: localModel, maxTokens: 256),
                "pro": ExpertConfiguration(provider: .local, model: localModel, maxTokens: 512),
            ]
        }
        return scriptedExperts(workflowsDirectory: workflowsDirectory)
    }

    /// `flash` and `pro` answering from the demo script (deterministic: the demo's full tour).
    public static func scriptedExperts(workflowsDirectory: String?) -> [String: ExpertConfiguration] {
        let script = (workflowsDirectory ?? "Workflows") + "/demo-script.yaml"
        return [
            "flash": ExpertConfiguration(provider: .scripted, script: script, model: "scripted-flash"),
            "pro": ExpertConfiguration(provider: .scripted, script: script, model: "scripted-pro"),
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

    ///
    /// Operator-only input: the file is read once at start-up from a path the operator
    /// gives, never from a request, so it does not go through ``YAMLParseGuard`` (which
    /// bounds parses of request bodies); it still gets the same pre-scan as request YAML,
    /// so a hostile or broken file is refused with its line and column instead of hanging.
    public static func parse(_ text: String, file: String) throws(ConfigurationError) -> ServerConfiguration {
        struct Raw: Decodable {
            var host: String?
            var port: Int?
            var database_url: String?
            var admin_key: String?
            var engine: RawEngine?
            var experts: [String: ExpertConfiguration]?
            var gate: RawGate?
            var egress: RawEgress?
            var limits: RawLimits?
            var database: RawDatabase?

            enum CodingKeys: String, CodingKey, CaseIterable {
                case host, port, database_url, admin_key, engine, experts, gate, egress, limits, database
            }
        }
        struct RawLimits: Decodable {
            var runs_per_second: Double?
            var run_burst: Int?
            var max_running_steps: Int?
            var event_streams: Int?
        }
        struct RawDatabase: Decodable {
            var max_connections: Int?
            var acquire_timeout: String?
            var statement_timeout: String?
        }
        struct RawGate: Decodable {
            var threshold: Double?
        }
        struct RawEgress: Decodable {
            var allow: [String]?
        }
        struct RawEngine: Decodable {
            var concurrency: Int?
            var lease: String?
            var heartbeat: String?
            var poll: String?
            var max_fan_out: Int?
            var default_max_tokens: Int?
            var shutdown_grace: String?
            var max_step_runtime: String?
        }
        do {
            try YAMLPreScan(limits: .default).scan(text)
        } catch {
            throw ConfigurationError("\(file):\(error.line):\(error.column): \(error.message)")
        }
        /// A duration key's value within its bounds, or nil when the key is absent.
        func duration(_ text: String?, _ key: String, from low: Duration = .zero, to high: Duration? = nil, like example: String) throws(ConfigurationError) -> Duration? {
            guard let text else { return nil }
            guard let span = TimeSpan.parse(text), span.duration >= low, high.map({ span.duration <= $0 }) ?? true else {
                let range = high.map { " from \(TimeSpan(low)) to \(TimeSpan($0))" } ?? " of at least \(TimeSpan(low))"
                throw ConfigurationError("\(file): \(key) must be a duration\(range), like \(example)")
            }
            return span.duration
        }
        do {
            if let node = try Yams.compose(yaml: text) {
                try checkKeys(node, allowed: Raw.CodingKeys.allCases.map(\.rawValue), path: "", file: file)
                if let engine = node["engine"] {
                    try checkKeys(
                        engine, allowed: ["concurrency", "lease", "heartbeat", "poll", "max_fan_out", "default_max_tokens", "shutdown_grace", "max_step_runtime"],
                        path: "engine.", file: file)
                }
                if let gate = node["gate"] { try checkKeys(gate, allowed: ["threshold"], path: "gate.", file: file) }
                if let egress = node["egress"] { try checkKeys(egress, allowed: ["allow"], path: "egress.", file: file) }
                if let limits = node["limits"] {
                    try checkKeys(limits, allowed: ["runs_per_second", "run_burst", "max_running_steps", "event_streams"], path: "limits.", file: file)
                }
                if let database = node["database"] {
                    try checkKeys(database, allowed: ["max_connections", "acquire_timeout", "statement_timeout"], path: "database.", file: file)
                }
                if let experts = node["experts"]?.mapping {
                    for (name, entry) in experts {
                        try checkKeys(entry, allowed: ExpertConfiguration.keys, path: "experts.\(name.string ?? "?").", file: file)
                    }
                }
            }
            let raw = try YAMLDecoder().decode(Raw.self, from: text)
            var configuration = ServerConfiguration()
            if let host = raw.host { configuration.host = host }
            if let port = raw.port {
                guard (0...65535).contains(port) else { throw ConfigurationError("\(file): port must be 0-65535") }
                configuration.port = port
            }
            configuration.databaseURL = raw.database_url
            configuration.adminKey = raw.admin_key
            configuration.experts = raw.experts ?? [:]
            for (name, entry) in configuration.experts.sorted(by: { $0.key < $1.key }) {
                do {
                    try entry.validate(name: name)
                } catch {
                    throw ConfigurationError("\(file): \(error.message)")
                }
            }
            if let threshold = raw.gate?.threshold {
                guard threshold.isFinite, (-1...1).contains(threshold) else {
                    throw ConfigurationError("\(file): gate.threshold must be a number from -1 to 1 (higher sends fewer steps to pro)")
                }
                configuration.engine.gateThreshold = threshold
            }
            if let limits = raw.limits {
                if let rate = limits.runs_per_second {
                    guard rate.isFinite, rate > 0 else { throw ConfigurationError("\(file): limits.runs_per_second must be a positive number") }
                    configuration.runsPerSecond = rate
                }
                if let burst = limits.run_burst {
                    guard burst >= 1 else { throw ConfigurationError("\(file): limits.run_burst must be at least 1") }
                    configuration.runBurst = burst
                }
                if let steps = limits.max_running_steps {
                    guard steps >= 1 else { throw ConfigurationError("\(file): limits.max_running_steps must be at least 1") }
                    configuration.engine.maxRunningStepsPerTenant = steps
                }
                if let streams = limits.event_streams {
                    guard (1...100_000).contains(streams) else { throw ConfigurationError("\(file): limits.event_streams must be 1 to 100000") }
                    configuration.engine.maxEventStreamsPerTenant = streams
                }
            }
            if let database = raw.database {
                if let connections = database.max_connections {
                    guard (2...10_000).contains(connections) else { throw ConfigurationError("\(file): database.max_connections must be 2 to 10000") }
                    configuration.databasePool.maxConnections = connections
                }
                if let span = try duration(database.acquire_timeout, "database.acquire_timeout", from: .milliseconds(100), to: .seconds(600), like: "5s") {
                    configuration.databasePool.acquireTimeout = span
                }
                if let span = try duration(database.statement_timeout, "database.statement_timeout", from: .milliseconds(100), to: .seconds(3600), like: "10s") {
                    configuration.databasePool.statementTimeout = span
                }
            }
            if let allow = raw.egress?.allow {
                do {
                    configuration.egress = try EgressPolicy(allowing: allow)
                } catch {
                    throw ConfigurationError("\(file): egress.allow: \(error)")
                }
            }
            if let engine = raw.engine {
                if let concurrency = engine.concurrency {
                    guard concurrency > 0 else { throw ConfigurationError("\(file): engine.concurrency must be positive") }
                    configuration.engine.concurrency = concurrency
                }
                if let span = try duration(engine.lease, "engine.lease", from: .milliseconds(500), like: "30s") {
                    configuration.engine.lease = span
                }
                if let span = try duration(engine.heartbeat, "engine.heartbeat", from: .milliseconds(100), like: "10s") {
                    configuration.engine.heartbeatInterval = span
                }
                if let span = try duration(engine.poll, "engine.poll", from: .milliseconds(10), like: "1s") {
                    configuration.engine.idlePoll = span
                    configuration.engine.maintenanceInterval = span
                }
                if let fanOut = engine.max_fan_out {
                    guard (1...1_000_000).contains(fanOut) else { throw ConfigurationError("\(file): engine.max_fan_out must be 1 to 1000000") }
                    configuration.engine.maxFanOut = fanOut
                }
                if let span = try duration(engine.shutdown_grace, "engine.shutdown_grace", to: .seconds(3600), like: "30s") {
                    configuration.engine.shutdownGrace = span
                }
                if let span = try duration(engine.max_step_runtime, "engine.max_step_runtime", from: .seconds(1), like: "1h") {
                    configuration.engine.maxStepRuntime = span
                }
                if let maxTokens = engine.default_max_tokens {
                    guard (1...1_000_000).contains(maxTokens) else { throw ConfigurationError("\(file): engine.default_max_tokens must be 1 to 1000000") }
                    configuration.engine.defaultMaxTokens = maxTokens
                }
            }
            return configuration
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("\(file): \(error)")
        }
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

/// Refuses keys a mapping does not know, naming the key, its line and the known ones.
private func checkKeys(_ node: Node, allowed: [String], path: String, file: String) throws(ConfigurationError) {
    guard let mapping = node.mapping else {
        throw ConfigurationError("\(file): \(path.isEmpty ? "the file" : String(path.dropLast())) must be a mapping")
    }
    for (key, _) in mapping {
        guard let name = key.string, !allowed.contains(name) else { continue }
        let line = key.mark.map { ":\($0.line)" } ?? ""
        throw ConfigurationError("\(file)\(line): unknown key `\(path)\(name)` (known: \(allowed.sorted().joined(separator: ", ")))")
    }
}

/// A mistake in the server configuration, with where it is.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
