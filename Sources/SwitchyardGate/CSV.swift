/// A CSV record and the 1-based line of the file it starts on (quoted fields may span lines,
/// so error messages need the line where the record began).
public struct CSVRecord: Sendable, Hashable {
    public var fields: [String]
    public var line: Int
}

/// Errors of `CSV.parse`, with the line to look at.
public struct CSVError: Error, Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "CSV line \(line): \(message)" }
}

/// RFC 4180 CSV: comma-separated fields, fields in double quotes may contain commas, line
/// breaks and `""` for a quote; records end with CRLF or LF; a UTF-8 byte-order mark is
/// skipped; a final line break is optional; blank lines between records are ignored.
public enum CSV {
    public static func parse(_ text: String) throws(CSVError) -> [CSVRecord] {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(CSVError) -> [CSVRecord] {
        var scanner = CSVScanner(bytes: bytes)
        return try scanner.readAll()
    }
}

/// The state of one pass over a CSV text: where it is, the record and field being
/// read, and whether it is inside quotes.
private struct CSVScanner {
    static let quote: UInt8 = 0x22
    static let comma: UInt8 = 0x2C
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A

    let bytes: [UInt8]
    var index = 0
    var line = 1
    var recordLine = 1
    var inQuotes = false
    var fieldWasQuoted = false
    var recordHasContent = false
    var records: [CSVRecord] = []
    var fields: [String] = []
    var field: [UInt8] = []

    init(bytes: [UInt8]) {
        self.bytes = bytes
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
    }

    mutating func readAll() throws(CSVError) -> [CSVRecord] {
        while index < bytes.count {
            if inQuotes { readQuoted() } else { try readUnquoted() }
        }
        if inQuotes {
            throw CSVError(line: recordLine, message: "a quoted field is never closed (missing \")")
        }
        if recordHasContent || !field.isEmpty { finishRecord() }
        return records
    }

    /// One byte inside quotes: `""` is a quote, a lone quote closes the field.
    private mutating func readQuoted() {
        let byte = bytes[index]
        if byte == Self.quote {
            if index + 1 < bytes.count, bytes[index + 1] == Self.quote {
                field.append(Self.quote)
                index += 2
                return
            }
            inQuotes = false
        } else {
            if byte == Self.lf { line += 1 }
            field.append(byte)
        }
        index += 1
    }

    /// One byte outside quotes: a separator, a line end, an opening quote or text.
    private mutating func readUnquoted() throws(CSVError) {
        let byte = bytes[index]
        switch byte {
        case Self.quote:
            if !field.isEmpty || fieldWasQuoted {
                throw CSVError(line: line, message: "a quote inside an unquoted field (quote the whole field and double inner quotes: \"\")")
            }
            inQuotes = true
            fieldWasQuoted = true
            recordHasContent = true
        case Self.comma:
            recordHasContent = true
            finishField()
        case Self.cr where index + 1 < bytes.count && bytes[index + 1] == Self.lf:
            index += 1
            endLine()
        case Self.lf:
            endLine()
        default:
            if fieldWasQuoted {
                throw CSVError(line: line, message: "text after a closing quote (a field is either wholly quoted or not at all)")
            }
            field.append(byte)
            recordHasContent = true
        }
        index += 1
    }

    private mutating func endLine() {
        finishRecord()
        line += 1
        recordLine = line
    }

    private mutating func finishField() {
        fields.append(String(decoding: field, as: UTF8.self))
        field.removeAll(keepingCapacity: true)
        fieldWasQuoted = false
    }

    private mutating func finishRecord() {
        finishField()
        // A blank line is no record (a single empty unquoted field).
        if recordHasContent { records.append(CSVRecord(fields: fields, line: recordLine)) }
        fields.removeAll(keepingCapacity: true)
        recordHasContent = false
    }
}
