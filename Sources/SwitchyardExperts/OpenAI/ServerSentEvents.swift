/// Splits a `text/event-stream` body into the `data` of its events.
///
/// Network chunks cut the stream anywhere: inside a line, inside a multi-byte UTF-8
/// character, between the two newlines that end an event. The parser therefore works
/// on bytes, keeps the unfinished line, and only decodes an event's data once the
/// blank line that ends it has arrived. Comment lines (`: keep-alive`) and fields
/// other than `data` are skipped; `\n`, `\r\n` and `\r` all end a line.
struct ServerSentEventParser: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    /// A `\r` ended the last line: a `\n` right after it belongs to the same ending.
    private var skipNewline = false

    init() {}

    /// Feeds the next chunk; returns the data of every event the chunk completed.
    mutating func feed<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> [String] {
        var events: [String] = []
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
    mutating func finish() -> String? {
        if !line.isEmpty { _ = endLine() }
        return dispatch()
    }

    private mutating func endLine() -> String? {
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
        }
        return nil
    }

    private mutating func dispatch() -> String? {
        guard hasData else { return nil }
        defer {
            data.removeAll(keepingCapacity: true)
            hasData = false
        }
        return String(decoding: data, as: UTF8.self)
    }
}
