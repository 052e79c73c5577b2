/// A parsed template string: literal text with `{{ expression }}` holes.
///
/// Templates are parsed once, when a resource is loaded, so that syntax errors are
/// reported at apply time with a location, and evaluated many times by the engine.
/// The expression language is deliberately small and safe: paths, literals,
/// comparisons, boolean logic, a ternary and a fixed set of filters. There are no
/// loops and no function calls, and evaluation is bounded by ``TemplateLimits``.
///
/// - A string that is exactly one `{{ … }}` (whitespace around it allowed) yields
///   the expression's value with its JSON type.
/// - A string mixing text and `{{ … }}` yields a string; non-string values are
///   rendered as compact JSON and `null` renders as the empty string.
/// - A string without `{{` is a literal.
///
/// Equality, hashing and `Codable` use the source text only: a template encodes as
/// a single JSON string and is re-parsed when decoded.
public struct Template: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The template text as written.
    public var source: String { storage.source }

    let storage: Storage

    struct Storage: Sendable {
        var source: String
        var segments: [TemplateSegment]
        var references: [TemplateReference]
    }

    /// Parses `source`, using the default size limit.
    public init(parsing source: String) throws(TemplateError) {
        try self.init(parsing: source, limits: .default)
    }

    /// Parses `source`; a source larger than `limits.maxSourceBytes` is rejected.
    public init(parsing source: String, limits: TemplateLimits) throws(TemplateError) {
        if source.utf8.count > limits.maxSourceBytes {
            throw TemplateError(
                .limitExceeded,
                "template is \(source.utf8.count) bytes; the limit is \(limits.maxSourceBytes) bytes",
                offset: 0)
        }
        let segments = try TemplateParser.parseSegments(source)
        let references = try TemplateAnalysis.references(in: segments)
        storage = Storage(source: source, segments: segments, references: references)
    }

    /// A template that evaluates to exactly `text`. When `text` contains `{{`, the
    /// source becomes a string-literal expression (`{{ "…" }}`) so that it still
    /// means the same text after an encode/decode round trip.
    public static func literal(_ text: String) -> Template {
        guard text.contains("{{") else {
            return Template(storage: Storage(source: text, segments: text.isEmpty ? [] : [.text(text)], references: []))
        }
        let source = "{{ " + JSONRendering.quoted(text) + " }}"
        return Template(storage: Storage(source: source, segments: [.expression(.literal(.string(text)), offset: 0)], references: []))
    }

    private init(storage: Storage) { self.storage = storage }

    /// True when the template contains no `{{ }}` expression.
    public var isLiteral: Bool {
        !storage.segments.contains { if case .expression = $0 { true } else { false } }
    }

    /// Ids of the steps the template reads (`steps.<id>…`).
    public var referencedSteps: Set<String> {
        Set(storage.references.compactMap { $0.root == "steps" ? $0.firstKey : nil })
    }

    /// Names of the secrets the template reads (`secrets.<name>`): what a tool call
    /// must open, and nothing more.
    public var referencedSecrets: Set<String> { referencedKeys(of: "secrets") }

    /// The first keys read under a variable: `args.q` and `args["q"]` give `q`.
    public func referencedKeys(of root: String) -> Set<String> {
        Set(storage.references.compactMap { $0.root == root ? $0.firstKey : nil })
    }

    /// The first segment of every variable path (`inputs`, `steps`, `run`, `secrets`, a map item name, …).
    public var referencedRoots: Set<String> {
        Set(storage.references.map(\.root))
    }

    /// Every variable path the template reads, with its root, its first static key
    /// (when there is one) and its offset in the source.
    var references: [TemplateReference] { storage.references }

    public var description: String { source }

    public static func == (lhs: Template, rhs: Template) -> Bool { lhs.source == rhs.source }
    public func hash(into hasher: inout Hasher) { hasher.combine(source) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do {
            try self.init(parsing: text)
        } catch {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(source)
    }

    /// Evaluates the template against `scope`.
    ///
    /// Missing paths evaluate to `null`; an unknown root variable, a type error in an
    /// operator or filter, or exceeding `limits` is an error.
    public func evaluate(_ scope: TemplateScope, limits: TemplateLimits = .default) throws(TemplateError) -> JSONValue {
        var evaluator = TemplateEvaluator(scope: scope, limits: limits)
        let segments = storage.segments
        // Exactly one expression, with at most whitespace around it: typed result.
        var single: (TemplateExpression, Int)?
        var expressionCount = 0
        var onlyWhitespaceText = true
        for segment in segments {
            switch segment {
            case .expression(let e, let offset):
                expressionCount += 1
                single = (e, offset)
            case .text(let t):
                if !t.allSatisfy(\.isWhitespace) { onlyWhitespaceText = false }
            }
        }
        if expressionCount == 1, onlyWhitespaceText, let single {
            return try evaluator.evaluate(single.0)
        }
        var output = ""
        for segment in segments {
            switch segment {
            case .text(let t):
                output += t
            case .expression(let e, let offset):
                let value = try evaluator.evaluate(e)
                try evaluator.appendRendered(value, to: &output, offset: offset)
            }
            try evaluator.checkOutput(output, offset: nil)
        }
        return .string(output)
    }
}

/// A template inside a JSON value (such as a tool step's `with:`), with the path at
/// which it was found (`$.query`, `$.items[0]`).
public struct EmbeddedTemplate: Sendable, Hashable {
    public var path: String
    public var template: Template

    public init(path: String, template: Template) {
        self.path = path
        self.template = template
    }
}

extension Template {
    /// Parses every string inside `value` that contains a `{{ }}` expression, so that
    /// JSON arguments can be checked at load time. The error of the first string that
    /// does not parse is rethrown with its path in front of the message.
    public static func embedded(in value: JSONValue) throws(TemplateError) -> [EmbeddedTemplate] {
        var found: [EmbeddedTemplate] = []
        try collect(value, path: "$", into: &found)
        return found
    }

    private static func collect(_ value: JSONValue, path: String, into found: inout [EmbeddedTemplate]) throws(TemplateError) {
        switch value {
        case .string(let s):
            guard s.contains("{{") else { return }
            do {
                found.append(EmbeddedTemplate(path: path, template: try Template(parsing: s)))
            } catch {
                var e = error
                e.message = "\(path): \(e.message)"
                throw e
            }
        case .array(let items):
            for (i, item) in items.enumerated() { try collect(item, path: "\(path)[\(i)]", into: &found) }
        case .object(let object):
            for key in object.keys.sorted() {
                if let item = object[key] { try collect(item, path: JSONPath.appending(key, to: path), into: &found) }
            }
        default:
            return
        }
    }
}

extension JSONValue {
    /// Evaluates every string in this value that holds a template (object keys are
    /// left alone), e.g. a tool step's `with:` arguments. Strings without `{{` are
    /// kept as they are.
    public func renderTemplates(_ scope: TemplateScope, limits: TemplateLimits = .default) throws(TemplateError) -> JSONValue {
        switch self {
        case .string(let s):
            guard s.contains("{{") else { return self }
            return try Template(parsing: s, limits: limits).evaluate(scope, limits: limits)
        case .array(let items):
            var out: [JSONValue] = []
            out.reserveCapacity(items.count)
            for item in items { out.append(try item.renderTemplates(scope, limits: limits)) }
            return .array(out)
        case .object(let object):
            var out: [String: JSONValue] = [:]
            for (key, item) in object { out[key] = try item.renderTemplates(scope, limits: limits) }
            return .object(out)
        default:
            return self
        }
    }
}

/// The variables a template can read.
///
/// `steps` maps a step id to that step's output and is exposed as
/// `steps.<id>.output`, leaving room for more per-step fields later. `secrets` is
/// bound only where secrets may be used (tool HTTP headers); `extra` binds further
/// names such as a map step's item name.
public struct TemplateScope: Sendable {
    public var variables: [String: JSONValue]

    public init(
        inputs: JSONValue, steps: [String: JSONValue] = [:], run: JSONValue = .null,
        secrets: [String: String]? = nil, extra: [String: JSONValue] = [:]
    ) {
        var variables: [String: JSONValue] = [
            "inputs": inputs,
            "steps": .object(steps.mapValues { .object(["output": $0]) }),
            "run": run,
        ]
        if let secrets { variables["secrets"] = .object(secrets.mapValues { .string($0) }) }
        for (name, value) in extra { variables[name] = value }
        self.variables = variables
    }

    /// A scope with exactly these variables.
    public init(variables: [String: JSONValue]) {
        self.variables = variables
    }
}

/// Bounds on template work, so that a hostile or careless template cannot take
/// unbounded time or memory.
public struct TemplateLimits: Sendable, Hashable {
    /// The largest string a template may produce, in UTF-8 bytes.
    public var maxOutputBytes: Int
    /// The most expression nodes one evaluation may visit.
    public var maxSteps: Int
    /// The largest template source accepted by the parser, in UTF-8 bytes.
    public var maxSourceBytes: Int

    public init(maxOutputBytes: Int = 1 << 20, maxSteps: Int = 100_000, maxSourceBytes: Int = 64 << 10) {
        self.maxOutputBytes = maxOutputBytes
        self.maxSteps = maxSteps
        self.maxSourceBytes = maxSourceBytes
    }

    public static let `default` = TemplateLimits()
}

/// Why a template could not be parsed or evaluated.
public struct TemplateError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The template text is not valid (reported at load time).
        case syntax
        /// Evaluation failed: unknown variable, wrong operand type, bad filter input.
        case evaluation
        /// A size or work limit was hit.
        case limitExceeded = "limit_exceeded"
    }

    public var kind: Kind
    public var message: String
    /// Offset of the problem in the template source, counted in Unicode scalars
    /// from 0, when known. Add it to the column of a single-line scalar to point at
    /// the exact character.
    public var offset: Int?

    public init(_ kind: Kind, _ message: String, offset: Int? = nil) {
        self.kind = kind
        self.message = message
        self.offset = offset
    }

    public var description: String {
        if let offset { return "\(message) (at offset \(offset) of the template)" }
        return message
    }
}

/// Helpers for the `$.a.b[0]` paths used in messages.
enum JSONPath {
    static func appending(_ key: String, to path: String) -> String {
        if let first = key.unicodeScalars.first, first == "_" || first.properties.isAlphabetic,
            key.unicodeScalars.allSatisfy({ $0 == "_" || $0 == "-" || ($0.isASCII && $0.properties.isAlphabetic) || ("0"..."9").contains($0) })
        {
            return "\(path).\(key)"
        }
        return "\(path)[\(JSONRendering.quoted(key))]"
    }
}
