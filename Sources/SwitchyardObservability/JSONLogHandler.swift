import Foundation
import Logging
import Synchronization

/// A `LogHandler` writing one JSON object per line (`logging.format: json`), for log
/// collectors that parse structured lines: `ts` (RFC 3339, UTC, milliseconds), `level`,
/// `label`, `message`, then the metadata's keys (`run`, `tenant`, `step`, …) as strings.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let sink: JSONLogSink

    public init(label: String, level: Logger.Level = .info, sink: JSONLogSink = .standardError) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        sink.write(Self.line(level: event.level, label: label, message: "\(event.message)", metadata: fields, date: Date()))
    }

    /// The JSON line for one event (without the newline).
    public static func line(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, date: Date) -> String {
        var object =
            "{\"ts\":\(quoted(timestamp(date))),\"level\":\(quoted(level.rawValue)),\"label\":\(quoted(label)),\"message\":\(quoted(message))"
        for key in metadata.keys.sorted() where !["ts", "level", "label", "message"].contains(key) {
            object += ",\(quoted(key)):\(quoted(metadata[key].map(flatten) ?? ""))"
        }
        return object + "}"
    }

    private static func flatten(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: value.description
        }
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// `text` as a JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Where JSON log lines go: standard error (the default) or, in tests, memory. Lines
/// are written whole under a lock, so concurrent loggers never interleave.
public final class JSONLogSink: Sendable {
    private let lines = Mutex<[String]?>(nil)
    private let output: Mutex<FileHandle?>

    private init(capturing: Bool, output: FileHandle?) {
        self.output = Mutex(output)
        if capturing { lines.withLock { $0 = [] } }
    }

    public static let standardError = JSONLogSink(capturing: false, output: FileHandle.standardError)

    /// A sink that keeps its lines, for tests.
    public static func memory() -> JSONLogSink { JSONLogSink(capturing: true, output: nil) }

    /// The lines written so far (memory sinks only).
    public var captured: [String] { lines.withLock { $0 ?? [] } }

    func write(_ line: String) {
        lines.withLock { $0?.append(line) }
        output.withLock { $0?.write(Data((line + "\n").utf8)) }
    }
}
