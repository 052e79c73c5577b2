import Foundation
import Hummingbird
import Logging
import NIOCore
import SwitchyardAPI
import SwitchyardCore
import SwitchyardEngine
import SwitchyardObservability
import SwitchyardStore
import Synchronization
import Tracing

/// `GET /metrics`: the server's metrics in the Prometheus text format. On the API port
/// only the admin key reads it (a tenant key is 403, no key 401); on the optional
/// metrics port (`observability.metrics_port`) anyone who can reach the port does.
struct MetricsRoutes {
    let api: APIDependencies

    /// The admin-only route on the API router.
    func add(to router: Router<AppRequestContext>) {
        router.group(context: AdminRequestContext.self).get("metrics") { _, _ in
            try await render()
        }
    }

    /// The open route of the metrics port.
    func add<Context: RequestContext>(open router: Router<Context>) {
        router.get("metrics") { _, _ in
            try await render()
        }
    }

    /// The registry's metrics, then the gauges read now: ready work per tenant (one
    /// query), open event streams, running steps and the pool's calls (from memory).
    func render() async throws -> Response {
        var gauges = ScrapeGauges()
        let queues = try await QueueStatistics(database: api.database).readyQueues(top: api.metricsTopTenants)
        gauges.add(MetricName.queueReadySteps, queues.map { .init(labels: [("tenant", $0.tenant)], Double($0.readySteps)) })
        gauges.add(MetricName.queueOldestReadyAge, queues.map { .init(labels: [("tenant", $0.tenant)], $0.oldestReadyAge) })
        gauges.add(MetricName.openEventStreams, [.init(Double(api.events.openStreams))])
        gauges.add(MetricName.runningSteps, [.init(Double(api.runningSteps()))])
        let statistics = api.database.statistics
        gauges.add(MetricName.databaseCallsInFlight, [.init(Double(statistics.callsInFlight))])
        gauges.add(MetricName.databasePoolSize, [.init(Double(api.database.configuration.maxConnections))])
        gauges.add(MetricName.databaseCalls, type: "counter", [.init(Double(statistics.callCount))])
        gauges.add(MetricName.databaseUnavailable, type: "counter", [.init(Double(statistics.unavailableCount))])
        var text = api.observability.metrics.exposition()
        text += gauges.render()
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Who a request turned out to be, filled in by `AuthenticationMiddleware` for the
/// request's log line (middleware further in cannot hand values back out otherwise).
public final class RequestNote: Sendable {
    private let state = Mutex<(tenant: UUID?, run: UUID?)>((nil, nil))

    init() {}

    var tenant: UUID? {
        get { state.withLock { $0.tenant } }
        set { state.withLock { $0.tenant = newValue } }
    }

    var run: UUID? {
        get { state.withLock { $0.run } }
        set { state.withLock { $0.run = newValue } }
    }
}

/// One info line per request (method, path, status, duration, tenant and run ids when
/// known), the request counter, and the count of fair-use refusals (429). Outermost, so
/// that it sees every answer, errors included.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let metrics: SwitchyardMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let note = RequestNote()
        context.requestNote = note
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            record(request, status: Int(response.status.code), code: nil, note: note, start: start, logger: context.logger)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            record(request, status: Int(status), code: (error as? APIError)?.code.rawValue, note: note, start: start, logger: context.logger)
            throw error
        }
    }

    private func record(_ request: Request, status: Int, code: String?, note: RequestNote, start: ContinuousClock.Instant, logger: Logger) {
        metrics.httpRequest(method: request.method.rawValue, status: status)
        if status == 429, let code { metrics.rateLimitRefused(code: code) }
        var metadata: Logger.Metadata = [
            "method": "\(request.method.rawValue)", "path": "\(request.uri.path)", "status": "\(status)",
            "duration_ms": "\((ContinuousClock.now - start).inMillisecondsDouble)",
        ]
        if let tenant = note.tenant { metadata["tenant"] = "\(tenant.lowercasedString)" }
        if let run = note.run ?? Self.runID(in: request.uri.path) { metadata["run"] = "\(run.lowercasedString)" }
        if let code { metadata["error_code"] = "\(code)" }
        logger.info("request", metadata: metadata)
    }

    /// The run a `/v1/runs/{id}…` path names.
    static func runID(in path: String) -> UUID? {
        let parts = path.split(separator: "/")
        guard parts.count >= 3, parts[0] == "v1", parts[1] == "runs" else { return nil }
        return UUID(uuidString: String(parts[2]))
    }
}

extension Duration {
    fileprivate var inMillisecondsDouble: Double {
        let (seconds, attoseconds) = components
        return (Double(seconds) * 1000 + Double(attoseconds) / 1e15).rounded(toPlaces: 3)
    }
}

extension Double {
    fileprivate func rounded(toPlaces places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (self * scale).rounded() / scale
    }
}

/// The `run` span of a trigger: a child of the caller's `traceparent` (W3C Trace
/// Context) when the request has one, recorded as the run's trace so that every step
/// attempt this process runs is its child. Ended once the run exists.
struct RunTrace {
    private let observability: Observability
    private let span: (any Span)?

    init(_ observability: Observability, request: Request, tenant: UUID, workflow: String, version: Int) {
        self.observability = observability
        guard observability.tracingEnabled else {
            self.span = nil
            return
        }
        var headers: [String: String] = [:]
        for field in request.headers where ["traceparent", "tracestate"].contains(field.name.canonicalName) {
            headers[field.name.canonicalName] = field.value
        }
        let span = observability.startSpan("run", context: observability.incomingContext(headers), kind: .server)
        span.updateAttributes { attributes in
            attributes[SpanAttributeName.tenant] = tenant.lowercasedString
            attributes[SpanAttributeName.workflow] = workflow
            attributes[SpanAttributeName.workflowVersion] = version
        }
        self.span = span
    }

    /// The run exists (`new`: created by this request, not an idempotent replay).
    func created(_ run: UUID, new: Bool) {
        guard let span else { return }
        span.attributes[SpanAttributeName.run] = run.lowercasedString
        if new { observability.runTraces.record(span.context, for: run) }
        span.end()
    }

    /// No run was created: the span ends with the error, so no trigger leaves one open.
    func failed(_ error: any Error) {
        guard let span else { return }
        span.recordError(error)
        span.setStatus(SpanStatus(code: .error, message: String(describing: error)))
        span.end()
    }
}
