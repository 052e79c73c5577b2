import Foundation
import SwitchyardCore
import Yams

/// Reading price rows from text: the seed file `Data/prices.yaml`, or one row
/// (YAML or JSON, e.g. an admin API body).
///
/// Why a hand walk over Yams' node tree instead of `YAMLDecoder` into `Double`:
/// the raw text of each scalar is parsed by ``TokenPrice/init(parsing:)``, so a
/// price never passes through floating point, and errors carry line:column.
/// Prices must be *quoted* (`"0.14"`), so that no other YAML tool reading the
/// same file turns them into floats either. Unknown and duplicate keys are
/// errors, so a typo (`ouput`) never silently drops a rate.
///
/// Shape (see the header of `Data/prices.yaml`):
///
/// ```yaml
/// version: 1
/// prices:
///   - id: deepseek-v4-flash@2026-08-16        # optional; default model@date
///     model: deepseek-v4-flash                # prefix of billed model names
///     effective_from: "2026-08-16"            # UTC; or "2026-08-16T00:00:00Z"
///     input_cache_hit: "0.007"                # USD per million tokens, quoted
///     input_cache_miss: "0.22"
///     output: "0.66"
///     peak:                                   # optional
///       windows:
///         - {weekdays: [mon, tue, wed, thu, fri], start_hour: 1, end_hour: 4}
///       input_cache_hit: "0.014"
///       input_cache_miss: "0.44"
///       output: "1.32"
/// ```
extension PriceBook {
    /// Parses a whole seed document into rows, in file order. Refuses the
    /// document if any row is malformed or two rows collide (same id, or same
    /// model and effective instant).
    public static func parseSeed(_ text: String) throws(MeteringError) -> [PriceRow] {
        let root = try SeedReader.compose(text)
        let fields = try SeedReader.mapping(root, allowed: ["version", "prices"], required: ["version", "prices"], context: "the seed document")
        guard let version = fields["version"], try SeedReader.scalar(version, context: "version").text == "1" else {
            throw SeedReader.error(fields["version"] ?? root, "unsupported seed version; this reader understands `version: 1`")
        }
        guard let pricesNode = fields["prices"], case .sequence(let items) = pricesNode else {
            throw SeedReader.error(fields["prices"] ?? root, "`prices` must be a list of price rows")
        }
        var rows: [PriceRow] = []
        for item in items {
            rows.append(try SeedReader.row(item))
        }
        _ = try PriceBook(rows: rows)
        return rows
    }

    /// Parses one row mapping in the seed shape (YAML, or JSON such as
    /// `{"model": "deepseek-v4-pro", "effective_from": "2026-09-01", "input_cache_hit": "0.02", …}`).
    public static func parseRow(_ text: String) throws(MeteringError) -> PriceRow {
        try SeedReader.row(try SeedReader.compose(text))
    }
}

extension PriceRow {
    /// The row in the seed shape, as JSON: what `GET /v1/prices` lists and what
    /// ``PriceBook/parseRow(_:)`` reads back (`POST /v1/admin/prices`).
    public var seedJSON: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "model": .string(model), "effective_from": .string(UTCTime.format(effectiveFrom)),
            "input_cache_hit": .string(inputCacheHit.decimalString), "input_cache_miss": .string(inputCacheMiss.decimalString),
            "output": .string(output.decimalString),
        ]
        if let peak {
            let names = Dictionary(uniqueKeysWithValues: SeedReader.weekdayNames.map { ($1, $0) })
            object["peak"] = [
                "windows": .array(
                    peak.windows.map { window in
                        [
                            "weekdays": .array(window.weekdays.sorted().compactMap { names[$0] }.map(JSONValue.string)),
                            "start_hour": .int(window.startHour), "end_hour": .int(window.endHour),
                        ]
                    }),
                "input_cache_hit": .string(peak.inputCacheHit.decimalString), "input_cache_miss": .string(peak.inputCacheMiss.decimalString),
                "output": .string(peak.output.decimalString),
            ]
        }
        return .object(object)
    }
}

enum SeedReader {
    static let rowKeys: Set<String> = ["id", "model", "effective_from", "input_cache_hit", "input_cache_miss", "output", "peak"]
    static let peakKeys: Set<String> = ["windows", "input_cache_hit", "input_cache_miss", "output"]
    static let windowKeys: Set<String> = ["weekdays", "start_hour", "end_hour"]
    static let weekdayNames = ["mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7]

    static func compose(_ text: String) throws(MeteringError) -> Node {
        guard text.utf8.count <= 1 << 20 else {
            throw MeteringError(.invalidSeed, "price text is over 1 MiB; split it")
        }
        // The same pre-scan as resource files: no NUL, no non-scalar keys (whose hashing
        // can take exponential time in the YAML library), bounded aliases and depth.
        do {
            try YAMLPreScan(limits: .default).scan(text)
        } catch {
            throw MeteringError(.invalidSeed, error.message, line: error.line, column: error.column)
        }
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                throw MeteringError(.invalidSeed, "not valid YAML: \(problem)", line: mark.line, column: mark.column)
            case .duplicatedKeysInMapping(let duplicates, let context):
                let keys = duplicates.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw MeteringError(
                    .invalidSeed, "key \(keys) appears twice in the same mapping", line: context.mark.line, column: context.mark.column)
            default:
                throw MeteringError(.invalidSeed, "not valid YAML")
            }
        } catch {
            throw MeteringError(.invalidSeed, "not valid YAML")
        }
        guard let node else { throw MeteringError(.invalidSeed, "the price text is empty") }
        return node
    }

    static func error(_ node: Node, _ message: String) -> MeteringError {
        MeteringError(.invalidSeed, message, line: node.mark?.line, column: node.mark?.column)
    }

    /// Wraps a value error (bad price, bad window) with the node's position.
    static func at<T>(_ node: Node, _ context: String, _ body: () throws(MeteringError) -> T) throws(MeteringError) -> T {
        do {
            return try body()
        } catch {
            throw MeteringError(
                error.code == .duplicatePriceRow ? .duplicatePriceRow : .invalidSeed, "\(context): \(error.message)", line: node.mark?.line,
                column: node.mark?.column)
        }
    }

    static func mapping(_ node: Node, allowed: Set<String>, required: Set<String>, context: String) throws(MeteringError) -> [String: Node] {
        guard case .mapping(let pairs) = node else {
            throw error(node, "\(context) must be a mapping with keys \(allowed.sorted().joined(separator: ", "))")
        }
        var fields: [String: Node] = [:]
        for (keyNode, value) in pairs {
            let key = try scalar(keyNode, context: "\(context) key").text
            guard allowed.contains(key) else {
                throw error(keyNode, "unknown key '\(key)' in \(context); allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            guard fields[key] == nil else { throw error(keyNode, "key '\(key)' appears twice in \(context)") }
            fields[key] = value
        }
        for key in required.sorted() where fields[key] == nil {
            throw error(node, "\(context) is missing '\(key)'")
        }
        return fields
    }

    static func scalar(_ node: Node, context: String) throws(MeteringError) -> (text: String, quoted: Bool) {
        guard case .scalar(let scalar) = node else {
            throw error(node, "\(context) must be a single value, not a list or mapping")
        }
        guard !scalar.string.unicodeScalars.contains("\0") else {
            throw error(node, "\(context) contains the NUL character (U+0000), which no stored text may hold")
        }
        return (scalar.string, scalar.style != .plain && scalar.style != .any)
    }

    static func price(_ node: Node, context: String) throws(MeteringError) -> TokenPrice {
        let (text, quoted) = try scalar(node, context: context)
        guard quoted else {
            throw error(node, "\(context) must be a quoted string such as \"\(text)\", so that no YAML reader turns the price into floating point")
        }
        return try at(node, context) { () throws(MeteringError) in try TokenPrice(parsing: text) }
    }

    static func integer(_ node: Node, context: String) throws(MeteringError) -> Int {
        let text = try scalar(node, context: context).text
        guard !text.isEmpty, text.utf8.count <= 4, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let value = Int(text)
        else { throw error(node, "\(context) must be a whole number, got '\(text)'") }
        return value
    }

    static func row(_ node: Node) throws(MeteringError) -> PriceRow {
        let fields = try mapping(
            node, allowed: rowKeys, required: ["model", "effective_from", "input_cache_hit", "input_cache_miss", "output"],
            context: "a price row")
        func field(_ key: String) -> Node { fields[key] ?? node }  // required keys were checked above
        let model = try scalar(field("model"), context: "model").text
        let dateNode = field("effective_from")
        let dateText = try scalar(dateNode, context: "effective_from").text
        guard let effectiveFrom = UTCTime.parse(dateText) else {
            throw error(dateNode, "effective_from '\(dateText)' must be a UTC date \"YYYY-MM-DD\" (midnight UTC) or \"YYYY-MM-DDTHH:MM:SSZ\"")
        }
        let id =
            try fields["id"].map { (n) throws(MeteringError) in try scalar(n, context: "id").text }
            ?? PriceRow.defaultID(model: model, effectiveFrom: effectiveFrom)
        let context = "price row '\(id)'"
        let hit = try price(field("input_cache_hit"), context: "\(context) input_cache_hit")
        let miss = try price(field("input_cache_miss"), context: "\(context) input_cache_miss")
        let output = try price(field("output"), context: "\(context) output")
        let peak = try fields["peak"].map { (n) throws(MeteringError) in try peakPricing(n, context: context) }
        return try at(node, context) { () throws(MeteringError) in
            try PriceRow(
                id: id, model: model, effectiveFrom: effectiveFrom,
                inputCacheHit: hit, inputCacheMiss: miss, output: output, peak: peak)
        }
    }

    static func peakPricing(_ node: Node, context: String) throws(MeteringError) -> PeakPricing {
        let fields = try mapping(node, allowed: peakKeys, required: peakKeys, context: "\(context) peak")
        func field(_ key: String) -> Node { fields[key] ?? node }
        let windowsNode = field("windows")
        guard case .sequence(let items) = windowsNode else {
            throw error(windowsNode, "\(context) peak windows must be a list of {weekdays, start_hour, end_hour}")
        }
        var windows: [PeakWindow] = []
        for item in items {
            windows.append(try window(item, context: context))
        }
        let hit = try price(field("input_cache_hit"), context: "\(context) peak input_cache_hit")
        let miss = try price(field("input_cache_miss"), context: "\(context) peak input_cache_miss")
        let output = try price(field("output"), context: "\(context) peak output")
        return try at(node, "\(context) peak") { () throws(MeteringError) in
            try PeakPricing(windows: windows, inputCacheHit: hit, inputCacheMiss: miss, output: output)
        }
    }

    static func window(_ node: Node, context: String) throws(MeteringError) -> PeakWindow {
        let fields = try mapping(node, allowed: windowKeys, required: windowKeys, context: "\(context) peak window")
        func field(_ key: String) -> Node { fields[key] ?? node }
        let daysNode = field("weekdays")
        guard case .sequence(let dayNodes) = daysNode else {
            throw error(daysNode, "\(context) peak window weekdays must be a list such as [mon, tue, wed, thu, fri]")
        }
        var weekdays: Set<Int> = []
        for dayNode in dayNodes {
            let name = try scalar(dayNode, context: "weekday").text
            guard let day = weekdayNames[name.lowercased()] else {
                throw error(dayNode, "unknown weekday '\(name)'; use mon, tue, wed, thu, fri, sat, sun")
            }
            weekdays.insert(day)
        }
        let start = try integer(field("start_hour"), context: "start_hour")
        let end = try integer(field("end_hour"), context: "end_hour")
        return try at(node, "\(context)") { () throws(MeteringError) in
            try PeakWindow(weekdays: weekdays, startHour: start, endHour: end)
        }
    }
}
