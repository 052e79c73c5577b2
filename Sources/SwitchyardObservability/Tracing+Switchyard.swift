import Foundation
import Synchronization
import Tracing

/// Each run's trace context, as far as this process knows it: the `run` span the
/// trigger opened (in this process) or the one this process opened for the run's first
/// step it ran. Step attempts are children of it, so a run's spans form one trace.
///
/// Bounded (the oldest entries go first) and in memory only: no database query per step.
/// A run whose steps another process runs without having seen the trigger starts a trace
/// of its own there (linked to the run by `switchyard.run_id`).
public final class RunTraces: Sendable {
    private let state = Mutex<(contexts: [UUID: ServiceContext], order: [UUID], head: Int)>(([:], [], 0))
    private let capacity: Int

    public init(capacity: Int = 50_000) {
        self.capacity = max(1, capacity)
    }

    /// The run's trace context, if this process has one.
    public func context(of run: UUID) -> ServiceContext? {
        state.withLock { $0.contexts[run] }
    }

    /// Records the run's context (the first recorded wins: one trace per run).
    public func record(_ context: ServiceContext, for run: UUID) {
        state.withLock { state in
            guard state.contexts[run] == nil else { return }
            if state.order.count < capacity {
                state.order.append(run)
            } else {
                state.contexts[state.order[state.head]] = nil
                state.order[state.head] = run
                state.head = (state.head + 1) % capacity
            }
            state.contexts[run] = context
        }
    }

    /// Forgets a finished run.
    public func forget(_ run: UUID) {
        _ = state.withLock { $0.contexts.removeValue(forKey: run) }
    }
}

/// Outgoing HTTP headers (`traceparent`, `tracestate`) as a dictionary, for the
/// tracer's `inject`.
public struct HeaderDictionaryInjector: Injector {
    public init() {}
    public func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

/// Incoming HTTP headers, looked up case-insensitively, for the tracer's `extract`.
public struct HeaderLookupExtractor: Extractor {
    public init() {}
    public func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key] ?? carrier.first { $0.key.caseInsensitiveCompare(key) == .orderedSame }?.value
    }
}

/// The span attribute names Switchyard sets (README, "Observability", lists each).
public enum SpanAttributeName {
    public static let tenant = "switchyard.tenant_id"
    public static let run = "switchyard.run_id"
    public static let workflow = "switchyard.workflow"
    public static let workflowVersion = "switchyard.workflow_version"
    public static let step = "switchyard.step"
    public static let stepKind = "switchyard.step_kind"
    public static let attempt = "switchyard.attempt"
    public static let outcome = "switchyard.outcome"
    public static let errorCode = "switchyard.error_code"
    public static let expert = "switchyard.expert"
    public static let model = "switchyard.model"
    public static let callIndex = "switchyard.call_index"
    public static let promptTokens = "switchyard.tokens.prompt"
    public static let completionTokens = "switchyard.tokens.completion"
    public static let costUSD = "switchyard.cost_usd"
    public static let tool = "switchyard.tool"
    public static let latencyMilliseconds = "switchyard.latency_ms"
}

extension Observability {
    /// Starts a span (a no-op span when tracing is off), child of `context`.
    public func startSpan(_ name: String, context: ServiceContext, kind: SpanKind = .internal) -> any Span {
        tracer.startSpan(name, context: context, ofKind: kind, at: DefaultTracerClock.now, function: #function, file: #fileID, line: #line)
    }

    /// The W3C trace headers to send with an outgoing call made within `context`; empty
    /// when tracing is off.
    public func outgoingHeaders(for context: ServiceContext) -> [String: String] {
        guard tracingEnabled else { return [:] }
        var headers: [String: String] = [:]
        tracer.inject(context, into: &headers, using: HeaderDictionaryInjector())
        return headers
    }

    /// The context an incoming request's `traceparent` (and `tracestate`) describes;
    /// top level when there is none, or tracing is off.
    public func incomingContext(_ headers: [String: String]) -> ServiceContext {
        var context = ServiceContext.topLevel
        guard tracingEnabled else { return context }
        tracer.extract(headers, into: &context, using: HeaderLookupExtractor())
        return context
    }
}
