/// A cheap pass over the raw YAML text that runs before the YAML parser, so that
/// hostile input is refused in linear time and before any tree is built:
///
/// - the NUL character (U+0000) anywhere: the YAML library reads its input as a C
///   string, and no stored text may hold it;
/// - more alias tokens (`*name`) than ``ResourceLimits/maxAliases``;
/// - any key that is not a scalar: an alias used as a key, an explicit `?` key, or a
///   flow sequence or mapping used as a key (`[*a]: v`). The YAML library hashes
///   every key while checking for duplicates, before our alias-expansion limit
///   applies, and hashing a key that holds an alias hashes the whole expanded tree:
///   430 bytes took minutes of CPU. Switchyard's documents only need scalar keys;
/// - nesting deeper than ``ResourceLimits/maxDepth`` (the YAML library composes
///   recursively, so a very deep document could exhaust the stack).
///
/// It follows YAML's lexical structure closely enough for these counts (comments,
/// quoted and block scalars are skipped; `*` counts only where a node may start) but
/// is not a parser: the tree walk that follows re-checks depth and aliases exactly.
public struct YAMLPreScan: Sendable {
    public struct Violation: Error, Sendable {
        public var line: Int
        public var column: Int
        public var message: String
    }

    public let limits: ResourceLimits

    public init(limits: ResourceLimits) { self.limits = limits }

    static func isAnchorCharacter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_"
    }

    public func scan(_ text: String) throws(Violation) {
        let scalars = Array(text.unicodeScalars)
        var lineStarts: [Int] = [0]
        for (i, c) in scalars.enumerated() {
            if c == "\n" {
                lineStarts.append(i + 1)
            } else if c == "\0" {
                throw Violation(
                    line: lineStarts.count, column: i - lineStarts[lineStarts.count - 1] + 1,
                    message: "the NUL character (U+0000) is not allowed in YAML text")
            }
        }

        var aliases = 0
        var flowDepth = 0
        /// Where each open flow collection started, to name it if it turns out to be a key.
        var flowStarts: [(line: Int, column: Int)] = []
        var indentStack: [Int] = []
        var blockScalarParentIndent: Int?
        var quote: Unicode.Scalar?

        for (lineIndex, start) in lineStarts.enumerated() {
            let end = lineIndex + 1 < lineStarts.count ? lineStarts[lineIndex + 1] - 1 : scalars.count
            let lineNumber = lineIndex + 1
            func column(_ p: Int) -> Int { p - start + 1 }
            func isBlank(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\r" }
            func isBreakOrBlank(_ p: Int) -> Bool { p >= end || isBlank(scalars[p]) }

            var indent = 0
            while start + indent < end, scalars[start + indent] == " " { indent += 1 }
            let contentStart = start + indent
            let blankLine = contentStart >= end || scalars[contentStart...].prefix(end - contentStart).allSatisfy(isBlank)

            if let parent = blockScalarParentIndent {
                if blankLine || indent > parent { continue }
                blockScalarParentIndent = nil
            }
            var p = contentStart
            var nodeStart = true
            var inlineDepth = 0
            var base = indentStack.count

            if quote == nil && flowDepth == 0 {
                if blankLine || scalars[contentStart] == "#" { continue }
                if indent == 0, end - start >= 3 {
                    let marker = String(String.UnicodeScalarView(scalars[start..<(start + 3)]))
                    if (marker == "---" || marker == "...") && isBreakOrBlank(start + 3) {
                        indentStack = []
                        p = start + 3
                        base = 0
                        if marker == "..." { continue }
                    } else if scalars[start] == "%" {
                        continue
                    }
                }
                if p == contentStart {
                    while let last = indentStack.last, last >= indent { indentStack.removeLast() }
                    indentStack.append(indent)
                    base = indentStack.count
                    if base > limits.maxDepth {
                        throw Violation(line: lineNumber, column: indent + 1, message: depthMessage)
                    }
                }
            }

            while p < end {
                let c = scalars[p]
                if let q = quote {
                    if q == "'" && c == "'" {
                        if p + 1 < end, scalars[p + 1] == "'" {
                            p += 2
                            continue
                        }
                        quote = nil
                        nodeStart = false
                    } else if q == "\"" && c == "\\" {
                        p += 2
                        continue
                    } else if q == "\"" && c == "\"" {
                        quote = nil
                        nodeStart = false
                    }
                    p += 1
                    continue
                }
                if isBlank(c) {
                    p += 1
                    continue
                }
                if c == "#" && (p == start || isBlank(scalars[p - 1])) { break }
                if nodeStart {
                    if c == "-" && flowDepth == 0 && isBreakOrBlank(p + 1) {
                        inlineDepth += 1
                        if base + inlineDepth > limits.maxDepth {
                            throw Violation(line: lineNumber, column: column(p), message: depthMessage)
                        }
                        p += 1
                        continue
                    }
                    if c == "?" && isBreakOrBlank(p + 1) {
                        throw Violation(line: lineNumber, column: column(p), message: complexKeyMessage("explicit `?` keys are not supported"))
                    }
                    if c == "*" {
                        let aliasColumn = column(p)
                        p += 1
                        while p < end, Self.isAnchorCharacter(scalars[p]) { p += 1 }
                        aliases += 1
                        if aliases > limits.maxAliases {
                            throw Violation(
                                line: lineNumber, column: aliasColumn,
                                message: "more than \(limits.maxAliases) aliases in one file; expand them by hand or split the file")
                        }
                        var q = p
                        while q < end, isBlank(scalars[q]) { q += 1 }
                        if q < end && scalars[q] == ":" && (isBreakOrBlank(q + 1) || flowDepth > 0) {
                            throw Violation(line: lineNumber, column: aliasColumn, message: "an alias cannot be used as a mapping key")
                        }
                        nodeStart = false
                        continue
                    }
                    if c == "&" || c == "!" {
                        p += 1
                        while p < end, !isBlank(scalars[p]) { p += 1 }
                        continue
                    }
                    if c == "'" || c == "\"" {
                        quote = c
                        p += 1
                        continue
                    }
                    if (c == "|" || c == ">") && flowDepth == 0 {
                        blockScalarParentIndent = indent
                        break
                    }
                }
                if c == "[" || c == "{", flowDepth > 0 || nodeStart {
                    flowDepth += 1
                    flowStarts.append((lineNumber, column(p)))
                    if base + inlineDepth + flowDepth > limits.maxDepth {
                        throw Violation(line: lineNumber, column: column(p), message: depthMessage)
                    }
                    nodeStart = true
                } else if (c == "]" || c == "}") && flowDepth > 0 {
                    flowDepth -= 1
                    let opened = flowStarts.removeLast()
                    // An implicit key ends on its own line, so the rest of this line says
                    // whether the collection just closed is a key.
                    var q = p + 1
                    while q < end, isBlank(scalars[q]) { q += 1 }
                    if q < end && scalars[q] == ":" && (isBreakOrBlank(q + 1) || flowDepth > 0) {
                        throw Violation(
                            line: opened.line, column: opened.column,
                            message: complexKeyMessage("a flow \(c == "]" ? "sequence" : "mapping") cannot be a key"))
                    }
                    nodeStart = false
                } else if c == "," && flowDepth > 0 {
                    nodeStart = true
                } else if c == ":"
                    && (isBreakOrBlank(p + 1)
                        || (flowDepth > 0 && p + 1 < end && [",", "]", "}"].contains(scalars[p + 1])))
                {
                    nodeStart = true
                } else {
                    nodeStart = false
                }
                p += 1
            }
        }
    }

    func complexKeyMessage(_ what: String) -> String {
        "\(what): a mapping key must be a plain scalar (a name such as `model` or `\"my key\"`)"
    }

    var depthMessage: String { "nesting is deeper than \(limits.maxDepth) levels" }
}
