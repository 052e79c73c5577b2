import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// The server's metric handles, created against one explicit Prometheus registry (never
/// the process-global `MetricsSystem`), so that each server reports its own figures and
/// `GET /metrics` renders exactly that registry. Handles with a label that varies (an
/// expert, a step kind, an error code) are made once per label value and kept; every
/// label takes values from a small set (experts from the configuration, kinds and codes
/// from the product's vocabulary), so cardinality is bounded.
///
/// Recording is a lock-free atomic add in swift-prometheus, plus one dictionary lookup
/// under a mutex for labelled handles: cheap enough for thousands of steps per second.
public final class SwitchyardMetrics: Sendable {
    /// What `GET /metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let counters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let floatingCounters = Mutex<[String: CoreMetrics.FloatingPointCounter]>([:])
    private let timers = Mutex<[String: CoreMetrics.Timer]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        let seconds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
        factory.defaultDurationHistogramBuckets = seconds.map { Duration.milliseconds(Int64($0 * 1000)) }
        self.factory = factory
    }

    /// The registry's metrics in the Prometheus text format.
    public func exposition() -> String {
        registry.emitToString()
    }

    // MARK: Engine

    /// Steps claimed by this process's dispatcher.
    public func stepsClaimed(_ count: Int) {
        counter(MetricName.stepsClaimed, []).increment(by: count)
    }

    /// One attempt of a step of `kind` ended after `duration`, failed with `failureCode`
    /// (nil when it did not fail).
    public func stepAttempt(kind: String, duration: Duration, outcome: String, failureCode: String?) {
        counter(MetricName.stepAttempts, [("kind", kind), ("outcome", outcome)]).increment()
        timer(MetricName.stepDuration, [("kind", kind)]).recordNanoseconds(duration.nanoseconds)
        if let failureCode {
            counter(MetricName.stepFailures, [("code", failureCode)]).increment()
        }
    }

    /// Leases found expired by the maintenance sweep (their steps run again).
    public func leasesExpired(_ count: Int) {
        guard count > 0 else { return }
        counter(MetricName.leaseExpiries, []).increment(by: count)
    }

    /// A completion fenced out: another attempt had taken the step over.
    public func completionFenced() {
        counter(MetricName.fencedCompletions, []).increment()
    }

    /// One model call ended (`outcome`: `ok` or `error`).
    public func modelCall(
        expert: String, outcome: String, latency: Duration, promptTokens: Int, completionTokens: Int, costUSD: Double?
    ) {
        let dimensions = [("expert", expert)]
        counter(MetricName.modelCalls, dimensions + [("outcome", outcome)]).increment()
        timer(MetricName.modelLatency, dimensions).recordNanoseconds(latency.nanoseconds)
        if promptTokens > 0 { counter(MetricName.modelTokens, dimensions + [("direction", "prompt")]).increment(by: promptTokens) }
        if completionTokens > 0 {
            counter(MetricName.modelTokens, dimensions + [("direction", "completion")]).increment(by: completionTokens)
        }
        if let costUSD, costUSD > 0 { floatingCounter(MetricName.modelCost, dimensions).increment(by: costUSD) }
    }

    /// A model call the tenant's budget refused before it was sent.
    public func budgetRefused(expert: String) {
        counter(MetricName.budgetRefusals, [("expert", expert)]).increment()
    }

    /// One tool call ended.
    public func toolCall(outcome: String, latency: Duration) {
        counter(MetricName.toolCalls, [("outcome", outcome)]).increment()
        timer(MetricName.toolLatency, []).recordNanoseconds(latency.nanoseconds)
    }

    // MARK: HTTP

    /// One HTTP request answered.
    public func httpRequest(method: String, status: Int) {
        counter(MetricName.httpRequests, [("method", method), ("status", String(status))]).increment()
    }

    /// A request refused by a fair-use limit (`rate_limited`, `too_many_streams`).
    public func rateLimitRefused(code: String) {
        counter(MetricName.rateLimitRefusals, [("code", code)]).increment()
    }

    // MARK: Handles

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(into: label) { $0 += "\u{0}\($1.0)=\($1.1)" }
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let key = Self.key(label, dimensions)
        if let handle = counters.withLock({ $0[key] }) { return handle }
        let handle = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
        counters.withLock { $0[key] = handle }
        return handle
    }

    private func floatingCounter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.FloatingPointCounter {
        let key = Self.key(label, dimensions)
        if let handle = floatingCounters.withLock({ $0[key] }) { return handle }
        let handle = CoreMetrics.FloatingPointCounter(label: label, dimensions: dimensions, factory: factory)
        floatingCounters.withLock { $0[key] = handle }
        return handle
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        let key = Self.key(label, dimensions)
        if let handle = timers.withLock({ $0[key] }) { return handle }
        let handle = CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory)
        timers.withLock { $0[key] = handle }
        return handle
    }
}

/// The metric names, as `GET /metrics` shows them (README, "Observability", lists each).
public enum MetricName {
    public static let stepsClaimed = "switchyard_steps_claimed_total"
    public static let stepAttempts = "switchyard_step_attempts_total"
    public static let stepDuration = "switchyard_step_duration_seconds"
    public static let stepFailures = "switchyard_step_failures_total"
    public static let leaseExpiries = "switchyard_lease_expiries_total"
    public static let fencedCompletions = "switchyard_fenced_completions_total"
    public static let modelCalls = "switchyard_model_calls_total"
    public static let modelLatency = "switchyard_model_call_duration_seconds"
    public static let modelTokens = "switchyard_model_tokens_total"
    public static let modelCost = "switchyard_model_cost_usd_total"
    public static let budgetRefusals = "switchyard_budget_refusals_total"
    public static let toolCalls = "switchyard_tool_calls_total"
    public static let toolLatency = "switchyard_tool_call_duration_seconds"
    public static let httpRequests = "switchyard_http_requests_total"
    public static let rateLimitRefusals = "switchyard_rate_limit_refusals_total"
    public static let queueReadySteps = "switchyard_queue_ready_steps"
    public static let queueOldestReadyAge = "switchyard_queue_oldest_ready_age_seconds"
    public static let openEventStreams = "switchyard_event_streams_open"
    public static let runningSteps = "switchyard_steps_running"
    public static let databaseCallsInFlight = "switchyard_db_pool_calls_in_flight"
    public static let databasePoolSize = "switchyard_db_pool_max_connections"
    public static let databaseCalls = "switchyard_db_calls_total"
    public static let databaseUnavailable = "switchyard_db_unavailable_total"
}

/// Gauges read when `/metrics` is scraped (queue depth from one query, pool and stream
/// counts from memory), rendered in the Prometheus text format after the registry's
/// own metrics. Rendered fresh each scrape, so a tenant that left the top N leaves no
/// stale series behind.
public struct ScrapeGauges: Sendable {
    public struct Sample: Sendable {
        public var labels: [(String, String)]
        public var value: Double
        public init(labels: [(String, String)] = [], _ value: Double) {
            self.labels = labels
            self.value = value
        }
    }

    private var families: [(name: String, type: String, samples: [Sample])] = []

    public init() {}

    public mutating func add(_ name: String, type: String = "gauge", _ samples: [Sample]) {
        families.append((name, type, samples))
    }

    /// The Prometheus text exposition of these gauges.
    public func render() -> String {
        var text = ""
        for family in families {
            text += "# TYPE \(family.name) \(family.type)\n"
            for sample in family.samples {
                text += family.name
                if !sample.labels.isEmpty {
                    text += "{" + sample.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
                }
                text += " \(Self.format(sample.value))\n"
            }
        }
        return text
    }

    static func escape(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating (a duration of centuries is not a latency).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
