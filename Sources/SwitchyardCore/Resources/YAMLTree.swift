import Yams

/// A YAML node with its position, after scalars have been given their JSON types.
///
/// We convert Yams' `Node` ourselves rather than use untyped loading so that:
/// scalars follow the YAML 1.2 core schema (`yes`, `no`, `on`, `off` stay strings;
/// quoted scalars are always strings), every node keeps its 1-based line and
/// column, and alias expansion, nesting and size are bounded while walking.
struct YNode {
    enum Style: Equatable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    struct Scalar {
        /// The scalar's text (after YAML unescaping/folding).
        var text: String
        var style: Style
        /// The typed value under the core schema (or the explicit tag).
        var value: JSONValue
    }

    indirect enum Value {
        case scalar(Scalar)
        case mapping([(key: YNode, value: YNode)])
        case sequence([YNode])
    }

    var line: Int
    var column: Int
    var value: Value

    var scalar: Scalar? {
        if case .scalar(let s) = value { return s }
        return nil
    }

    /// The kind of node as a message names it: `a mapping`, `a list`, `a string`, `an integer`, …
    var kindDescription: String {
        switch value {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar(let s):
            switch s.value {
            case .null: "null"
            case .bool: "a boolean"
            case .int: "an integer"
            case .double: "a number"
            case .string: "a string"
            case .array: "a list"
            case .object: "a mapping"
            }
        }
    }

    /// The node as JSON (mapping keys become their text).
    var json: JSONValue {
        switch value {
        case .scalar(let s): return s.value
        case .sequence(let items): return .array(items.map(\.json))
        case .mapping(let pairs):
            var object: [String: JSONValue] = [:]
            for pair in pairs { object[pair.key.scalar?.text ?? ""] = pair.value.json }
            return .object(object)
        }
    }

    /// True for a document with no content (`---` alone, or only comments).
    var isEmptyDocument: Bool {
        if case .scalar(let s) = value, s.style == .plain, s.value == .null { return true }
        return false
    }
}

/// Converts Yams nodes into ``YNode``s, enforcing depth, alias and size limits.
struct YAMLTreeBuilder {
    struct LimitExceeded: Error {
        var line: Int
        var column: Int
        var message: String
    }

    let limits: ResourceLimits
    /// Anchors already defined; meeting one again means an alias was expanded.
    private var seenAnchors = Set<ObjectIdentifier>()
    private var aliasExpansions = 0
    private var nodes = 0
    /// Problems that are not limits (such as an unsupported tag); reported as issues.
    var problems: [(line: Int, column: Int, message: String)] = []

    init(limits: ResourceLimits) { self.limits = limits }

    mutating func build(_ node: Node) throws(LimitExceeded) -> YNode {
        try build(node, depth: 1)
    }

    private mutating func build(_ node: Node, depth: Int) throws(LimitExceeded) -> YNode {
        let line = node.mark?.line ?? 1
        let column = node.mark?.column ?? 1
        nodes += 1
        if nodes > limits.maxNodes {
            throw LimitExceeded(line: line, column: column, message: "the document has more than \(limits.maxNodes) nodes")
        }
        if depth > limits.maxDepth {
            throw LimitExceeded(line: line, column: column, message: "nesting is deeper than \(limits.maxDepth) levels")
        }
        if let anchor = node.anchor {
            if !seenAnchors.insert(ObjectIdentifier(anchor)).inserted {
                aliasExpansions += 1
                if aliasExpansions > limits.maxAliases {
                    throw LimitExceeded(
                        line: line, column: column,
                        message: "aliases expand more than \(limits.maxAliases) times (each alias inside an aliased structure counts too); "
                            + "the anchor '\(anchor.rawValue)' defined here is part of it")
                }
            }
        }
        switch node {
        case .scalar(let s):
            return YNode(line: line, column: column, value: .scalar(convert(s, line: line, column: column)))
        case .alias:
            // Yams' composer resolves aliases itself; this case only exists for emitting.
            return YNode(line: line, column: column, value: .scalar(.init(text: "", style: .plain, value: .null)))
        case .sequence(let sequence):
            var items: [YNode] = []
            items.reserveCapacity(sequence.count)
            for item in sequence { items.append(try build(item, depth: depth + 1)) }
            return YNode(line: line, column: column, value: .sequence(items))
        case .mapping(let mapping):
            var pairs: [(key: YNode, value: YNode)] = []
            var merged: [(key: YNode, value: YNode)] = []
            for (key, value) in mapping {
                // Keys are read as their text: Yams resolves key tags in place while
                // checking for duplicates, so a key's tag no longer says what was written.
                let k = try buildKey(key, depth: depth + 1)
                if case .scalar(let ks) = k.value, ks.style == .plain, ks.text == "<<" {
                    // Merge key: copy the pairs of the merged mapping(s); explicit keys win.
                    let v = try build(value, depth: depth + 1)
                    switch v.value {
                    case .mapping(let p): merged += p
                    case .sequence(let maps):
                        for m in maps {
                            if case .mapping(let p) = m.value {
                                merged += p
                            } else {
                                problems.append((m.line, m.column, "a merge key '<<' takes a mapping or a list of mappings"))
                            }
                        }
                    default:
                        problems.append((v.line, v.column, "a merge key '<<' takes a mapping or a list of mappings"))
                    }
                    continue
                }
                if k.scalar == nil {
                    problems.append((k.line, k.column, "a mapping key must be a plain string, not \(k.kindDescription)"))
                    continue
                }
                pairs.append((k, try build(value, depth: depth + 1)))
            }
            if !merged.isEmpty {
                var present = Set(pairs.compactMap { $0.key.scalar?.text })
                for pair in merged {
                    guard let name = pair.key.scalar?.text, present.insert(name).inserted else { continue }
                    pairs.append(pair)
                }
            }
            return YNode(line: line, column: column, value: .mapping(pairs))
        }
    }

    private mutating func buildKey(_ node: Node, depth: Int) throws(LimitExceeded) -> YNode {
        guard case .scalar(let s) = node else { return try build(node, depth: depth) }
        let line = node.mark?.line ?? 1
        let column = node.mark?.column ?? 1
        nodes += 1
        checkNoNUL(s.string, line: line, column: column)
        let style: YNode.Style = s.style == .plain || s.style == .any ? .plain : .doubleQuoted
        return YNode(line: line, column: column, value: .scalar(.init(text: s.string, style: style, value: .string(s.string))))
    }

    private mutating func convert(_ s: Node.Scalar, line: Int, column: Int) -> YNode.Scalar {
        let style: YNode.Style
        switch s.style {
        case .singleQuoted: style = .singleQuoted
        case .doubleQuoted: style = .doubleQuoted
        case .literal: style = .literal
        case .folded: style = .folded
        case .plain, .any: style = .plain
        }
        let tag = s.tag.description
        let text = s.string
        checkNoNUL(text, line: line, column: column)
        switch tag {
        case "", "?":
            return .init(text: text, style: style, value: style == .plain ? Self.resolvePlain(text) : .string(text))
        case "!", "tag:yaml.org,2002:str":
            return .init(text: text, style: style, value: .string(text))
        case "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null":
            let resolved = Self.resolvePlain(text)
            let ok: Bool
            switch (tag, resolved) {
            case ("tag:yaml.org,2002:int", .int), ("tag:yaml.org,2002:float", .double), ("tag:yaml.org,2002:bool", .bool),
                ("tag:yaml.org,2002:null", .null):
                ok = true
            case ("tag:yaml.org,2002:float", .int(let i)):
                return .init(text: text, style: style, value: .double(Double(i)))
            default:
                ok = false
            }
            if !ok { problems.append((line, column, "'\(text)' does not match its tag \(tag)")) }
            return .init(text: text, style: style, value: ok ? resolved : .string(text))
        default:
            problems.append((line, column, "unsupported tag '\(tag)' (only the standard !!str, !!int, !!float, !!bool and !!null tags are allowed)"))
            return .init(text: text, style: style, value: .string(text))
        }
    }

    /// Refuses U+0000 written as an escape (`"\0"`, `"\x00"`, `"\u0000"`): the raw
    /// character is refused by the pre-scan, and no stored text (PostgreSQL's `text`,
    /// the JSON of a spec) may hold it.
    private mutating func checkNoNUL(_ text: String, line: Int, column: Int) {
        if text.unicodeScalars.contains("\0") {
            problems.append((line, column, "a string cannot contain the NUL character (U+0000)"))
        }
    }

    /// The YAML 1.2 core schema for plain scalars: null, booleans, integers
    /// (decimal, `0o` octal, `0x` hex), floats (with `.inf` and `.nan`); anything
    /// else — including `yes`, `no`, `on`, `off` — is a string.
    static func resolvePlain(_ text: String) -> JSONValue {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.first, first == "-" || first == "+" || first == "." || ("0"..."9").contains(first) else {
            return .string(text)
        }
        func allDigits(_ s: ArraySlice<Unicode.Scalar>, _ ok: (Unicode.Scalar) -> Bool) -> Bool { !s.isEmpty && s.allSatisfy(ok) }
        let isDigit: (Unicode.Scalar) -> Bool = { ("0"..."9").contains($0) }
        if text.hasPrefix("0o"), allDigits(scalars.dropFirst(2), { ("0"..."7").contains($0) }) {
            return Int(String(text.dropFirst(2)), radix: 8).map(JSONValue.int) ?? .string(text)
        }
        if text.hasPrefix("0x"), allDigits(scalars.dropFirst(2), { isDigit($0) || ("a"..."f").contains($0) || ("A"..."F").contains($0) }) {
            return Int(String(text.dropFirst(2)), radix: 16).map(JSONValue.int) ?? .string(text)
        }
        let unsigned = first == "-" || first == "+" ? scalars.dropFirst() : scalars[...]
        if allDigits(unsigned, isDigit) {
            if let i = Int(text) { return .int(i) }
            return Double(text).map(JSONValue.double) ?? .string(text)
        }
        // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        var i = unsigned.startIndex
        let end = unsigned.endIndex
        var mantissaDigits = 0
        while i < end, isDigit(unsigned[i]) {
            i += 1
            mantissaDigits += 1
        }
        if i < end, unsigned[i] == "." {
            i += 1
            while i < end, isDigit(unsigned[i]) {
                i += 1
                mantissaDigits += 1
            }
        }
        guard mantissaDigits > 0 else { return .string(text) }
        if i < end, unsigned[i] == "e" || unsigned[i] == "E" {
            i += 1
            if i < end, unsigned[i] == "-" || unsigned[i] == "+" { i += 1 }
            var exponentDigits = 0
            while i < end, isDigit(unsigned[i]) {
                i += 1
                exponentDigits += 1
            }
            guard exponentDigits > 0 else { return .string(text) }
        }
        guard i == end, let d = Double(text.hasPrefix("+") ? String(text.dropFirst()) : text) else { return .string(text) }
        return .double(d)
    }
}
