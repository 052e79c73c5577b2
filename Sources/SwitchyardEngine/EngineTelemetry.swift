import Foundation
import Logging
import SwitchyardCore
import SwitchyardMetering
import SwitchyardObservability
import SwitchyardStore
import Tracing

/// The engine's instrumentation in one place: metrics, spans and the per-transition log
/// lines, each called with one line from the code it observes, so that the hot path keeps
/// its shape. Metrics are in-memory counters (no database query per step); spans are
/// skipped entirely when tracing is off.
struct EngineTelemetry: Sendable {
    let observability: Observability
    let logger: Logger

    /// No exporter, a registry nobody reads: for engines built without observability.
    static let disabled = EngineTelemetry(observability: Observability(), logger: Logger(label: "switchyard.engine"))

    var metrics: SwitchyardMetrics { observability.metrics }

    // MARK: Dispatch and commit

    /// The dispatcher claimed `count` steps.
    func claimed(_ count: Int) {
        metrics.stepsClaimed(count)
    }

    /// The maintenance sweep returned `count` steps with expired leases to the queue.
    func leasesExpired(_ count: Int) {
        metrics.leasesExpired(count)
        if count > 0 { logger.info("step leases expired; the steps run again", metadata: ["steps": "\(count)"]) }
    }

    /// A completion was fenced out (expected: another attempt had taken the step over).
    func fenced(_ claim: ClaimedStep) {
        metrics.completionFenced()
        logger.notice("a completion was fenced out", metadata: Self.metadata(claim))
    }

    /// A step's transition was committed: one info line, and one more when the run ended.
    func committed(_ claim: ClaimedStep, _ transition: StepTransition, runFinished: RunStatus?) {
        var metadata = Self.metadata(claim)
        let status: String
        switch transition {
        case .succeeded(_, let expert):
            status = "succeeded"
            if let expert { metadata["expert"] = "\(expert)" }
        case .skipped:
            status = "skipped"
        case .failed(let error, _, _):
            status = "failed"
            metadata["error_code"] = "\(error.code)"
        case .retry(let error, let delay, _):
            status = "retrying"
            metadata["error_code"] = "\(error.code)"
            metadata["delay"] = "\(delay)"
        case .wait(let signal, _):
            status = "waiting"
            metadata["signal"] = "\(signal)"
        }
        metadata["status"] = "\(status)"
        logger.info("step \(status)", metadata: metadata)
        if let runFinished {
            observability.runTraces.forget(claim.runID)
            logger.info(
                "run \(runFinished.rawValue)",
                metadata: [
                    "run": "\(claim.runID.lowercasedString)", "tenant": "\(claim.tenantID.lowercasedString)",
                    "workflow": "\(claim.workflow)", "status": "\(runFinished.rawValue)",
                ])
        }
    }

    // MARK: Attempts

    /// Runs one attempt inside its span (a child of the run's), and records its
    /// duration, its outcome and its failure code.
    func attempt(_ claim: ClaimedStep, kind: String, _ body: () async -> AttemptVerdict) async -> AttemptVerdict {
        var metadata = Self.metadata(claim)
        metadata["kind"] = "\(kind)"
        logger.info("step started", metadata: metadata)
        let start = ContinuousClock.now
        let verdict: AttemptVerdict
        var span: (any Span)?
        if observability.tracingEnabled {
            let attemptSpan = observability.startSpan("step.attempt", context: runContext(claim))
            attemptSpan.updateAttributes { attributes in
                Self.setRunAttributes(&attributes, claim)
                attributes[SpanAttributeName.step] = claim.stepID
                attributes[SpanAttributeName.stepKind] = kind
                attributes[SpanAttributeName.attempt] = claim.attempt
            }
            span = attemptSpan
            verdict = await ServiceContext.withValue(attemptSpan.context) { await body() }
        } else {
            verdict = await body()
        }
        let (outcome, code) = Self.outcome(of: verdict)
        metrics.stepAttempt(kind: kind, duration: .now - start, outcome: outcome, failureCode: code)
        if let span {
            span.attributes[SpanAttributeName.outcome] = outcome
            if let code {
                span.attributes[SpanAttributeName.errorCode] = code
                span.setStatus(SpanStatus(code: .error, message: code))
            }
            span.end()
        }
        return verdict
    }

    /// A step kind's label: `model` for a `prompt:` step, else its YAML keyword.
    static func kind(of kind: StepKind?) -> String {
        switch kind {
        case .model: "model"
        case let kind?: kind.keyword
        case nil: "unknown"
        }
    }

    static func outcome(of verdict: AttemptVerdict) -> (outcome: String, failureCode: String?) {
        switch verdict {
        case .abandon: ("abandoned", nil)
        case .waitForDatabase(let error): ("database_unavailable", error.code)
        case .commit(.succeeded): ("succeeded", nil)
        case .commit(.skipped): ("skipped", nil)
        case .commit(.wait): ("waiting", nil)
        case .commit(.retry(let error, _, _)): ("retry", error.code)
        case .commit(.failed(let error, _, _)): ("failed", error.code)
        }
    }

    /// The run's trace context: the trigger's `run` span when this process created the
    /// run, else a `run` span opened here for it (once per run and process).
    private func runContext(_ claim: ClaimedStep) -> ServiceContext {
        // Without a tracer there is no trace to keep: a run waiting for days holds nothing here.
        guard observability.tracingEnabled else { return .topLevel }
        if let context = observability.runTraces.context(of: claim.runID) { return context }
        let span = observability.startSpan("run", context: .topLevel)
        span.updateAttributes { Self.setRunAttributes(&$0, claim) }
        span.end()
        observability.runTraces.record(span.context, for: claim.runID)
        return observability.runTraces.context(of: claim.runID) ?? span.context
    }

    private static func setRunAttributes(_ attributes: inout SpanAttributes, _ claim: ClaimedStep) {
        attributes[SpanAttributeName.tenant] = claim.tenantID.lowercasedString
        attributes[SpanAttributeName.run] = claim.runID.lowercasedString
        attributes[SpanAttributeName.workflow] = claim.workflow
        attributes[SpanAttributeName.workflowVersion] = claim.version
    }

    static func metadata(_ claim: ClaimedStep) -> Logger.Metadata {
        [
            "run": "\(claim.runID.lowercasedString)", "tenant": "\(claim.tenantID.lowercasedString)",
            "workflow": "\(claim.workflow)", "step": "\(claim.stepID)", "attempt": "\(claim.attempt)",
        ]
    }

    // MARK: Calls

    /// A model or tool call in progress: its span, and the trace headers it sends.
    struct Call: Sendable {
        let span: (any Span)?
        let start: ContinuousClock.Instant
        let headers: [String: String]

        /// Runs `body` with the call's span current and its headers bound for outgoing
        /// HTTP requests.
        func propagating<T: Sendable, E: Error>(_ body: () async throws(E) -> T) async throws(E) -> T {
            guard let span else { return try await body() }
            let result: Result<T, E> = await ServiceContext.withValue(span.context) {
                await OutgoingTraceHeaders.$current.withValue(headers) {
                    do throws(E) {
                        return .success(try await body())
                    } catch {
                        return .failure(error)
                    }
                }
            }
            return try result.get()
        }
    }

    private func startCall(_ name: String, claim: ClaimedStep, _ attributes: (inout SpanAttributes) -> Void) -> Call {
        guard observability.tracingEnabled else { return Call(span: nil, start: .now, headers: [:]) }
        let span = observability.startSpan(name, context: ServiceContext.current ?? runContext(claim), kind: .client)
        span.updateAttributes { all in
            Self.setRunAttributes(&all, claim)
            all[SpanAttributeName.step] = claim.stepID
            all[SpanAttributeName.attempt] = claim.attempt
            attributes(&all)
        }
        return Call(span: span, start: .now, headers: observability.outgoingHeaders(for: span.context))
    }

    /// A model call is about to be sent (after its budget reservation was admitted).
    func startModelCall(expert: String, model: String, claim: ClaimedStep, index: Int) -> Call {
        startCall("model.call", claim: claim) {
            $0[SpanAttributeName.expert] = expert
            $0[SpanAttributeName.model] = model
            $0[SpanAttributeName.callIndex] = index
        }
    }

    /// A model call ended: its tokens, cost and latency, by expert.
    func finishModelCall(_ call: Call, record: ModelCallRecord) {
        let latency = ContinuousClock.now - call.start
        let cost = record.cost.map { Double($0.picoUSD) / 1e12 }
        metrics.modelCall(
            expert: record.expert, outcome: record.succeeded ? "ok" : "error", latency: latency, promptTokens: record.promptTokens,
            completionTokens: record.completionTokens, costUSD: cost)
        guard let span = call.span else { return }
        span.updateAttributes { attributes in
            attributes[SpanAttributeName.model] = record.model
            attributes[SpanAttributeName.promptTokens] = record.promptTokens
            attributes[SpanAttributeName.completionTokens] = record.completionTokens
            if let cost { attributes[SpanAttributeName.costUSD] = cost }
            attributes[SpanAttributeName.outcome] = record.succeeded ? "ok" : "error"
        }
        if let error = record.error { span.setStatus(SpanStatus(code: .error, message: error)) }
        span.end()
    }

    /// The tenant's budget refused a model call before it was sent.
    func budgetRefused(expert: String, claim: ClaimedStep) {
        metrics.budgetRefused(expert: expert)
        var metadata = Self.metadata(claim)
        metadata["expert"] = "\(expert)"
        logger.info("a model call was refused by the tenant's budget", metadata: metadata)
    }

    /// A tool call is about to be made.
    func startToolCall(_ tool: String, claim: ClaimedStep) -> Call {
        startCall("tool.call", claim: claim) { $0[SpanAttributeName.tool] = tool }
    }

    /// A tool call ended.
    func finishToolCall(_ call: Call, error: String?) {
        metrics.toolCall(outcome: error == nil ? "ok" : "error", latency: .now - call.start)
        guard let span = call.span else { return }
        span.attributes[SpanAttributeName.outcome] = error == nil ? "ok" : "error"
        if let error { span.setStatus(SpanStatus(code: .error, message: error)) }
        span.end()
    }
}
