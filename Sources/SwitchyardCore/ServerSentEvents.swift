/// One event of a `text/event-stream`: its `id` (nil when it has none), its `event`
/// type (`message` when it has none) and its data lines joined by `\n`.
public struct ServerSentEvent: Sendable, Equatable {
    public var id: String?
    public var type: String
    public var data: String

    public init(id: String? = nil, type: String = "message", data: String) {
        self.id = id
        self.type = type
        self.data = data
    }
}

/// Splits a `text/event-stream` body into events: the one parser of the project, for
/// a model provider's stream (the experts) and a run's event stream (`yard`).
///
/// Network chunks cut the stream anywhere: inside a line, inside a multi-byte UTF-8
/// character, between the two newlines that end an event. The parser therefore works
/// on bytes, keeps the unfinished line, and only decodes an event once the blank line
/// that ends it has arrived. Comment lines (`: keep-alive`) and unknown fields are
/// skipped; `\n`, `\r\n` and `\r` all end a line. An event without data is not
/// dispatched. `id` belongs to its own event only (a run's stream marks its stored
/// events with ids and its live deltas without, and the difference matters).
public struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var id: String?
    private var type: String?
    /// A `\r` ended the last line: a `\n` right after it belongs to the same ending.
    private var skipNewline = false

    public init() {}

    /// Feeds the next chunk; returns every event the chunk completed.
    public mutating func feed<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if skipNewline {
                skipNewline = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                skipNewline = byte == UInt8(ascii: "\r")
                if let event = endLine() { events.append(event) }
            default:
                line.append(byte)
            }
        }
        return events
    }

    /// The stream ended: a last event not followed by its blank line, if any.
    public mutating func finish() -> ServerSentEvent? {
        if !line.isEmpty { _ = endLine() }
        return dispatch()
    }

    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty { return dispatch() }
        if line.first == UInt8(ascii: ":") { return nil }
        let field: ArraySlice<UInt8>
        var value: ArraySlice<UInt8> = []
        if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            field = line[..<colon]
            value = line[(colon + 1)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = line[...]
        }
        if field.elementsEqual("data".utf8) {
            if hasData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: value)
            hasData = true
        } else if field.elementsEqual("id".utf8) {
            id = String(decoding: value, as: UTF8.self)
        } else if field.elementsEqual("event".utf8) {
            type = String(decoding: value, as: UTF8.self)
        }
        return nil
    }

    private mutating func dispatch() -> ServerSentEvent? {
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
            id = nil
            type = nil
        }
        guard hasData else { return nil }
        return ServerSentEvent(id: id, type: type ?? "message", data: String(decoding: data, as: UTF8.self))
    }
}
