/// Evaluates parsed expressions, counting work and output size against ``TemplateLimits``.
struct TemplateEvaluator {
    let scope: TemplateScope
    let limits: TemplateLimits
    var visits = 0

    init(scope: TemplateScope, limits: TemplateLimits) {
        self.scope = scope
        self.limits = limits
    }

    mutating func evaluate(_ expression: TemplateExpression) throws(TemplateError) -> JSONValue {
        visits += 1
        if visits > limits.maxSteps {
            throw TemplateError(.limitExceeded, "template evaluation took more than \(limits.maxSteps) steps")
        }
        switch expression {
        case .literal(let v):
            return v
        case .variable(let name, let offset):
            guard let value = scope.variables[name] else {
                let known = scope.variables.keys.sorted().joined(separator: ", ")
                let hint = name == "secrets" ? " (secrets can only be used in tool http headers)" : ""
                throw TemplateError(.evaluation, "unknown variable '\(name)'\(hint); available: \(known)", offset: offset)
            }
            return value
        case .member(let base, let name, _):
            let value = try evaluate(base)
            return value.objectValue?[name] ?? .null
        case .index(let base, let keyExpression, let offset):
            let value = try evaluate(base)
            let key = try evaluate(keyExpression)
            switch (value, key) {
            case (.array(let items), _):
                guard let i = key.intValue else {
                    if key == .null { return .null }
                    throw TemplateError(.evaluation, "a list index must be an integer, got \(key.typeName)", offset: offset)
                }
                let position = i < 0 ? items.count + i : i
                return items.indices.contains(position) ? items[position] : .null
            case (.object(let object), .string(let k)):
                return object[k] ?? .null
            case (.object, .null), (.null, _):
                return .null
            case (.object, _):
                throw TemplateError(.evaluation, "an object key must be a string, got \(key.typeName)", offset: offset)
            case (.string, _):
                guard let i = key.intValue else {
                    throw TemplateError(.evaluation, "a string index must be an integer, got \(key.typeName)", offset: offset)
                }
                let characters = Array(value.stringValue ?? "")
                let position = i < 0 ? characters.count + i : i
                return characters.indices.contains(position) ? .string(String(characters[position])) : .null
            default:
                return .null
            }
        case .not(let a):
            return .bool(!(try evaluate(a)).isTruthy)
        case .negate(let a, let offset):
            switch try evaluate(a) {
            case .int(let i) where i != Int.min: return .int(-i)
            case .double(let d): return .double(-d)
            case let other:
                throw TemplateError(.evaluation, "'-' needs a number, got \(other.typeName)", offset: offset)
            }
        case .and(let a, let b):
            guard try evaluate(a).isTruthy else { return .bool(false) }
            return .bool(try evaluate(b).isTruthy)
        case .or(let a, let b):
            if try evaluate(a).isTruthy { return .bool(true) }
            return .bool(try evaluate(b).isTruthy)
        case .conditional(let c, let yes, let no):
            return try evaluate(c).isTruthy ? try evaluate(yes) : try evaluate(no)
        case .compare(let op, let a, let b, let offset):
            let left = try evaluate(a)
            let right = try evaluate(b)
            switch op {
            case .equal: return .bool(left.jsonEquals(right))
            case .notEqual: return .bool(!left.jsonEquals(right))
            default:
                let order: Int
                if let l = left.doubleValue, let r = right.doubleValue {
                    order = l < r ? -1 : (l > r ? 1 : 0)
                } else if case .string(let l) = left, case .string(let r) = right {
                    order = l < r ? -1 : (l > r ? 1 : 0)
                } else {
                    throw TemplateError(
                        .evaluation,
                        "cannot compare \(left.typeName) with \(right.typeName) using '\(op.rawValue)' (only numbers with numbers and strings with strings)",
                        offset: offset)
                }
                switch op {
                case .less: return .bool(order < 0)
                case .lessOrEqual: return .bool(order <= 0)
                case .greater: return .bool(order > 0)
                default: return .bool(order >= 0)
                }
            }
        case .filter(let a, let filter, let arguments, let offset):
            let value = try evaluate(a)
            var evaluated: [JSONValue] = []
            for argument in arguments { evaluated.append(try evaluate(argument)) }
            return try apply(filter, to: value, arguments: evaluated, offset: offset)
        }
    }

    private mutating func apply(_ filter: TemplateFilter, to value: JSONValue, arguments: [JSONValue], offset: Int) throws(TemplateError) -> JSONValue
    {
        func wrongType(_ expected: String) -> TemplateError {
            TemplateError(.evaluation, "filter '\(filter.rawValue)' needs \(expected), got \(value.typeName)", offset: offset)
        }
        switch filter {
        case .json:
            var out = ""
            guard JSONRendering.render(value, into: &out, budget: limits.maxOutputBytes) else {
                throw outputLimitError(offset: offset)
            }
            return .string(out)
        case .length:
            switch value {
            case .string(let s): return .int(s.count)
            case .array(let a): return .int(a.count)
            case .object(let o): return .int(o.count)
            case .null: return .int(0)
            default: throw wrongType("a string, list or object")
            }
        case .default:
            return value == .null ? (arguments.first ?? .null) : value
        case .upper, .lower, .trim:
            switch value {
            case .null: return .null
            case .string(let s):
                let result: String
                switch filter {
                case .upper: result = s.uppercased()
                case .lower: result = s.lowercased()
                default: result = String(s.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
                }
                try checkOutput(result, offset: offset)
                return .string(result)
            default: throw wrongType("a string")
            }
        case .join:
            guard case .array(let items) = value else {
                if value == .null { return .string("") }
                throw wrongType("a list")
            }
            var separator = ""
            if let s = arguments.first {
                guard case .string(let text) = s else {
                    throw TemplateError(.evaluation, "join's separator must be a string, got \(s.typeName)", offset: offset)
                }
                separator = text
            }
            var out = ""
            for (i, item) in items.enumerated() {
                visits += 1
                if visits > limits.maxSteps {
                    throw TemplateError(.limitExceeded, "template evaluation took more than \(limits.maxSteps) steps", offset: offset)
                }
                if i > 0 { out += separator }
                try appendRendered(item, to: &out, offset: offset)
                try checkOutput(out, offset: offset)
            }
            return .string(out)
        case .first, .last:
            switch value {
            case .array(let a): return (filter == .first ? a.first : a.last) ?? .null
            case .string(let s): return (filter == .first ? s.first : s.last).map { .string(String($0)) } ?? .null
            case .null: return .null
            default: throw wrongType("a list or string")
            }
        case .keys:
            switch value {
            case .object(let o): return .array(o.keys.sorted().map { .string($0) })
            case .null: return .array([])
            default: throw wrongType("an object")
            }
        }
    }

    /// Appends `value` as text: strings as they are, `null` as nothing, others as compact JSON.
    func appendRendered(_ value: JSONValue, to out: inout String, offset: Int?) throws(TemplateError) {
        switch value {
        case .string(let s): out += s
        case .null: return
        default:
            guard JSONRendering.render(value, into: &out, budget: limits.maxOutputBytes) else {
                throw outputLimitError(offset: offset)
            }
        }
        try checkOutput(out, offset: offset)
    }

    func checkOutput(_ s: String, offset: Int?) throws(TemplateError) {
        if s.utf8.count > limits.maxOutputBytes { throw outputLimitError(offset: offset) }
    }

    func outputLimitError(offset: Int?) -> TemplateError {
        TemplateError(.limitExceeded, "template output exceeds \(limits.maxOutputBytes) bytes", offset: offset)
    }
}

extension JSONValue {
    /// Template truthiness: `null`, `false`, `0`, `""`, `[]` and `{}` are false; all else is true.
    public var isTruthy: Bool {
        switch self {
        case .null: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0 && !d.isNaN
        case .string(let s): !s.isEmpty
        case .array(let a): !a.isEmpty
        case .object(let o): !o.isEmpty
        }
    }

    /// Deep equality in which numbers compare by value (`1 == 1.0`).
    public func jsonEquals(_ other: JSONValue) -> Bool {
        switch (self, other) {
        case (.int(let a), .int(let b)): return a == b
        case (.int, .double), (.double, .int), (.double, .double):
            return doubleValue == other.doubleValue
        case (.array(let a), .array(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.jsonEquals($1) }
        case (.object(let a), .object(let b)):
            guard a.count == b.count else { return false }
            for (key, value) in a {
                guard let o = b[key], value.jsonEquals(o) else { return false }
            }
            return true
        default:
            return self == other
        }
    }

    /// Compact JSON text with sorted object keys (deterministic, so it can be hashed
    /// and compared). Non-finite numbers render as `null`.
    public var compactJSON: String { JSONRendering.compact(self) }
}

/// Compact JSON rendering with an optional byte budget.
enum JSONRendering {
    static func compact(_ value: JSONValue) -> String {
        var out = ""
        _ = render(value, into: &out, budget: Int.max)
        return out
    }

    static func quoted(_ s: String) -> String {
        var out = ""
        appendQuoted(s, to: &out)
        return out
    }

    /// Appends `value`; returns false (leaving `out` partial) once `out` exceeds `budget` UTF-8 bytes.
    static func render(_ value: JSONValue, into out: inout String, budget: Int) -> Bool {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if !d.isFinite {
                out += "null"
            } else if d == d.rounded(), abs(d) < 1e15 {
                out += String(Int(d)) + ".0"
            } else {
                out += String(d)
            }
        case .string(let s): appendQuoted(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                guard render(item, into: &out, budget: budget) else { return false }
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (i, key) in object.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                appendQuoted(key, to: &out)
                out += ":"
                guard let item = object[key], render(item, into: &out, budget: budget) else { return false }
            }
            out += "}"
        }
        return out.utf8.count <= budget
    }

    static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
    }
}
