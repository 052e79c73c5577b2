import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Tracing with swift-otel: an OTLP/HTTP exporter configured by the standard `OTEL_*`
/// environment variables, or explicitly (tests). The tracer is handed to the server, not
/// bootstrapped into `InstrumentationSystem`, so that tests can run servers with and
/// without tracing in one process; the returned service must run beside the server
/// (it batches and exports spans, and flushes them on shutdown).
public enum OTelTracing {
    /// A tracer and the service that exports its spans.
    public struct Backend: Sendable {
        public var tracer: any Tracer
        public var service: any Service
    }

    /// Whether the environment asks for tracing: tracing is off unless an OTLP endpoint
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or a traces
    /// exporter other than `none` (`OTEL_TRACES_EXPORTER`) is set, and
    /// `OTEL_SDK_DISABLED` is not `true`.
    public static func isRequested(by environment: [String: String]) -> Bool {
        func value(_ name: String) -> String? {
            environment[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        if value("OTEL_SDK_DISABLED")?.lowercased() == "true" { return false }
        if let exporter = value("OTEL_TRACES_EXPORTER")?.lowercased() { return exporter != "none" }
        return value("OTEL_EXPORTER_OTLP_ENDPOINT") != nil || value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != nil
    }

    /// The backend the `OTEL_*` environment describes, or nil when it asks for none.
    /// The defaults where a variable is unset: service `switchyard`, OTLP/HTTP with
    /// protobuf (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json` for JSON), every span sampled.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger
    ) throws -> Backend? {
        guard isRequested(by: environment) else { return nil }
        // swift-otel applies the `OTEL_*` variables of the process on top of these.
        return try make(configuration: baseConfiguration(logger: logger))
    }

    /// A backend exporting to `endpoint` (the full URL of the traces path, e.g.
    /// `http://127.0.0.1:4318/v1/traces`), for tests and embedders.
    public static func make(
        endpoint: String, json: Bool = false, serviceName: String = "switchyard", exportDelay: Duration = .seconds(5), logger: Logger
    ) throws -> Backend {
        var configuration = baseConfiguration(logger: logger)
        configuration.serviceName = serviceName
        configuration.traces.otlpExporter.endpoint = endpoint
        configuration.traces.otlpExporter.protocol = json ? .httpJSON : .httpProtobuf
        configuration.traces.batchSpanProcessor.scheduleDelay = exportDelay
        return try make(configuration: configuration)
    }

    private static func baseConfiguration(logger: Logger) -> OTel.Configuration {
        var configuration = OTel.Configuration.default
        configuration.serviceName = "switchyard"
        configuration.diagnosticLogger = .custom(logger)
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        configuration.traces.sampler = .parentBasedAlwaysOn
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        return configuration
    }

    private static func make(configuration: OTel.Configuration) throws -> Backend {
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        return Backend(tracer: backend.factory, service: backend.service)
    }
}
