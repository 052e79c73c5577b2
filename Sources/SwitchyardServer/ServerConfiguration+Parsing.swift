import Foundation
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardTools
import Yams

extension ServerConfiguration {
    /// Parses a configuration file's text; `file` names it in errors.
    ///
    /// Operator-only input: the file is read once at start-up from a path the operator
    /// gives, never from a request, so it does not go through ``YAMLParseGuard`` (which
    /// bounds parses of request bodies); it still gets the same pre-scan as request YAML,
    /// so a hostile or broken file is refused with its line and column instead of hanging.
    public static func parse(_ text: String, file: String) throws(ConfigurationError) -> ServerConfiguration {
        do {
            try YAMLPreScan(limits: .default).scan(text)
        } catch {
            throw ConfigurationError("\(file):\(error.line):\(error.column): \(error.message)")
        }
        do {
            if let node = try Yams.compose(yaml: text) {
                try RawConfiguration.checkKeys(of: node, file: file)
            }
            let raw = try YAMLDecoder().decode(RawConfiguration.self, from: text)
            return try raw.configuration(file: file)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("\(file): \(error)")
        }
    }
}

/// The configuration file as written: each section's keys are its `CodingKeys`, which
/// are also the keys the file may use (anything else is refused with its line).
private struct RawConfiguration: Decodable {
    var host: String?
    var port: Int?
    var database_url: String?
    var admin_key: String?
    var engine: Engine?
    var experts: [String: ExpertConfiguration]?
    var gate: Gate?
    var egress: Egress?
    var limits: Limits?
    var database: Database?
    var observability: Observability?
    var logging: Logging?
    var retention: Retention?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case host, port, database_url, admin_key, engine, experts, gate, egress, limits, database, observability, logging, retention
    }

    struct Observability: Decodable {
        var metrics_port: Int?
        var metrics_top_tenants: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case metrics_port, metrics_top_tenants
        }
    }

    struct Logging: Decodable {
        var format: String?
        var level: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, level
        }
    }

    struct Retention: Decodable {
        var runs: String?
        var events: String?
        var ledger: String?
        var interval: String?
        var batch_size: Int?
        var pause: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case runs, events, ledger, interval, batch_size, pause
        }
    }

    struct Limits: Decodable {
        var runs_per_second: Double?
        var run_burst: Int?
        var max_running_steps: Int?
        var event_streams: Int?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case runs_per_second, run_burst, max_running_steps, event_streams
        }
    }

    struct Database: Decodable {
        var max_connections: Int?
        var acquire_timeout: String?
        var statement_timeout: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case max_connections, acquire_timeout, statement_timeout
        }
    }

    struct Gate: Decodable {
        var threshold: Double?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case threshold
        }
    }

    struct Egress: Decodable {
        var allow: [String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case allow
        }
    }

    struct Engine: Decodable {
        var concurrency: Int?
        var lease: String?
        var heartbeat: String?
        var poll: String?
        var max_fan_out: Int?
        var default_max_tokens: Int?
        var shutdown_grace: String?
        var max_step_runtime: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case concurrency, lease, heartbeat, poll, max_fan_out, default_max_tokens, shutdown_grace, max_step_runtime
        }
    }

    /// Refuses unknown keys at every level before decoding, so that a typo is named
    /// with its line rather than silently ignored.
    static func checkKeys(of node: Node, file: String) throws(ConfigurationError) {
        func keys<Keys: CodingKey & CaseIterable>(_: Keys.Type) -> [String] { Keys.allCases.map(\.stringValue) }
        try check(node, allowed: keys(CodingKeys.self), path: "", file: file)
        let sections: [(String, [String])] = [
            ("engine", keys(Engine.CodingKeys.self)), ("gate", keys(Gate.CodingKeys.self)), ("egress", keys(Egress.CodingKeys.self)),
            ("limits", keys(Limits.CodingKeys.self)), ("database", keys(Database.CodingKeys.self)),
            ("observability", keys(Observability.CodingKeys.self)), ("logging", keys(Logging.CodingKeys.self)),
            ("retention", keys(Retention.CodingKeys.self)),
        ]
        for (section, allowed) in sections {
            if let value = node[section] { try check(value, allowed: allowed, path: "\(section).", file: file) }
        }
        for (name, entry) in node["experts"]?.mapping ?? [:] {
            try check(entry, allowed: ExpertConfiguration.keys, path: "experts.\(name.string ?? "?").", file: file)
        }
    }

    /// Refuses keys a mapping does not know, naming the key, its line and the known ones.
    private static func check(_ node: Node, allowed: [String], path: String, file: String) throws(ConfigurationError) {
        guard let mapping = node.mapping else {
            throw ConfigurationError("\(file): \(path.isEmpty ? "the file" : String(path.dropLast())) must be a mapping")
        }
        for (key, _) in mapping {
            guard let name = key.string, !allowed.contains(name) else { continue }
            let line = key.mark.map { ":\($0.line)" } ?? ""
            throw ConfigurationError("\(file)\(line): unknown key `\(path)\(name)` (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// The configuration these values make, every value checked against its range.
    func configuration(file: String) throws(ConfigurationError) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        if let host { configuration.host = host }
        if let port {
            guard (0...65535).contains(port) else { throw ConfigurationError("\(file): port must be 0-65535") }
            configuration.port = port
        }
        configuration.databaseURL = database_url
        configuration.adminKey = admin_key
        configuration.experts = experts ?? [:]
        for (name, entry) in configuration.experts.sorted(by: { $0.key < $1.key }) {
            do {
                try entry.validate(name: name)
            } catch {
                throw ConfigurationError("\(file): \(error.message)")
            }
        }
        if let threshold = gate?.threshold {
            guard threshold.isFinite, (-1...1).contains(threshold) else {
                throw ConfigurationError("\(file): gate.threshold must be a number from -1 to 1 (higher sends fewer steps to pro)")
            }
            configuration.engine.gateThreshold = threshold
        }
        if let allow = egress?.allow {
            do {
                configuration.egress = try EgressPolicy(allowing: allow)
            } catch {
                throw ConfigurationError("\(file): egress.allow: \(error)")
            }
        }
        try limits?.apply(to: &configuration, file: file)
        try database?.apply(to: &configuration, file: file)
        try engine?.apply(to: &configuration, file: file)
        try observability?.apply(to: &configuration, file: file)
        try logging?.apply(to: &configuration, file: file)
        try retention?.apply(to: &configuration, file: file)
        return configuration
    }
}

extension RawConfiguration.Limits {
    func apply(to configuration: inout ServerConfiguration, file: String) throws(ConfigurationError) {
        if let rate = runs_per_second {
            guard rate.isFinite, rate > 0 else { throw ConfigurationError("\(file): limits.runs_per_second must be a positive number") }
            configuration.runsPerSecond = rate
        }
        if let burst = run_burst {
            guard burst >= 1 else { throw ConfigurationError("\(file): limits.run_burst must be at least 1") }
            configuration.runBurst = burst
        }
        if let steps = max_running_steps {
            guard steps >= 1 else { throw ConfigurationError("\(file): limits.max_running_steps must be at least 1") }
            configuration.engine.maxRunningStepsPerTenant = steps
        }
        if let streams = event_streams {
            guard (1...100_000).contains(streams) else { throw ConfigurationError("\(file): limits.event_streams must be 1 to 100000") }
            configuration.engine.maxEventStreamsPerTenant = streams
        }
    }
}

extension RawConfiguration.Database {
    func apply(to configuration: inout ServerConfiguration, file: String) throws(ConfigurationError) {
        if let connections = max_connections {
            guard (2...10_000).contains(connections) else { throw ConfigurationError("\(file): database.max_connections must be 2 to 10000") }
            configuration.databasePool.maxConnections = connections
        }
        let duration = ConfigurationDuration(file: file)
        if let span = try duration.read(acquire_timeout, "database.acquire_timeout", from: .milliseconds(100), to: .seconds(600), like: "5s") {
            configuration.databasePool.acquireTimeout = span
        }
        if let span = try duration.read(statement_timeout, "database.statement_timeout", from: .milliseconds(100), to: .seconds(3600), like: "10s") {
            configuration.databasePool.statementTimeout = span
        }
    }
}

extension RawConfiguration.Observability {
    func apply(to configuration: inout ServerConfiguration, file: String) throws(ConfigurationError) {
        if let port = metrics_port {
            guard (0...65535).contains(port) else { throw ConfigurationError("\(file): observability.metrics_port must be 0-65535") }
            configuration.metricsPort = port
        }
        if let top = metrics_top_tenants {
            guard (1...1000).contains(top) else { throw ConfigurationError("\(file): observability.metrics_top_tenants must be 1 to 1000") }
            configuration.metricsTopTenants = top
        }
    }
}

extension RawConfiguration.Logging {
    func apply(to configuration: inout ServerConfiguration, file: String) throws(ConfigurationError) {
        if let format {
            guard let parsed = LogFormat(rawValue: format) else { throw ConfigurationError("\(file): logging.format must be text or json") }
            configuration.logFormat = parsed
        }
        if let level {
            guard let parsed = Logger.Level(rawValue: level) else {
                throw ConfigurationError(
                    "\(file): logging.level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            configuration.logLevel = parsed
        }
    }
}

extension RawConfiguration.Retention {
    func apply(to configuration: inout ServerConfiguration, file: String) throws(ConfigurationError) {
        func period(_ text: String?, _ key: String) throws(ConfigurationError) -> RetentionPeriod? {
            guard let text else { return nil }
            guard let period = RetentionPeriod.parse(text), period.isValidSetting else {
                throw ConfigurationError(
                    "\(file): retention.\(key) must be forever, a number of days like 30d, or a duration of at least 1h like 12h")
            }
            return period
        }
        if let runs = try period(runs, "runs") { configuration.retention.runs = runs }
        if let events = try period(events, "events") { configuration.retention.events = events }
        if let ledger = try period(ledger, "ledger") {
            if let milliseconds = ledger.milliseconds, milliseconds < RetentionConfiguration.minimumLedger.milliseconds {
                throw ConfigurationError("\(file): retention.ledger must be forever or at least 62d (budgets sum this month's ledger)")
            }
            configuration.retention.ledger = ledger
        }
        let duration = ConfigurationDuration(file: file)
        if let span = try duration.read(interval, "retention.interval", to: .seconds(86_400), like: "10m") {
            configuration.retention.interval = span
        }
        if let span = try duration.read(pause, "retention.pause", to: .seconds(60), like: "200ms") {
            configuration.retention.pause = span
        }
        if let batch = batch_size {
            guard (1...100_000).contains(batch) else { throw ConfigurationError("\(file): retention.batch_size must be 1 to 100000") }
            configuration.retention.batchSize = batch
        }
    }
}

extension RawConfiguration.Engine {
    func apply(to configuration: inout ServerConfiguration, file: String) throws(ConfigurationError) {
        if let concurrency {
            guard concurrency > 0 else { throw ConfigurationError("\(file): engine.concurrency must be positive") }
            configuration.engine.concurrency = concurrency
        }
        let duration = ConfigurationDuration(file: file)
        if let span = try duration.read(lease, "engine.lease", from: .milliseconds(500), like: "30s") {
            configuration.engine.lease = span
        }
        if let span = try duration.read(heartbeat, "engine.heartbeat", from: .milliseconds(100), like: "10s") {
            configuration.engine.heartbeatInterval = span
        }
        if let span = try duration.read(poll, "engine.poll", from: .milliseconds(10), like: "1s") {
            configuration.engine.idlePoll = span
            configuration.engine.maintenanceInterval = span
        }
        if let fanOut = max_fan_out {
            guard (1...1_000_000).contains(fanOut) else { throw ConfigurationError("\(file): engine.max_fan_out must be 1 to 1000000") }
            configuration.engine.maxFanOut = fanOut
        }
        if let span = try duration.read(shutdown_grace, "engine.shutdown_grace", to: .seconds(3600), like: "30s") {
            configuration.engine.shutdownGrace = span
        }
        if let span = try duration.read(max_step_runtime, "engine.max_step_runtime", from: .seconds(1), like: "1h") {
            configuration.engine.maxStepRuntime = span
        }
        if let maxTokens = default_max_tokens {
            guard (1...1_000_000).contains(maxTokens) else {
                throw ConfigurationError("\(file): engine.default_max_tokens must be 1 to 1000000")
            }
            configuration.engine.defaultMaxTokens = maxTokens
        }
    }
}

/// Reads a duration key (`500ms`, `10s`, `1m`) within its bounds: the one way the
/// configuration file's durations are parsed.
private struct ConfigurationDuration {
    var file: String

    /// The value, or nil when the key is absent; out of bounds or unreadable is an error
    /// naming the key, its bounds and an example.
    func read(
        _ text: String?, _ key: String, from low: Duration = .zero, to high: Duration? = nil, like example: String
    ) throws(ConfigurationError)
        -> Duration?
    {
        guard let text else { return nil }
        guard let span = TimeSpan.parse(text), span.duration >= low, high.map({ span.duration <= $0 }) ?? true else {
            let range = high.map { " from \(TimeSpan(low)) to \(TimeSpan($0))" } ?? " of at least \(TimeSpan(low))"
            throw ConfigurationError("\(file): \(key) must be a duration\(range), like \(example)")
        }
        return span.duration
    }
}
