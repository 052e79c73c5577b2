import Foundation
import Prometheus
import Tracing

/// What one server process reports about itself: its metrics (a Prometheus registry of
/// its own, so that several servers in one process — the tests — never share or
/// double-count) and its tracer (OpenTelemetry when configured, else a no-op).
///
/// Nothing here is process-global: `MetricsSystem` and `InstrumentationSystem` are not
/// bootstrapped by the library, so a test can run many servers, each with its own
/// registry and tracer. The engine and the HTTP edge receive this value explicitly.
public struct Observability: Sendable {
    public let metrics: SwitchyardMetrics
    /// Spans of runs, step attempts and calls. A `NoOpTracer` unless tracing is on.
    public let tracer: any Tracer
    /// Whether spans are exported; when false the span helpers skip their work.
    public let tracingEnabled: Bool
    /// Each run's trace, for the step attempts this process runs.
    public let runTraces: RunTraces

    /// Metrics in a new registry of their own; tracing off.
    public init() {
        self.init(metrics: SwitchyardMetrics(), tracer: nil)
    }

    /// `tracer` nil: tracing off.
    public init(metrics: SwitchyardMetrics, tracer: (any Tracer)?) {
        self.metrics = metrics
        self.tracer = tracer ?? NoOpTracer()
        self.tracingEnabled = tracer != nil
        self.runTraces = RunTraces()
    }
}
