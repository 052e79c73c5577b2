import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardMetering
import SwitchyardObservability
import SwitchyardServer
import SwitchyardStore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `GET /metrics`, the OTLP export of spans and the log lines, each against a live
/// server (or engine) with its own registry, tracer and logger: nothing here is
/// process-global, so these tests run beside every other.
@Suite("Observability")
struct ObservabilityTests {
    static let answer = FakeDeepSeek.completion(
        content: "Paris.", model: "deepseek-v4-flash-0731", usage: FakeDeepSeek.usage(prompt: 1200, completion: 300, hit: 1024, reasoning: 220))

    static let workflow = """
        kind: Workflow
        name: capital
        steps:
          - id: ask
            prompt: "Capital of France?"
            model: flash
            max_tokens: 1000
          - id: shout
            needs: [ask]
            transform: "{{ steps.ask }}"
        """

    @Test("/metrics: admin key only (401 without a key, 403 with a tenant's), Prometheus text with the engine's and the API's figures")
    func metrics() async throws {
        try await FakeDeepSeek.with([.json(body: Self.answer)]) { fake in
            let experts = ["flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro")]
            try await withLiveServer(
                experts: experts,
                configure: {
                    $0.runsPerSecond = 0.001
                    $0.runBurst = 2
                }
            ) { server in
                let anonymous = try await server.request(.GET, "/metrics", key: nil)
                #expect(anonymous.status == 401)
                #expect(anonymous.errorCode == "unauthorized")
                let tenant = try await server.request(.GET, "/metrics", key: server.tenantKey)
                #expect(tenant.status == 403)
                #expect(tenant.errorCode == "forbidden")

                try await server.apply(Self.workflow, key: server.tenantKey)
                let run = try await server.startRun("capital")
                let finished = try await server.finishedRun(run)
                #expect(finished["status"] == "succeeded", "\(finished.compactJSON)")
                // A budget too small for the call's worst case: refused before it is sent.
                try await server.setBudget(Money(picoUSD: 100_000_000))
                let refused = try await server.startRun("capital")
                let failed = try await server.finishedRun(refused)
                #expect(failed["status"] == "failed", "\(failed.compactJSON)")
                // The burst of 2 is spent: the third run is refused by the rate limit.
                let limited = try await server.request(.POST, "/v1/workflows/capital/runs", key: server.tenantKey, json: ["input": [:]])
                #expect(limited.status == 429)

                let reply = try await server.request(.GET, "/metrics", key: server.adminKey)
                #expect(reply.status == 200)
                #expect(reply.headers.first(name: "content-type")?.hasPrefix("text/plain") == true)
                let metrics = PrometheusText(reply.text)
                #expect(metrics.value("switchyard_steps_claimed_total") == 3)
                #expect(metrics.value("switchyard_step_attempts_total", ["kind": "model", "outcome": "succeeded"]) == 1)
                #expect(metrics.value("switchyard_step_attempts_total", ["kind": "transform", "outcome": "succeeded"]) == 1)
                #expect(metrics.value("switchyard_step_attempts_total", ["kind": "model", "outcome": "failed"]) == 1)
                #expect(metrics.value("switchyard_step_failures_total", ["code": "budget_exceeded"]) == 1)
                #expect(metrics.value("switchyard_step_duration_seconds_count", ["kind": "model"]) == 2)
                #expect(metrics.value("switchyard_model_calls_total", ["expert": "flash", "outcome": "ok"]) == 1)
                #expect(metrics.value("switchyard_model_call_duration_seconds_count", ["expert": "flash"]) == 1)
                #expect(metrics.value("switchyard_model_tokens_total", ["expert": "flash", "direction": "prompt"]) == 1200)
                #expect(metrics.value("switchyard_model_tokens_total", ["expert": "flash", "direction": "completion"]) == 300)
                #expect((metrics.value("switchyard_model_cost_usd_total", ["expert": "flash"]) ?? 0) > 0)
                #expect(metrics.value("switchyard_budget_refusals_total", ["expert": "flash"]) == 1)
                #expect(metrics.value("switchyard_rate_limit_refusals_total", ["code": "rate_limited"]) == 1)
                #expect((metrics.value("switchyard_http_requests_total", ["method": "POST", "status": "202"]) ?? 0) >= 2)
                #expect(metrics.value("switchyard_event_streams_open") == 0)
                #expect(metrics.value("switchyard_db_pool_max_connections") != nil)
                #expect((metrics.value("switchyard_db_pool_calls_in_flight") ?? -1) >= 0)
                #expect(metrics.types["switchyard_queue_ready_steps"] == "gauge")
                #expect(metrics.types["switchyard_queue_oldest_ready_age_seconds"] == "gauge")
                #expect(metrics.types["switchyard_step_duration_seconds"] == "histogram")
            }
        }
    }

    @Test("observability.metrics_port: /metrics on a second port, without a key")
    func metricsPort() async throws {
        let port = try Self.freeLoopbackPort()
        let configure: @Sendable (inout ServerConfiguration) -> Void = { $0.metricsPort = port }
        try await withLiveServer(configure: configure) { server in
            let deadline = ContinuousClock.now + .seconds(10)
            var text: String?
            while text == nil, ContinuousClock.now < deadline {
                do {
                    let response = try await HTTPClient.shared.execute(
                        HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(10))
                    #expect(response.status.code == 200)
                    text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                } catch {
                    try await Task.sleep(for: .milliseconds(50))  // not listening yet
                }
            }
            let metrics = PrometheusText(try #require(text))
            #expect(metrics.types["switchyard_queue_ready_steps"] == "gauge")
            #expect(metrics.value("switchyard_event_streams_open") == 0)
            // The API port still wants the admin key.
            #expect(try await server.request(.GET, "/metrics", key: nil).status == 401)
        }
    }

    /// A loopback port nobody listens on now.
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("cannot bind on loopback") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test("queue depth per tenant: the top tenants by name, the rest summed as `other`")
    func queueDepth() async throws {
        try await withTestStore { store in
            try await store.apply(Self.workflow)
            for _ in 0..<3 { _ = try await store.start("capital") }
            let queues = try await QueueStatistics(database: store.database).readyQueues(top: 5)
            #expect(queues.map(\.tenant) == [store.tenant.name])
            #expect(queues.first?.readySteps == 3)
            #expect((queues.first?.oldestReadyAge ?? -1) >= 0)
            let folded = try await QueueStatistics(database: store.database).readyQueues(top: 0)
            #expect(folded.map(\.tenant) == ["other"])
            #expect(folded.first?.readySteps == 3)
        }
    }

    @Test("observability.metrics_port and logging.format parse, and unknown keys are refused")
    func configuration() throws {
        let configuration = try ServerConfiguration.parse(
            """
            observability: { metrics_port: 9464, metrics_top_tenants: 3 }
            logging: { format: json, level: debug }
            """, file: "test.yaml")
        #expect(configuration.metricsPort == 9464)
        #expect(configuration.metricsTopTenants == 3)
        #expect(configuration.logFormat == .json)
        #expect(configuration.logLevel == .debug)
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.parse("logging: { format: xml }", file: "t.yaml") }
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.parse("observability: { port: 1 }", file: "t.yaml") }
        #expect(OTelTracing.isRequested(by: [:]) == false)
        #expect(OTelTracing.isRequested(by: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]))
        #expect(OTelTracing.isRequested(by: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"]) == false)
        #expect(OTelTracing.isRequested(by: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"]) == false)
    }

    @Test("a trigger that creates no run (its idempotency key belongs to another workflow's run) ends its run span with an error")
    func failedTriggerEndsItsSpan() async throws {
        try await OTLPReceiver.with { receiver in
            let backend = try OTelTracing.make(
                endpoint: receiver.url, json: true, serviceName: "switchyard-test", exportDelay: .milliseconds(50),
                logger: testLogger("test.otel"))
            try await withLiveServer(configure: { $0.tracing = backend }) { server in
                for name in ["first", "second"] {
                    try await server.apply("kind: Workflow\nname: \(name)\nsteps:\n  - id: only\n    transform: \"x\"\n", key: server.tenantKey)
                }
                let headers = [("Idempotency-Key", "order-1")]
                let created = try await server.request(
                    .POST, "/v1/workflows/first/runs", key: server.tenantKey, json: ["input": [:]], headers: headers)
                #expect(created.status == 202, "\(created.text)")
                let refused = try await server.request(
                    .POST, "/v1/workflows/second/runs", key: server.tenantKey, json: ["input": [:]], headers: headers)
                #expect(refused.status == 409, "\(refused.text)")
            }
            let spans = try await receiver.spans(until: { $0.filter { $0.name == "run" }.count >= 2 })
            let failed = spans.filter { $0.name == "run" && $0.attributes[SpanAttributeName.workflow] == "second" }
            #expect(failed.count == 1)
            #expect(failed.allSatisfy { $0.status == "STATUS_CODE_ERROR" || $0.status == "2" }, "\(failed.map(\.status))")
            #expect(spans.first { $0.name == "run" && $0.attributes[SpanAttributeName.workflow] == "first" }?.status != "STATUS_CODE_ERROR")
        }
    }

    @Test(
        "OTLP/HTTP export: the trigger's traceparent is the run span's parent; step attempts and the model call are its children, with their attributes; the model call carries traceparent"
    )
    func tracing() async throws {
        let callerTrace = "0af7651916cd43dd8448eb211c80319c"
        let callerSpan = "b7ad6b7169203331"
        try await OTLPReceiver.with { receiver in
            let backend = try OTelTracing.make(
                endpoint: receiver.url, json: true, serviceName: "switchyard-test", exportDelay: .milliseconds(50),
                logger: testLogger("test.otel"))
            try await FakeDeepSeek.with([.json(body: Self.answer)]) { fake in
                let experts = ["flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro")]
                let run = try await withLiveServer(experts: experts, configure: { $0.tracing = backend }) { server in
                    try await server.apply(Self.workflow, key: server.tenantKey)
                    let reply = try await server.request(
                        .POST, "/v1/workflows/capital/runs", key: server.tenantKey, json: ["input": [:]],
                        headers: [("traceparent", "00-\(callerTrace)-\(callerSpan)-01")])
                    #expect(reply.status == 202, "\(reply.text)")
                    let id = try #require(reply.json["run"]?["id"]?.stringValue)
                    let finished = try await server.finishedRun(try #require(UUID(uuidString: id)))
                    #expect(finished["status"] == "succeeded", "\(finished.compactJSON)")
                    return (id: id, tenant: server.store.tenant.id.uuidString.lowercased())
                }
                // The provider saw the model call's span as its parent.
                let sent = try #require(fake.received.first?.headers.first { $0.key.lowercased() == "traceparent" }?.value)
                #expect(sent.hasPrefix("00-\(callerTrace)-"), "\(sent)")

                let spans = try await receiver.spans(until: { spans in spans.contains { $0.name == "model.call" } && spans.count >= 4 })
                let runSpan = try #require(spans.first { $0.name == "run" })
                #expect(runSpan.traceID == callerTrace)
                #expect(runSpan.parentSpanID == callerSpan)
                #expect(runSpan.attributes[SpanAttributeName.run] == run.id)
                #expect(runSpan.attributes[SpanAttributeName.tenant] == run.tenant)
                #expect(runSpan.attributes[SpanAttributeName.workflow] == "capital")
                let attempts = spans.filter { $0.name == "step.attempt" }
                #expect(Set(attempts.compactMap { $0.attributes[SpanAttributeName.step] }) == ["ask", "shout"])
                for attempt in attempts {
                    #expect(attempt.traceID == callerTrace)
                    #expect(attempt.parentSpanID == runSpan.spanID)
                    #expect(attempt.attributes[SpanAttributeName.tenant] == run.tenant)
                    #expect(attempt.attributes[SpanAttributeName.workflow] == "capital")
                    #expect(attempt.attributes[SpanAttributeName.outcome] == "succeeded")
                }
                let ask = try #require(attempts.first { $0.attributes[SpanAttributeName.step] == "ask" })
                #expect(ask.attributes[SpanAttributeName.stepKind] == "model")
                let call = try #require(spans.first { $0.name == "model.call" })
                #expect(call.traceID == callerTrace)
                #expect(call.parentSpanID == ask.spanID)
                #expect(sent.contains(call.spanID))
                #expect(call.attributes[SpanAttributeName.expert] == "flash")
                #expect(call.attributes[SpanAttributeName.promptTokens] == "1200")
                #expect(call.attributes[SpanAttributeName.completionTokens] == "300")
                #expect(Double(call.attributes[SpanAttributeName.costUSD] ?? "") ?? 0 > 0)
                #expect(call.attributes[SpanAttributeName.tenant] == run.tenant)
                #expect(receiver.serviceNames.contains("switchyard-test"))
            }
        }
    }

    @Test(
        "logs: one info line per step transition and per request with run and tenant ids, JSON when configured, nothing at error level for a refused budget"
    )
    func logs() async throws {
        let sink = JSONLogSink.memory()
        let logger = Logger(label: "test.json") { JSONLogHandler(label: $0, level: .info, sink: sink) }
        try await FakeDeepSeek.with([.json(body: Self.answer)]) { fake in
            let experts = ["flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro")]
            try await withLiveServer(experts: experts, logger: logger) { server in
                try await server.apply(Self.workflow, key: server.tenantKey)
                let run = try await server.startRun("capital")
                _ = try await server.finishedRun(run)
                try await server.setBudget(Money(picoUSD: 100_000_000))
                let refused = try await server.startRun("capital")
                _ = try await server.finishedRun(refused)
                let lines = sink.captured.compactMap { line in
                    (try? JSONDecoder().decode([String: String].self, from: Data(line.utf8))).map { (line, $0) }
                }
                #expect(lines.count == sink.captured.count, "every line is a flat JSON object")
                let id = run.uuidString.lowercased()
                let tenant = server.store.tenant.id.uuidString.lowercased()
                let transitions = lines.map(\.1).filter { $0["run"] == id && $0["message"]?.hasPrefix("step ") == true }
                #expect(transitions.map { $0["message"] ?? "" }.sorted() == ["step started", "step started", "step succeeded", "step succeeded"])
                #expect(transitions.allSatisfy { $0["tenant"] == tenant && $0["level"] == "info" })
                #expect(lines.map(\.1).contains { $0["message"] == "run succeeded" && $0["run"] == id })
                let requests = lines.map(\.1).filter { $0["message"] == "request" }
                #expect(requests.contains { $0["method"] == "POST" && $0["status"] == "202" && $0["tenant"] == tenant && $0["run"] == id })
                #expect(requests.contains { $0["path"] == "/v1/runs/\(id)" && $0["run"] == id })
                let errors = lines.filter { ["error", "critical"].contains($0.1["level"] ?? "") }
                #expect(errors.isEmpty, "\(errors.map(\.0))")
                #expect(lines.map(\.1).contains { $0["message"]?.contains("refused by the tenant's budget") == true && $0["level"] == "info" })
            }
        }
    }

    @Test("a JSON log line: ts, level, label, message, then the metadata as strings, escaped")
    func jsonLine() throws {
        let line = JSONLogHandler.line(
            level: .info, label: "switchyard", message: "step \"ok\"\n", metadata: ["run": "r-1", "n": .stringConvertible(3)],
            date: Date(timeIntervalSince1970: 0))
        let object = try JSONDecoder().decode([String: String].self, from: Data(line.utf8))
        #expect(
            object == ["ts": "1970-01-01T00:00:00.000Z", "level": "info", "label": "switchyard", "message": "step \"ok\"\n", "run": "r-1", "n": "3"])
    }
}

/// The samples of a Prometheus text exposition, by name and labels.
struct PrometheusText {
    var samples: [(name: String, labels: [String: String], value: Double)] = []
    var types: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let brace = series.firstIndex(of: "{") {
                name = String(series[..<brace])
                let body = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
                for pair in body.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { labels[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                }
            }
            samples.append((name, labels, value))
        }
    }

    /// The sample of `name` whose labels include `labels` (nil when there is none).
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
    }
}

/// A local OTLP/HTTP receiver (`POST /v1/traces`, JSON encoding) that keeps every span
/// it is sent.
struct OTLPReceiver: Sendable {
    struct ReceivedSpan: Sendable {
        var name: String
        var traceID: String
        var spanID: String
        var parentSpanID: String
        /// Every attribute's value as text (ints and doubles too).
        var attributes: [String: String]
        /// The span's status code as exported (`STATUS_CODE_ERROR` or 2 for an error), "" when unset.
        var status: String = ""
    }

    final class Store: Sendable {
        let spans = Mutex<[ReceivedSpan]>([])
        let services = Mutex<Set<String>>([])
    }

    let port: Int
    let store: Store

    var url: String { "http://127.0.0.1:\(port)/v1/traces" }
    var serviceNames: Set<String> { store.services.withLock { $0 } }

    static func with<T: Sendable>(_ body: @Sendable (OTLPReceiver) async throws -> T) async throws -> T {
        let store = Store()
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 16 << 20)
            let json = (try? JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView))) ?? .null
            for resource in json["resourceSpans"]?.arrayValue ?? [] {
                for attribute in resource["resource"]?["attributes"]?.arrayValue ?? [] where attribute["key"] == "service.name" {
                    if let name = attribute["value"]?["stringValue"]?.stringValue { _ = store.services.withLock { $0.insert(name) } }
                }
                for scope in resource["scopeSpans"]?.arrayValue ?? [] {
                    for span in scope["spans"]?.arrayValue ?? [] {
                        var attributes: [String: String] = [:]
                        for attribute in span["attributes"]?.arrayValue ?? [] {
                            guard let key = attribute["key"]?.stringValue, let value = attribute["value"]?.objectValue?.values.first else { continue }
                            attributes[key] = value.stringValue ?? value.compactJSON
                        }
                        let received = ReceivedSpan(
                            name: span["name"]?.stringValue ?? "", traceID: OTLPReceiver.hex(span["traceId"]),
                            spanID: OTLPReceiver.hex(span["spanId"]),
                            parentSpanID: OTLPReceiver.hex(span["parentSpanId"]), attributes: attributes,
                            status: span["status"]?["code"].map { $0.stringValue ?? $0.compactJSON } ?? "")
                        store.spans.withLock { $0.append(received) }
                    }
                }
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        var logger = Logger(label: "otlp-receiver")
        logger.logLevel = .warning
        return try await withTestApplication(router: router, logger: logger) { port in
            try await body(OTLPReceiver(port: port, store: store))
        }
    }

    /// The spans received once `done` holds of them (within 20 s).
    func spans(until done: ([ReceivedSpan]) -> Bool) async throws -> [ReceivedSpan] {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let spans = store.spans.withLock { $0 }
            if done(spans) { return spans }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("the receiver got only \(store.spans.withLock { $0.map(\.name) })")
    }

    /// An id as lowercase hex, whether the JSON wrote it as hex (OTLP/JSON) or base64
    /// (protobuf's JSON mapping of bytes).
    static func hex(_ value: JSONValue?) -> String {
        guard let text = value?.stringValue, !text.isEmpty else { return "" }
        if text.count % 2 == 0, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let data = Data(base64Encoded: text) else { return text }
        return data.map { String(format: "%02x", $0) }.joined()
    }
}
