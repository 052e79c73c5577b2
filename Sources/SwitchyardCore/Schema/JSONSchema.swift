/// The subset of JSON Schema Switchyard uses for model step `output:` schemas and
/// tool `parameters:`.
///
/// A schema is checked when it is constructed, so a typo such as `type: strin` is an
/// apply-time error rather than a run-time surprise. Supported keywords: `type`
/// (a name or a list of names), `properties`, `required`, `additionalProperties`
/// (boolean or schema), `items`, `enum`, `const`, `minimum`, `maximum`,
/// `minLength`, `maxLength`, `pattern`, `minItems`, `maxItems`, `anyOf`, `oneOf`. Other keywords
/// (`description`, `title`, `format`, `default`, `examples`, `$schema`, …) are
/// accepted and ignored. `true` and `false` are the schemas that accept everything
/// and nothing.
///
/// `pattern` is compiled once, with Swift `Regex`, when the schema is constructed (an
/// invalid expression is a ``SchemaError``). As JSON Schema specifies, it is an
/// unanchored search: `"[0-9]"` accepts `"ab1"`; write `^…$` to match the whole
/// string. Matching works on Unicode scalars, close to the ECMA-262 dialect JSON
/// Schema names; ECMA-only syntax that Swift does not accept is rejected at apply time.
public struct JSONSchema: Sendable, Hashable {
    /// The schema as written.
    public let schema: JSONValue
    let root: CompiledSchema

    public init(_ schema: JSONValue) throws(SchemaError) {
        self.schema = schema
        root = try CompiledSchema.compile(schema, path: [], depth: 0)
    }

    public static func == (lhs: JSONSchema, rhs: JSONSchema) -> Bool { lhs.schema == rhs.schema }
    public func hash(into hasher: inout Hasher) { hasher.combine(schema) }

    /// Checks `value`; returns one human-readable message per problem, each starting
    /// with the JSON path of the offending value (`$.category: expected string, got integer`).
    /// An empty result means the value is valid.
    public func validate(_ value: JSONValue) -> [String] {
        var problems: [String] = []
        root.validate(value, path: "$", into: &problems)
        return problems
    }
}

/// Why a schema is malformed: the message and where in the schema the problem is.
public struct SchemaError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// Keys and indices leading to the offending part of the schema, e.g.
    /// `["properties", "category", "type"]`.
    public var path: [String]

    public init(message: String, path: [String]) {
        self.message = message
        self.path = path
    }

    public var description: String {
        path.isEmpty ? message : "\(path.joined(separator: ".")): \(message)"
    }
}

final class CompiledSchema: Sendable {
    static let typeNames = ["string", "number", "integer", "boolean", "object", "array", "null"]
    static let maxDepth = 64

    let acceptsNothing: Bool
    let types: [String]?
    let properties: [(String, CompiledSchema)]
    let required: [String]
    let additionalProperties: CompiledSchema?
    let forbidsAdditional: Bool
    let items: CompiledSchema?
    let enumValues: [JSONValue]?
    let constValue: JSONValue?
    let minimum: Double?
    let maximum: Double?
    let minLength: Int?
    let maxLength: Int?
    let pattern: CompiledPattern?
    let minItems: Int?
    let maxItems: Int?
    let anyOf: [CompiledSchema]?
    let oneOf: [CompiledSchema]?

    private init(
        acceptsNothing: Bool = false, types: [String]? = nil, properties: [(String, CompiledSchema)] = [], required: [String] = [],
        additionalProperties: CompiledSchema? = nil, forbidsAdditional: Bool = false, items: CompiledSchema? = nil,
        enumValues: [JSONValue]? = nil, constValue: JSONValue? = nil, minimum: Double? = nil, maximum: Double? = nil,
        minLength: Int? = nil, maxLength: Int? = nil, pattern: CompiledPattern? = nil, minItems: Int? = nil, maxItems: Int? = nil,
        anyOf: [CompiledSchema]? = nil, oneOf: [CompiledSchema]? = nil
    ) {
        self.acceptsNothing = acceptsNothing
        self.types = types
        self.properties = properties
        self.required = required
        self.additionalProperties = additionalProperties
        self.forbidsAdditional = forbidsAdditional
        self.items = items
        self.enumValues = enumValues
        self.constValue = constValue
        self.minimum = minimum
        self.maximum = maximum
        self.minLength = minLength
        self.maxLength = maxLength
        self.pattern = pattern
        self.minItems = minItems
        self.maxItems = maxItems
        self.anyOf = anyOf
        self.oneOf = oneOf
    }

    static func compile(_ schema: JSONValue, path: [String], depth: Int) throws(SchemaError) -> CompiledSchema {
        guard depth <= maxDepth else {
            throw SchemaError(message: "schema is nested more than \(maxDepth) levels deep", path: path)
        }
        switch schema {
        case .bool(let b): return CompiledSchema(acceptsNothing: !b)
        case .object: break
        default:
            throw SchemaError(message: "a schema must be a mapping (or true/false), got \(schema.typeName)", path: path)
        }
        guard case .object(let o) = schema else { return CompiledSchema() }
        let keywords = SchemaKeywords(object: o, path: path, depth: depth)
        let (additional, forbidsAdditional) = try keywords.additionalProperties()
        return CompiledSchema(
            types: try keywords.types(), properties: try keywords.properties(), required: try keywords.required(),
            additionalProperties: additional, forbidsAdditional: forbidsAdditional,
            items: try o["items"].map { (i) throws(SchemaError) in try compile(i, path: path + ["items"], depth: depth + 1) },
            enumValues: try keywords.enumValues(), constValue: o["const"],
            minimum: try keywords.number("minimum"), maximum: try keywords.number("maximum"),
            minLength: try keywords.count("minLength"), maxLength: try keywords.count("maxLength"), pattern: try keywords.pattern(),
            minItems: try keywords.count("minItems"), maxItems: try keywords.count("maxItems"),
            anyOf: try keywords.list("anyOf"), oneOf: try keywords.list("oneOf"))
    }

    static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("boolean", .bool), ("object", .object), ("array", .array), ("null", .null): true
        case ("number", .int), ("number", .double): true
        case ("integer", .int): true
        case ("integer", .double(let d)): d.isFinite && d == d.rounded()
        default: false
        }
    }

    func validate(_ value: JSONValue, path: String, into problems: inout [String]) {
        if acceptsNothing {
            problems.append("\(path): no value is allowed here")
            return
        }
        if let types, !types.contains(where: { Self.matches(value, type: $0) }) {
            problems.append("\(path): expected \(types.joined(separator: " or ")), got \(value.typeName)")
            return
        }
        if let constValue, !value.jsonEquals(constValue) {
            problems.append("\(path): expected \(JSONRendering.compact(constValue)), got \(JSONRendering.compact(value))")
        }
        if let enumValues, !enumValues.contains(where: { value.jsonEquals($0) }) {
            let allowed = enumValues.map(JSONRendering.compact).joined(separator: ", ")
            problems.append("\(path): expected one of \(allowed), got \(JSONRendering.compact(value))")
        }
        switch value {
        case .int, .double:
            if let d = value.doubleValue {
                if let minimum, d < minimum {
                    problems.append("\(path): must be at least \(Self.number(minimum)), got \(JSONRendering.compact(value))")
                }
                if let maximum, d > maximum {
                    problems.append("\(path): must be at most \(Self.number(maximum)), got \(JSONRendering.compact(value))")
                }
            }
        case .string(let s):
            if let minLength, s.count < minLength { problems.append("\(path): must have at least \(minLength) characters, got \(s.count)") }
            if let maxLength, s.count > maxLength { problems.append("\(path): must have at most \(maxLength) characters, got \(s.count)") }
            if let pattern, !pattern.matches(s) {
                problems.append(
                    "\(path): must match the pattern \(JSONRendering.quoted(pattern.source)), got \(JSONRendering.quoted(Self.excerpt(s)))")
            }
        case .array(let a):
            if let minItems, a.count < minItems { problems.append("\(path): must have at least \(minItems) items, got \(a.count)") }
            if let maxItems, a.count > maxItems { problems.append("\(path): must have at most \(maxItems) items, got \(a.count)") }
            if let items {
                for (i, item) in a.enumerated() { items.validate(item, path: "\(path)[\(i)]", into: &problems) }
            }
        case .object(let o):
            validateProperties(of: o, path: path, into: &problems)
        default:
            break
        }
        validateAlternatives(value, path: path, into: &problems)
    }

    /// `required`, `properties` and `additionalProperties` of an object value.
    private func validateProperties(of o: [String: JSONValue], path: String, into problems: inout [String]) {
        for name in required where o[name] == nil {
            problems.append("\(JSONPath.appending(name, to: path)): required property is missing")
        }
        let known = Set(properties.map(\.0))
        for (name, schema) in properties {
            if let v = o[name] { schema.validate(v, path: JSONPath.appending(name, to: path), into: &problems) }
        }
        for name in o.keys.sorted() where !known.contains(name) {
            guard let v = o[name] else { continue }
            if forbidsAdditional {
                let allowed = properties.isEmpty ? "none" : properties.map(\.0).joined(separator: ", ")
                problems.append("\(JSONPath.appending(name, to: path)): unexpected property (allowed: \(allowed))")
            } else if let additionalProperties {
                additionalProperties.validate(v, path: JSONPath.appending(name, to: path), into: &problems)
            }
        }
    }

    /// `anyOf` and `oneOf`: how many of the alternatives the value matches.
    private func validateAlternatives(_ value: JSONValue, path: String, into problems: inout [String]) {
        if let anyOf {
            var branchProblems: [[String]] = []
            for schema in anyOf {
                var p: [String] = []
                schema.validate(value, path: path, into: &p)
                if p.isEmpty {
                    branchProblems = []
                    break
                }
                branchProblems.append(p)
            }
            if let first = branchProblems.first?.first, branchProblems.count == anyOf.count {
                problems.append("\(path): matches none of the \(anyOf.count) allowed schemas (first: \(first))")
            }
        }
        if let oneOf {
            var matching = 0
            var firstProblem: String?
            for schema in oneOf {
                var p: [String] = []
                schema.validate(value, path: path, into: &p)
                if p.isEmpty { matching += 1 } else if firstProblem == nil { firstProblem = p.first }
            }
            if matching == 0 {
                problems.append("\(path): matches none of the \(oneOf.count) allowed schemas (first: \(firstProblem ?? "no match"))")
            } else if matching > 1 {
                problems.append("\(path): matches \(matching) of the oneOf schemas; exactly one must match")
            }
        }
    }

    /// The start of a long string, so that one bad value does not flood a message.
    static func excerpt(_ s: String) -> String {
        s.count <= 80 ? s : String(s.prefix(80)) + "…"
    }

    static func number(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}

/// A `pattern` keyword compiled once: the source as written and the Swift `Regex`.
struct CompiledPattern: Sendable {
    let source: String
    // Why sharing is safe: `Regex` is not declared `Sendable` because of its generic
    // output, but it is an immutable value whose only shared state is the compiled
    // program, created lazily with an atomic initialise-once. The warm-up match in
    // `init` creates that program before the value is shared, so concurrent matches
    // only read it, and each match produces its own `AnyRegexOutput`.
    nonisolated(unsafe) let regex: Regex<AnyRegexOutput>

    init(_ source: String, path: [String]) throws(SchemaError) {
        self.source = source
        do {
            let regex = try Regex(source).matchingSemantics(.unicodeScalar)
            _ = try regex.firstMatch(in: "")
            self.regex = regex
        } catch {
            throw SchemaError(message: "pattern is not a valid regular expression: \(error)", path: path)
        }
    }

    /// Unanchored, as JSON Schema specifies: a match anywhere in `s` counts.
    func matches(_ s: String) -> Bool {
        (try? regex.firstMatch(in: s)) != nil
    }
}

/// Reads one schema object's keywords, each checked with the path of its mistake.
private struct SchemaKeywords {
    let object: [String: JSONValue]
    let path: [String]
    let depth: Int

    private func sub(_ schema: JSONValue, _ components: String...) throws(SchemaError) -> CompiledSchema {
        try CompiledSchema.compile(schema, path: path + components, depth: depth + 1)
    }

    func types() throws(SchemaError) -> [String]? {
        guard let t = object["type"] else { return nil }
        let names: [JSONValue]
        switch t {
        case .string: names = [t]
        case .array(let a) where !a.isEmpty: names = a
        default: throw SchemaError(message: "type must be a type name or a non-empty list of them", path: path + ["type"])
        }
        var collected: [String] = []
        for name in names {
            guard let s = name.stringValue, CompiledSchema.typeNames.contains(s) else {
                throw SchemaError(
                    message: "unknown type \(JSONRendering.compact(name)) (expected one of \(CompiledSchema.typeNames.joined(separator: ", ")))",
                    path: path + ["type"])
            }
            collected.append(s)
        }
        return collected
    }

    func properties() throws(SchemaError) -> [(String, CompiledSchema)] {
        guard let p = object["properties"] else { return [] }
        guard case .object(let props) = p else {
            throw SchemaError(message: "properties must be a mapping of property names to schemas", path: path + ["properties"])
        }
        var properties: [(String, CompiledSchema)] = []
        for key in props.keys.sorted() {
            if let schema = props[key] { properties.append((key, try sub(schema, "properties", key))) }
        }
        return properties
    }

    func required() throws(SchemaError) -> [String] {
        guard let r = object["required"] else { return [] }
        guard case .array(let names) = r else {
            throw SchemaError(message: "required must be a list of property names", path: path + ["required"])
        }
        var required: [String] = []
        for (i, name) in names.enumerated() {
            guard let s = name.stringValue else {
                throw SchemaError(message: "required must be a list of property names, got \(name.typeName)", path: path + ["required", String(i)])
            }
            required.append(s)
        }
        return required
    }

    /// `additionalProperties`: a schema for them, or whether they are forbidden.
    func additionalProperties() throws(SchemaError) -> (CompiledSchema?, forbidden: Bool) {
        guard let a = object["additionalProperties"] else { return (nil, false) }
        if case .bool(let b) = a { return (nil, !b) }
        return (try sub(a, "additionalProperties"), false)
    }

    func enumValues() throws(SchemaError) -> [JSONValue]? {
        guard let e = object["enum"] else { return nil }
        guard case .array(let values) = e, !values.isEmpty else {
            throw SchemaError(message: "enum must be a non-empty list of allowed values", path: path + ["enum"])
        }
        return values
    }

    func number(_ key: String) throws(SchemaError) -> Double? {
        guard let v = object[key] else { return nil }
        guard let d = v.doubleValue else {
            throw SchemaError(message: "\(key) must be a number, got \(v.typeName)", path: path + [key])
        }
        return d
    }

    func count(_ key: String) throws(SchemaError) -> Int? {
        guard let v = object[key] else { return nil }
        guard let i = v.intValue, i >= 0 else {
            throw SchemaError(message: "\(key) must be a non-negative integer, got \(JSONRendering.compact(v))", path: path + [key])
        }
        return i
    }

    func pattern() throws(SchemaError) -> CompiledPattern? {
        guard let p = object["pattern"] else { return nil }
        guard case .string(let source) = p else {
            throw SchemaError(message: "pattern must be a regular expression string, got \(p.typeName)", path: path + ["pattern"])
        }
        return try CompiledPattern(source, path: path + ["pattern"])
    }

    func list(_ key: String) throws(SchemaError) -> [CompiledSchema]? {
        guard let v = object[key] else { return nil }
        guard case .array(let schemas) = v, !schemas.isEmpty else {
            throw SchemaError(message: "\(key) must be a non-empty list of schemas", path: path + [key])
        }
        var compiled: [CompiledSchema] = []
        for (i, schema) in schemas.enumerated() { compiled.append(try sub(schema, key, String(i))) }
        return compiled
    }
}
