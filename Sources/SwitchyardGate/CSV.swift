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
        let quote: UInt8 = 0x22
        let comma: UInt8 = 0x2C
        let cr: UInt8 = 0x0D
        let lf: UInt8 = 0x0A
        var records: [CSVRecord] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var index = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { index = 3 }
        var line = 1
        var recordLine = 1
        var inQuotes = false
        var fieldWasQuoted = false
        var recordHasContent = false

        func finishField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            fieldWasQuoted = false
        }
        func finishRecord() {
            finishField()
            // A blank line is no record (a single empty unquoted field).
            if recordHasContent { records.append(CSVRecord(fields: fields, line: recordLine)) }
            fields.removeAll(keepingCapacity: true)
            recordHasContent = false
        }

        while index < bytes.count {
            let byte = bytes[index]
            if inQuotes {
                if byte == quote {
                    if index + 1 < bytes.count, bytes[index + 1] == quote {
                        field.append(quote)
                        index += 2
                        continue
                    }
                    inQuotes = false
                } else {
                    if byte == lf { line += 1 }
                    field.append(byte)
                }
                index += 1
                continue
            }
            switch byte {
            case quote:
                if !field.isEmpty || fieldWasQuoted {
                    throw CSVError(line: line, message: "a quote inside an unquoted field (quote the whole field and double inner quotes: \"\")")
                }
                inQuotes = true
                fieldWasQuoted = true
                recordHasContent = true
            case comma:
                recordHasContent = true
                finishField()
            case cr where index + 1 < bytes.count && bytes[index + 1] == lf:
                index += 1
                finishRecord()
                line += 1
                recordLine = line
            case lf:
                finishRecord()
                line += 1
                recordLine = line
            default:
                if fieldWasQuoted {
                    throw CSVError(line: line, message: "text after a closing quote (a field is either wholly quoted or not at all)")
                }
                field.append(byte)
                recordHasContent = true
            }
            index += 1
        }
        if inQuotes {
            throw CSVError(line: recordLine, message: "a quoted field is never closed (missing \")")
        }
        if recordHasContent || !field.isEmpty { finishRecord() }
        return records
    }
}
