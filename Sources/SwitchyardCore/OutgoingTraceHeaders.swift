/// The W3C trace headers (`traceparent`, `tracestate`) an outgoing call made by the
/// current task should carry: the engine binds them around a model or tool call, and the
/// HTTP providers and tools add them to their requests. Empty when tracing is off.
///
/// A task-local rather than a parameter so that the experts' and tools' signatures stay
/// free of tracing, which lives in the engine (docs/ARCHITECTURE.md).
public enum OutgoingTraceHeaders {
    @TaskLocal public static var current: [String: String] = [:]
}
