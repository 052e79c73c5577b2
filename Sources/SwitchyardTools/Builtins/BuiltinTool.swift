import Foundation
import SwitchyardCore

/// Tools every tenant has without declaring them. Each one is cheap, bounded and
/// has no access to secrets.
public enum BuiltinTool: String, Sendable, Hashable, CaseIterable {
    /// Fetches a URL with GET; only destinations on the egress allow list.
    case httpGet = "http_get"
    /// Picks a value out of JSON by a path such as `a.b[0].c`.
    case jsonQuery = "json_query"
    /// The current time, in UTC or a named time zone.
    case currentTime = "current_time"
    /// Evaluates an arithmetic expression.
    case calculator

    public var name: String { rawValue }

    public var description: String {
        switch self {
        case .httpGet:
            "Fetch a URL with HTTP GET and return the response body (parsed JSON, or text). Only hosts on the egress allow list can be reached."
        case .jsonQuery:
            "Return the part of a JSON value at a path such as `items[0].name` or `a.b[\"key with spaces\"]`; null when the path does not exist."
        case .currentTime:
            "Return the current date and time as ISO 8601 and as Unix seconds, in UTC or the given IANA time zone."
        case .calculator:
            "Evaluate an arithmetic expression with + - * / % ^, parentheses and decimal numbers, e.g. `(2 + 3) * 4.5`."
        }
    }

    public var parameters: JSONValue {
        switch self {
        case .httpGet:
            [
                "type": "object",
                "properties": [
                    "url": [
                        "type": "string", "description": "An absolute http or https URL.", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://", "maxLength": 4096,
                    ]
                ],
                "required": ["url"],
                "additionalProperties": false,
            ]
        case .jsonQuery:
            [
                "type": "object",
                "properties": [
                    "data": ["description": "Any JSON value."],
                    "path": ["type": "string", "description": "A path such as `a.b[0].c`; `$` or empty for the whole value.", "maxLength": 1000],
                ],
                "required": ["data", "path"],
                "additionalProperties": false,
            ]
        case .currentTime:
            [
                "type": "object",
                "properties": [
                    "timezone": ["type": "string", "description": "An IANA time zone such as `Europe/Berlin`; UTC when omitted.", "maxLength": 64]
                ],
                "additionalProperties": false,
            ]
        case .calculator:
            [
                "type": "object",
                "properties": [
                    "expression": ["type": "string", "description": "The expression, e.g. `(2 + 3) * 4.5`.", "minLength": 1, "maxLength": 1000]
                ],
                "required": ["expression"],
                "additionalProperties": false,
            ]
        }
    }

    public var definition: ToolDefinition {
        ToolDefinition(name: name, description: description, parameters: parameters, kind: .builtin(self))
    }
}

// MARK: - current_time

enum CurrentTime {
    static func evaluate(timezone: String?, now: Date) throws(ToolError) -> JSONValue {
        let zone: TimeZone
        if let timezone {
            guard let found = TimeZone(identifier: timezone) ?? TimeZone(identifier: timezone.uppercased()) else {
                throw ToolError(.invalidArguments, "$.timezone: unknown time zone \(timezone) (use an IANA name such as Europe/Berlin)")
            }
            zone = found
        } else {
            zone = TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0) ?? .current
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: now)
        func two(_ n: Int?) -> String {
            let v = n ?? 0
            return v < 10 ? "0\(v)" : "\(v)"
        }
        let year = String(c.year ?? 0)
        let offset = zone.secondsFromGMT(for: now)
        let suffix: String
        if offset == 0 {
            suffix = "Z"
        } else {
            let minutes = abs(offset) / 60
            suffix = (offset < 0 ? "-" : "+") + two(minutes / 60) + ":" + two(minutes % 60)
        }
        let iso = "\(year)-\(two(c.month))-\(two(c.day))T\(two(c.hour)):\(two(c.minute)):\(two(c.second))\(suffix)"
        return [
            "iso8601": .string(iso),
            "unix": .int(Int(now.timeIntervalSince1970.rounded(.down))),
            "timezone": .string(timezone == nil ? "UTC" : zone.identifier),
        ]
    }
}

// MARK: - json_query

/// Paths for `json_query`: `a.b[0].c`, `["odd key"]`, `[-1]` for the last element,
/// an optional leading `$`. Missing keys and indices give `null`, as in templates.
enum JSONQuery {
    enum Component: Equatable {
        case key(String)
        case index(Int)
    }

    static func evaluate(_ data: JSONValue, path: String) throws(ToolError) -> JSONValue {
        var value = data
        for component in try parse(path) {
            switch (component, value) {
            case (.key(let k), .object(let o)):
                value = o[k] ?? .null
            case (.index(let i), .array(let a)):
                let resolved = i < 0 ? a.count + i : i
                value = a.indices.contains(resolved) ? a[resolved] : .null
            default:
                return .null
            }
        }
        return value
    }

    static func parse(_ path: String) throws(ToolError) -> [Component] {
        let scalars = Array(path.unicodeScalars)
        var i = 0
        var out: [Component] = []
        func fail(_ why: String) -> ToolError {
            ToolError(.invalidArguments, "$.path: \(why) at offset \(i) of \(JSONValue.string(path).compactJSON)")
        }
        func isNameScalar(_ s: Unicode.Scalar) -> Bool {
            s != "." && s != "[" && s != "]" && s != "\"" && s != "'" && !s.properties.isWhitespace
        }
        func name() -> String {
            var s = ""
            while i < scalars.count, isNameScalar(scalars[i]) {
                s.unicodeScalars.append(scalars[i])
                i += 1
            }
            return s
        }
        while i < scalars.count, scalars[i].properties.isWhitespace { i += 1 }
        if i < scalars.count, scalars[i] == "$" { i += 1 }
        var first = true
        while i < scalars.count {
            let c = scalars[i]
            if c.properties.isWhitespace, scalars[i...].allSatisfy(\.properties.isWhitespace) { break }
            if c == "." {
                i += 1
                let key = name()
                guard !key.isEmpty else { throw fail("expected a key after '.'") }
                out.append(.key(key))
            } else if c == "[" {
                i += 1
                if i < scalars.count, scalars[i] == "\"" || scalars[i] == "'" {
                    let quote = scalars[i]
                    i += 1
                    var key = ""
                    while i < scalars.count, scalars[i] != quote {
                        if scalars[i] == "\\", i + 1 < scalars.count { i += 1 }
                        key.unicodeScalars.append(scalars[i])
                        i += 1
                    }
                    guard i < scalars.count else { throw fail("unterminated string") }
                    i += 1
                    out.append(.key(key))
                } else {
                    var digits = ""
                    if i < scalars.count, scalars[i] == "-" {
                        digits = "-"
                        i += 1
                    }
                    while i < scalars.count, ("0"..."9").contains(scalars[i]) {
                        digits.unicodeScalars.append(scalars[i])
                        i += 1
                    }
                    guard let index = Int(digits) else { throw fail("expected an integer index or a quoted key") }
                    out.append(.index(index))
                }
                guard i < scalars.count, scalars[i] == "]" else { throw fail("expected ']'") }
                i += 1
            } else if first {
                let key = name()
                guard !key.isEmpty else { throw fail("unexpected \(String(c))") }
                out.append(.key(key))
            } else {
                throw fail("unexpected \(String(c))")
            }
            first = false
        }
        return out
    }
}

// MARK: - calculator

/// A recursive-descent parser for arithmetic: no names, no functions, bounded length
/// and nesting, so a model cannot make it run long or allocate much.
enum Calculator {
    static let maxDepth = 64

    static func evaluate(_ expression: String) throws(ToolError) -> JSONValue {
        var parser = Parser(scalars: Array(expression.unicodeScalars))
        let value = try parser.parseExpression(depth: 0)
        parser.skipSpace()
        guard parser.i == parser.scalars.count else { throw parser.fail("unexpected \(String(parser.scalars[parser.i]))") }
        guard value.isFinite else { throw ToolError(.invalidArguments, "$.expression: the result is not a finite number") }
        if value == value.rounded(), abs(value) < 9.0e15 { return .int(Int(value)) }
        return .double(value)
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var i = 0

        func fail(_ why: String) -> ToolError {
            ToolError(.invalidArguments, "$.expression: \(why) at offset \(i)")
        }

        mutating func skipSpace() {
            while i < scalars.count, scalars[i].properties.isWhitespace { i += 1 }
        }

        mutating func peek() -> Unicode.Scalar? {
            skipSpace()
            return i < scalars.count ? scalars[i] : nil
        }

        mutating func parseExpression(depth: Int) throws(ToolError) -> Double {
            guard depth < Calculator.maxDepth else { throw fail("nested too deeply") }
            var value = try parseTerm(depth: depth)
            while let op = peek(), op == "+" || op == "-" {
                i += 1
                let rhs = try parseTerm(depth: depth)
                value = op == "+" ? value + rhs : value - rhs
            }
            return value
        }

        mutating func parseTerm(depth: Int) throws(ToolError) -> Double {
            var value = try parseUnary(depth: depth)
            while let op = peek(), op == "*" || op == "/" || op == "%" {
                let at = i
                i += 1
                let rhs = try parseUnary(depth: depth)
                if op == "*" {
                    value *= rhs
                } else {
                    guard rhs != 0 else {
                        i = at
                        throw fail("division by zero")
                    }
                    value = op == "/" ? value / rhs : value.truncatingRemainder(dividingBy: rhs)
                }
            }
            return value
        }

        mutating func parseUnary(depth: Int) throws(ToolError) -> Double {
            guard depth < Calculator.maxDepth else { throw fail("nested too deeply") }
            if let op = peek(), op == "-" || op == "+" {
                i += 1
                let v = try parseUnary(depth: depth + 1)
                return op == "-" ? -v : v
            }
            return try parsePower(depth: depth)
        }

        /// `^` binds tighter than unary minus on its left and is right-associative.
        mutating func parsePower(depth: Int) throws(ToolError) -> Double {
            let base = try parsePrimary(depth: depth)
            if let op = peek(), op == "^" {
                i += 1
                let exponent = try parseUnary(depth: depth + 1)
                return pow(base, exponent)
            }
            return base
        }

        mutating func parsePrimary(depth: Int) throws(ToolError) -> Double {
            guard let c = peek() else { throw fail("unexpected end of expression") }
            if c == "(" {
                i += 1
                let v = try parseExpression(depth: depth + 1)
                guard peek() == ")" else { throw fail("expected ')'") }
                i += 1
                return v
            }
            var text = ""
            while i < scalars.count, ("0"..."9").contains(scalars[i]) || scalars[i] == "." || scalars[i] == "_" {
                if scalars[i] != "_" { text.unicodeScalars.append(scalars[i]) }
                i += 1
            }
            if i < scalars.count, scalars[i] == "e" || scalars[i] == "E", !text.isEmpty {
                text.unicodeScalars.append(scalars[i])
                i += 1
                if i < scalars.count, scalars[i] == "-" || scalars[i] == "+" {
                    text.unicodeScalars.append(scalars[i])
                    i += 1
                }
                while i < scalars.count, ("0"..."9").contains(scalars[i]) {
                    text.unicodeScalars.append(scalars[i])
                    i += 1
                }
            }
            guard !text.isEmpty else { throw fail("unexpected \(String(c))") }
            guard let v = Double(text) else { throw fail("\(text) is not a number") }
            return v
        }
    }
}
