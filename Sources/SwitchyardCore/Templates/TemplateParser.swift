/// The parsed form of a template: literal text and expressions, in order.
enum TemplateSegment: Sendable {
    case text(String)
    /// An expression and the offset of its `{{`.
    case expression(TemplateExpression, offset: Int)
}

/// The filters a template may apply with `|`, and how many arguments each takes.
enum TemplateFilter: String, Sendable, CaseIterable {
    case json, length, `default`, upper, lower, join, trim, first, last, keys

    var arity: ClosedRange<Int> {
        switch self {
        case .default: 1...1
        case .join: 0...1
        default: 0...0
        }
    }
}

enum BinaryOperator: String, Sendable {
    case equal = "=="
    case notEqual = "!="
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
}

/// An expression tree. Every node that can fail at evaluation keeps its source offset.
indirect enum TemplateExpression: Sendable {
    case literal(JSONValue)
    case variable(String, offset: Int)
    case member(TemplateExpression, String, offset: Int)
    case index(TemplateExpression, TemplateExpression, offset: Int)
    case not(TemplateExpression)
    case negate(TemplateExpression, offset: Int)
    case compare(BinaryOperator, TemplateExpression, TemplateExpression, offset: Int)
    case and(TemplateExpression, TemplateExpression)
    case or(TemplateExpression, TemplateExpression)
    case conditional(TemplateExpression, TemplateExpression, TemplateExpression)
    case filter(TemplateExpression, TemplateFilter, [TemplateExpression], offset: Int)
}

/// A variable path read by a template: `steps.classify.output` has root `steps`
/// and first key `classify`.
struct TemplateReference: Sendable, Hashable {
    var root: String
    var firstKey: String?
    var offset: Int
}

enum TemplateToken: Equatable {
    case identifier(String)
    case number(JSONValue)
    case string(String)
    case symbol(String)
    case close
}

/// Splits a template into segments and parses each `{{ }}` (recursive descent).
struct TemplateParser {
    static let maxNesting = 64

    static func parseSegments(_ source: String) throws(TemplateError) -> [TemplateSegment] {
        let scalars = Array(source.unicodeScalars)
        var segments: [TemplateSegment] = []
        var text = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "{", i + 1 < scalars.count, scalars[i + 1] == "{" {
                if !text.isEmpty {
                    segments.append(.text(String(text)))
                    text = String.UnicodeScalarView()
                }
                let open = i
                var lexer = TemplateLexer(scalars: scalars, position: i + 2, open: open)
                let tokens = try lexer.tokensUntilClose()
                var parser = TemplateParser(tokens: tokens, endOffset: lexer.position - 2)
                let expression = try parser.parseExpression()
                segments.append(.expression(expression, offset: open))
                i = lexer.position
            } else {
                text.append(scalars[i])
                i += 1
            }
        }
        if !text.isEmpty { segments.append(.text(String(text))) }
        return segments
    }

    var tokens: [(token: TemplateToken, offset: Int)]
    var index = 0
    var depth = 0
    /// Offset of the closing `}}`, for "expected …" errors at the end.
    let endOffset: Int

    init(tokens: [(token: TemplateToken, offset: Int)], endOffset: Int) {
        self.tokens = tokens
        self.endOffset = endOffset
    }

    var current: TemplateToken? { index < tokens.count ? tokens[index].token : nil }
    var currentOffset: Int { index < tokens.count ? tokens[index].offset : endOffset }

    mutating func parseExpression() throws(TemplateError) -> TemplateExpression {
        guard !tokens.isEmpty else {
            throw TemplateError(.syntax, "empty expression: write a path such as inputs.name between '{{' and '}}'", offset: endOffset)
        }
        let e = try parseTernary()
        if index < tokens.count {
            throw TemplateError(.syntax, "unexpected \(describe(tokens[index].token)) after a complete expression", offset: currentOffset)
        }
        return e
    }

    private mutating func isSymbol(_ s: String) -> Bool {
        if case .symbol(s) = current { return true }
        return false
    }

    private mutating func expect(_ s: String, _ context: String) throws(TemplateError) {
        guard isSymbol(s) else {
            throw TemplateError(
                .syntax, "expected '\(s)' \(context), found \(current.map(describe) ?? "the end of the expression")", offset: currentOffset)
        }
        index += 1
    }

    private func describe(_ token: TemplateToken) -> String {
        switch token {
        case .identifier(let s): "'\(s)'"
        case .number(let n): "number \(JSONRendering.compact(n))"
        case .string(let s): "string \(JSONRendering.quoted(s))"
        case .symbol(let s): "'\(s)'"
        case .close: "'}}'"
        }
    }

    private mutating func enter() throws(TemplateError) {
        depth += 1
        if depth > Self.maxNesting {
            throw TemplateError(.limitExceeded, "expression is nested more than \(Self.maxNesting) levels deep", offset: currentOffset)
        }
    }

    private mutating func parseTernary() throws(TemplateError) -> TemplateExpression {
        try enter()
        defer { depth -= 1 }
        let condition = try parseOr()
        guard isSymbol("?") else { return condition }
        index += 1
        let yes = try parseTernary()
        try expect(":", "in a conditional 'condition ? a : b'")
        let no = try parseTernary()
        return .conditional(condition, yes, no)
    }

    private mutating func parseOr() throws(TemplateError) -> TemplateExpression {
        var left = try parseAnd()
        while isSymbol("||") {
            index += 1
            left = .or(left, try parseAnd())
        }
        return left
    }

    private mutating func parseAnd() throws(TemplateError) -> TemplateExpression {
        var left = try parseEquality()
        while isSymbol("&&") {
            index += 1
            left = .and(left, try parseEquality())
        }
        return left
    }

    private mutating func parseEquality() throws(TemplateError) -> TemplateExpression {
        var left = try parseComparison()
        while case .symbol(let s) = current, s == "==" || s == "!=", let op = BinaryOperator(rawValue: s) {
            let offset = currentOffset
            index += 1
            left = .compare(op, left, try parseComparison(), offset: offset)
        }
        return left
    }

    private mutating func parseComparison() throws(TemplateError) -> TemplateExpression {
        var left = try parseUnary()
        while case .symbol(let s) = current, ["<", "<=", ">", ">="].contains(s), let op = BinaryOperator(rawValue: s) {
            let offset = currentOffset
            index += 1
            left = .compare(op, left, try parseUnary(), offset: offset)
        }
        return left
    }

    private mutating func parseUnary() throws(TemplateError) -> TemplateExpression {
        try enter()
        defer { depth -= 1 }
        if isSymbol("!") {
            index += 1
            return .not(try parseUnary())
        }
        if isSymbol("-") {
            let offset = currentOffset
            index += 1
            let operand = try parseUnary()
            switch operand {
            case .literal(.int(let i)) where i != Int.min: return .literal(.int(-i))
            case .literal(.double(let d)): return .literal(.double(-d))
            default: return .negate(operand, offset: offset)
            }
        }
        return try parseFiltered()
    }

    private mutating func parseFiltered() throws(TemplateError) -> TemplateExpression {
        var value = try parsePostfix()
        while isSymbol("|") {
            index += 1
            let offset = currentOffset
            guard case .identifier(let name) = current else {
                throw TemplateError(.syntax, "expected a filter name after '|' (one of \(Self.filterList))", offset: offset)
            }
            guard let filter = TemplateFilter(rawValue: name) else {
                throw TemplateError(.syntax, "unknown filter '\(name)' (filters are \(Self.filterList))", offset: offset)
            }
            index += 1
            var arguments: [TemplateExpression] = []
            if isSymbol("(") {
                index += 1
                if !isSymbol(")") {
                    arguments.append(try parseTernary())
                    while isSymbol(",") {
                        index += 1
                        arguments.append(try parseTernary())
                    }
                }
                try expect(")", "to close the arguments of filter '\(name)'")
            }
            guard filter.arity.contains(arguments.count) else {
                let wanted =
                    filter.arity.lowerBound == filter.arity.upperBound
                    ? "\(filter.arity.lowerBound)" : "\(filter.arity.lowerBound) or \(filter.arity.upperBound)"
                throw TemplateError(.syntax, "filter '\(name)' takes \(wanted) argument(s), got \(arguments.count)", offset: offset)
            }
            value = .filter(value, filter, arguments, offset: offset)
        }
        return value
    }

    static let filterList = TemplateFilter.allCases.map(\.rawValue).joined(separator: ", ")

    private mutating func parsePostfix() throws(TemplateError) -> TemplateExpression {
        var value = try parsePrimary()
        while true {
            if isSymbol(".") {
                index += 1
                let offset = currentOffset
                guard case .identifier(let name) = current else {
                    throw TemplateError(.syntax, "expected a field name after '.'", offset: offset)
                }
                index += 1
                value = .member(value, name, offset: offset)
            } else if isSymbol("[") {
                let offset = currentOffset
                index += 1
                let key = try parseTernary()
                try expect("]", "to close '['")
                value = .index(value, key, offset: offset)
            } else {
                return value
            }
        }
    }

    private mutating func parsePrimary() throws(TemplateError) -> TemplateExpression {
        let offset = currentOffset
        guard let token = current else {
            throw TemplateError(.syntax, "expected a value, found the end of the expression", offset: offset)
        }
        switch token {
        case .number(let n):
            index += 1
            return .literal(n)
        case .string(let s):
            index += 1
            return .literal(.string(s))
        case .identifier(let name):
            index += 1
            switch name {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            default: return .variable(name, offset: offset)
            }
        case .symbol("("):
            index += 1
            let inner = try parseTernary()
            try expect(")", "to close '('")
            return inner
        default:
            throw TemplateError(.syntax, "expected a value, found \(describe(token))", offset: offset)
        }
    }
}

/// Tokenizes one `{{ … }}` expression, stopping after its `}}`.
struct TemplateLexer {
    let scalars: [Unicode.Scalar]
    var position: Int
    /// Offset of the `{{` that opened this expression.
    let open: Int

    /// Bounds the size, and so the depth, of one expression's tree (evaluation is recursive).
    static let maxTokens = 512
    static let symbols2: Set<String> = ["==", "!=", "<=", ">=", "&&", "||"]
    static let symbols1: Set<Unicode.Scalar> = ["<", ">", "!", "?", ":", "(", ")", "[", "]", ".", ",", "|", "-"]

    mutating func tokensUntilClose() throws(TemplateError) -> [(token: TemplateToken, offset: Int)] {
        var tokens: [(token: TemplateToken, offset: Int)] = []
        while true {
            while position < scalars.count, scalars[position].properties.isWhitespace { position += 1 }
            guard position < scalars.count else {
                throw TemplateError(.syntax, "'{{' is never closed: add '}}'", offset: open)
            }
            let start = position
            if tokens.count >= Self.maxTokens {
                throw TemplateError(
                    .limitExceeded, "expression has more than \(Self.maxTokens) tokens; split it into several steps or templates",
                    offset: start)
            }
            let c = scalars[position]
            let next: Unicode.Scalar? = position + 1 < scalars.count ? scalars[position + 1] : nil
            if c == "}" {
                if next == "}" {
                    position += 2
                    return tokens
                }
                throw TemplateError(.syntax, "unexpected '}' (close the expression with '}}')", offset: start)
            }
            if c == "{" {
                throw TemplateError(.syntax, "unexpected '{' inside an expression", offset: start)
            }
            if Self.isIdentifierStart(c) {
                var name = String.UnicodeScalarView()
                while position < scalars.count, Self.isIdentifierPart(scalars[position]) {
                    name.append(scalars[position])
                    position += 1
                }
                tokens.append((.identifier(String(name)), start))
                continue
            }
            if ("0"..."9").contains(c) {
                tokens.append((try number(), start))
                continue
            }
            if c == "'" || c == "\"" {
                tokens.append((.string(try string(quote: c)), start))
                continue
            }
            if let next {
                let pair = String(String.UnicodeScalarView([c, next]))
                if Self.symbols2.contains(pair) {
                    position += 2
                    tokens.append((.symbol(pair), start))
                    continue
                }
            }
            if Self.symbols1.contains(c) {
                position += 1
                tokens.append((.symbol(String(c)), start))
                continue
            }
            let hint: String
            switch c {
            case "=": hint = " (use '==' to compare)"
            case "&": hint = " (use '&&')"
            case "+", "*", "/", "%": hint = " (templates have no arithmetic)"
            default: hint = ""
            }
            throw TemplateError(.syntax, "unexpected character '\(c)'\(hint)", offset: start)
        }
    }

    static func isIdentifierStart(_ c: Unicode.Scalar) -> Bool {
        c == "_" || ("a"..."z").contains(c) || ("A"..."Z").contains(c)
    }

    /// Identifiers may contain `-` (step ids such as `fetch-page`): templates have no subtraction.
    static func isIdentifierPart(_ c: Unicode.Scalar) -> Bool {
        isIdentifierStart(c) || ("0"..."9").contains(c) || c == "-"
    }

    private mutating func number() throws(TemplateError) -> TemplateToken {
        let start = position
        var text = ""
        func digits(_ lexer: inout TemplateLexer, _ text: inout String) {
            while lexer.position < lexer.scalars.count, ("0"..."9").contains(lexer.scalars[lexer.position]) {
                text.unicodeScalars.append(lexer.scalars[lexer.position])
                lexer.position += 1
            }
        }
        digits(&self, &text)
        var isDouble = false
        if position + 1 < scalars.count, scalars[position] == ".", ("0"..."9").contains(scalars[position + 1]) {
            isDouble = true
            text += "."
            position += 1
            digits(&self, &text)
        }
        if position < scalars.count, scalars[position] == "e" || scalars[position] == "E" {
            isDouble = true
            text += "e"
            position += 1
            if position < scalars.count, scalars[position] == "+" || scalars[position] == "-" {
                text.unicodeScalars.append(scalars[position])
                position += 1
            }
            let before = text.count
            digits(&self, &text)
            if text.count == before {
                throw TemplateError(.syntax, "malformed number: expected digits after the exponent", offset: start)
            }
        }
        if position < scalars.count, Self.isIdentifierStart(scalars[position]) {
            throw TemplateError(.syntax, "malformed number '\(text)\(scalars[position])'", offset: start)
        }
        if !isDouble, let i = Int(text) { return .number(.int(i)) }
        guard let d = Double(text) else {
            throw TemplateError(.syntax, "malformed number '\(text)'", offset: start)
        }
        return .number(.double(d))
    }

    private mutating func string(quote: Unicode.Scalar) throws(TemplateError) -> String {
        let start = position
        position += 1
        var out = String.UnicodeScalarView()
        while position < scalars.count {
            let c = scalars[position]
            if c == quote {
                position += 1
                return String(out)
            }
            if c == "\\" {
                guard position + 1 < scalars.count else { break }
                let e = scalars[position + 1]
                switch e {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "\\", "'", "\"", "/": out.append(e)
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "u":
                    let digits = position + 6 <= scalars.count ? String(String.UnicodeScalarView(scalars[(position + 2)..<(position + 6)])) : ""
                    guard digits.count == 4, let code = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(code) else {
                        throw TemplateError(.syntax, "'\\u' must be followed by four hex digits", offset: position)
                    }
                    out.append(scalar)
                    position += 6
                    continue
                default:
                    throw TemplateError(.syntax, "unknown escape '\\\(e)' in string (use \\n, \\t, \\r, \\\\, \\' or \\\")", offset: position)
                }
                position += 2
                continue
            }
            out.append(c)
            position += 1
        }
        throw TemplateError(.syntax, "string is never closed: add \(quote)", offset: start)
    }
}

/// Finds the variable paths an expression reads, and rejects uses of `steps` that
/// do not name a step statically (the validator must know which steps are read).
enum TemplateAnalysis {
    static func references(in segments: [TemplateSegment]) throws(TemplateError) -> [TemplateReference] {
        var found: [TemplateReference] = []
        for case .expression(let e, _) in segments { try visit(e, parentKey: nil, into: &found) }
        return found
    }

    /// `parentKey` is set when the caller is a static member or literal index applied to `e`.
    private static func visit(_ e: TemplateExpression, parentKey: String??, into found: inout [TemplateReference]) throws(TemplateError) {
        switch e {
        case .literal:
            return
        case .variable(let name, let offset):
            let key: String? = parentKey ?? nil
            if name == "steps", key == nil {
                throw TemplateError(
                    .syntax, "'steps' must be followed by a step id, as in steps.classify.output", offset: offset)
            }
            found.append(TemplateReference(root: name, firstKey: key, offset: offset))
        case .member(let base, let name, _):
            try visit(base, parentKey: .some(name), into: &found)
        case .index(let base, let key, _):
            if case .literal(.string(let s)) = key {
                try visit(base, parentKey: .some(s), into: &found)
            } else {
                try visit(base, parentKey: .some(nil), into: &found)
                try visit(key, parentKey: nil, into: &found)
            }
        case .not(let a), .negate(let a, _):
            try visit(a, parentKey: nil, into: &found)
        case .compare(_, let a, let b, _), .and(let a, let b), .or(let a, let b):
            try visit(a, parentKey: nil, into: &found)
            try visit(b, parentKey: nil, into: &found)
        case .conditional(let a, let b, let c):
            try visit(a, parentKey: nil, into: &found)
            try visit(b, parentKey: nil, into: &found)
            try visit(c, parentKey: nil, into: &found)
        case .filter(let a, _, let arguments, _):
            try visit(a, parentKey: nil, into: &found)
            for argument in arguments { try visit(argument, parentKey: nil, into: &found) }
        }
    }
}
