/// Turns one YAML document into a ``Resource``, reporting every problem it finds
/// with the position of the offending node. Checks that need only this document
/// (keys, types, ranges, step graph, templates) happen here; references to other
/// resources are checked by ``CrossReferenceValidator``.
final class DocumentDecoder {
    let file: String
    let source: SourceText
    let issues: IssueCollector
    let limits: ResourceLimits
    /// Value locations by path, handed on to ``ResourceDocument/locations``.
    private(set) var locations: [String: SourceLocation] = [:]
    private(set) var problems = 0

    init(file: String, source: SourceText, issues: IssueCollector, limits: ResourceLimits) {
        self.file = file
        self.source = source
        self.issues = issues
        self.limits = limits
    }

    // MARK: - Vocabulary

    static let kindKeys = ["prompt", "tool", "map", "transform", "workflow", "wait_for"]
    static let commonStepKeys = ["id", "needs", "if", "retry", "timeout", "on_error"]
    static let modelCompanions = ["model", "agent", "thinking", "max_tokens", "output", "difficulty", "check", "verify", "on_budget"]
    static let stepKeys = commonStepKeys + kindKeys + modelCompanions + ["with"]
    /// A map's inner step may be any kind but `map` (no nesting) and `wait_for` (a
    /// durable wait parks a whole step, not one item of it).
    static let innerStepKeys = kindKeys.filter { $0 != "map" && $0 != "wait_for" } + modelCompanions + ["with"]
    static let builtInModels = RoutingMode.builtInChoices
    static let reservedVariables: Set<String> = ["inputs", "steps", "run", "secrets"]
    static let runFields = ["id", "tenant", "workflow"]

    // MARK: - Reporting

    func report(_ node: YNode, _ path: String, _ message: String) {
        report(line: node.line, column: node.column, path, message)
    }

    func report(line: Int, column: Int, _ path: String, _ message: String) {
        problems += 1
        issues.add(line: line, column: column, path: path, message)
    }

    func location(_ node: YNode) -> SourceLocation {
        SourceLocation(file: file, line: node.line, column: node.column)
    }

    func record(_ path: String, _ node: YNode) {
        locations[path] = location(node)
    }

    static func child(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    static func item(_ path: String, _ index: Int) -> String { "\(path)[\(index)]" }

    // MARK: - Typed access

    struct Fields {
        var entries: [(name: String, key: YNode, value: YNode)] = []
        subscript(_ name: String) -> YNode? { entries.first { $0.name == name }?.value }
        func key(_ name: String) -> YNode? { entries.first { $0.name == name }?.key }
        func has(_ name: String) -> Bool { entries.contains { $0.name == name } }
    }

    /// The entries of a mapping; unknown keys are reported at the key.
    func fields(_ node: YNode, _ path: String, allowed: [String], what: String, hints: [String: String] = [:]) -> Fields? {
        guard case .mapping(let pairs) = node.value else {
            report(node, path, "expected \(what) (a mapping), got \(node.kindDescription)")
            return nil
        }
        var result = Fields()
        for pair in pairs {
            let name = pair.key.scalar?.text ?? ""
            guard allowed.contains(name) else {
                let hint = hints[name].map { " (\($0))" } ?? ""
                report(pair.key, Self.child(path, name), "unknown key '\(name)' in \(what)\(hint); allowed keys: \(allowed.joined(separator: ", "))")
                continue
            }
            record(Self.child(path, name), pair.value)
            result.entries.append((name, pair.key, pair.value))
        }
        return result
    }

    func string(_ node: YNode, _ path: String, what: String = "a string") -> String? {
        if let s = node.scalar, case .string(let text) = s.value { return text }
        var hint = ""
        if let s = node.scalar, s.style == .plain, s.value != .null { hint = " (put it in quotes to make it a string: \"\(s.text)\")" }
        report(node, path, "expected \(what), got \(node.kindDescription)\(hint)")
        return nil
    }

    func int(_ node: YNode, _ path: String, range: ClosedRange<Int>) -> Int? {
        guard let s = node.scalar, case .int(let i) = s.value else {
            report(node, path, "expected an integer from \(range.lowerBound) to \(range.upperBound), got \(node.kindDescription)")
            return nil
        }
        guard range.contains(i) else {
            report(node, path, "must be from \(range.lowerBound) to \(range.upperBound), got \(i)")
            return nil
        }
        return i
    }

    func bool(_ node: YNode, _ path: String) -> Bool? {
        if let s = node.scalar, case .bool(let b) = s.value { return b }
        var hint = ""
        if let s = node.scalar, case .string(let t) = s.value, ["yes", "no", "on", "off", "y", "n"].contains(t.lowercased()) {
            hint = " ('\(t)' is a string here; write true or false)"
        }
        report(node, path, "expected true or false, got \(node.kindDescription)\(hint)")
        return nil
    }

    func duration(_ node: YNode, _ path: String) -> TimeSpan? {
        let text: String
        switch node.scalar?.value {
        case .string(let s): text = s
        case .int(let i): text = String(i)
        default:
            report(node, path, "expected a duration such as 500ms, 30s, 2m or 1h, got \(node.kindDescription)")
            return nil
        }
        guard let span = TimeSpan.parse(text) else {
            report(node, path, "invalid duration '\(text)': use a number and a unit (ms, s, m, h), such as 500ms, 30s, 2m, 1h or 1h30m")
            return nil
        }
        guard span.milliseconds > 0 else {
            report(node, path, "a duration must be longer than zero")
            return nil
        }
        return span
    }

    func name(_ node: YNode, _ path: String, what: String) -> String? {
        guard let text = string(node, path, what: "\(what) name") else { return nil }
        guard Self.isResourceName(text) else {
            report(node, path, "invalid \(what) name '\(text)': use 1 to 63 lowercase letters, digits, '-' and '_', starting with a letter or digit")
            return nil
        }
        return text
    }

    /// Resource names: `^[a-z0-9][a-z0-9_-]{0,62}$` — safe in URLs, file names and logs.
    static func isResourceName(_ s: String) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 63 else { return false }
        func ok(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("0"..."9").contains(c) }
        return ok(first) && scalars.dropFirst().allSatisfy { ok($0) || $0 == "-" || $0 == "_" }
    }

    /// Step ids: `^[A-Za-z_][A-Za-z0-9_-]*$`, at most 64 characters (usable as `steps.<id>` in templates).
    static func isStepID(_ s: String) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 64, TemplateLexer.isIdentifierStart(first) else { return false }
        return scalars.allSatisfy(TemplateLexer.isIdentifierPart)
    }

    /// Input names and map item names: `^[A-Za-z_][A-Za-z0-9_]*$`.
    static func isIdentifier(_ s: String) -> Bool {
        let scalars = Array(s.unicodeScalars)
        guard let first = scalars.first, scalars.count <= 64, TemplateLexer.isIdentifierStart(first) else { return false }
        return scalars.allSatisfy { TemplateLexer.isIdentifierStart($0) || ("0"..."9").contains($0) }
    }

    /// Expert names written literally in `model:` (built-in or configured ones).
    static func isModelName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64
            && s.unicodeScalars.allSatisfy { TemplateLexer.isIdentifierPart($0) || $0 == "." }
    }

    // MARK: - Templates

    /// Where a template was written and what it may read.
    struct TemplateUse {
        var template: Template
        var node: YNode
        var path: String
        /// The step whose template this is; nil for workflow `outputs`.
        var stepIndex: Int?
        /// The map item name bound in a map's inner step.
        var itemName: String?
        /// Variables bound for this template only (`output` in a model step's `check`).
        var extraRoots: [String] = []
    }

    private(set) var templateUses: [TemplateUse] = []

    /// The position of `offset` within a scalar's text, when the scalar sits on one
    /// line exactly as written (no escapes, no folding); else the scalar's own position.
    func position(of node: YNode, offset: Int?) -> (line: Int, column: Int) {
        guard let offset, let scalar = node.scalar else { return (node.line, node.column) }
        let quoteWidth: Int
        switch scalar.style {
        case .plain: quoteWidth = 0
        case .singleQuoted, .doubleQuoted: quoteWidth = 1
        default: return (node.line, node.column)
        }
        let raw = Array(source.line(node.line).unicodeScalars)
        let textScalars = Array(scalar.text.unicodeScalars)
        let start = node.column - 1 + quoteWidth
        guard start >= 0, start + textScalars.count <= raw.count,
            Array(raw[start..<(start + textScalars.count)]) == textScalars
        else { return (node.line, node.column) }
        return (node.line, node.column + quoteWidth + offset)
    }

    func reportTemplate(_ node: YNode, _ path: String, offset: Int?, _ message: String) {
        let p = position(of: node, offset: offset)
        report(line: p.line, column: p.column, path, message)
    }

    /// Parses a template string; reports a syntax error at its position in the scalar.
    func parseTemplate(_ node: YNode, _ path: String, what: String = "a template string") -> Template? {
        guard let text = string(node, path, what: what) else { return nil }
        do {
            return try Template(parsing: text)
        } catch {
            reportTemplate(node, path, offset: error.offset, "invalid template: \(error.message)")
            return nil
        }
    }

    func workflowTemplate(
        _ node: YNode, _ path: String, step: Int?, item: String?, what: String = "a template string", extraRoots: [String] = []
    ) -> Template? {
        guard let t = parseTemplate(node, path, what: what) else { return nil }
        templateUses.append(TemplateUse(template: t, node: node, path: path, stepIndex: step, itemName: item, extraRoots: extraRoots))
        return t
    }

    /// A JSON argument object (`with:`) whose strings may be templates.
    func templatedJSON(_ node: YNode, _ path: String, step: Int?, item: String?) -> JSONValue? {
        guard case .mapping = node.value else {
            report(node, path, "expected a mapping of arguments, got \(node.kindDescription)")
            return nil
        }
        let before = problems
        visitTemplates(node, path, step: step, item: item)
        return problems == before ? node.json : nil
    }

    private func visitTemplates(_ node: YNode, _ path: String, step: Int?, item: String?) {
        switch node.value {
        case .scalar(let s):
            if case .string(let text) = s.value, text.contains("{{") {
                _ = workflowTemplate(node, path, step: step, item: item)
            }
        case .sequence(let items):
            for (i, n) in items.enumerated() { visitTemplates(n, Self.item(path, i), step: step, item: item) }
        case .mapping(let pairs):
            for pair in pairs {
                let p = Self.child(path, pair.key.scalar?.text ?? "")
                record(p, pair.value)
                visitTemplates(pair.value, p, step: step, item: item)
            }
        }
    }

    /// Checks roots of a template outside workflows (tool http fields).
    func checkRoots(_ t: Template, _ node: YNode, _ path: String, allowed: [String], place: String) {
        for reference in t.references where !allowed.contains(reference.root) {
            let message =
                reference.root == "secrets"
                ? "'secrets' can only be used in tool http headers"
                : "unknown variable '\(reference.root)' in template; \(place) can use \(allowed.joined(separator: ", "))"
            reportTemplate(node, path, offset: reference.offset, message)
        }
    }

    /// Finds the YAML node at a JSON Schema error path, for its location.
    func descend(_ node: YNode, _ components: [String]) -> YNode {
        var current = node
        for component in components {
            switch current.value {
            case .mapping(let pairs):
                guard let next = pairs.first(where: { $0.key.scalar?.text == component })?.value else { return current }
                current = next
            case .sequence(let items):
                guard let i = Int(component), items.indices.contains(i) else { return current }
                current = items[i]
            case .scalar:
                return current
            }
        }
        return current
    }

    func schema(_ node: YNode, _ path: String) -> JSONValue? {
        let value = node.json
        do {
            _ = try JSONSchema(value)
            return value
        } catch {
            let target = descend(node, error.path)
            let sub = error.path.reduce(path) { p, c in Int(c) != nil ? Self.item(p, Int(c) ?? 0) : Self.child(p, c) }
            report(target, sub, "invalid JSON Schema: \(error.message)")
            return nil
        }
    }

    // MARK: - Documents

    func decode(_ root: YNode) -> Resource? {
        record("", root)
        guard case .mapping(let pairs) = root.value else {
            report(root, "", "a document must be a mapping with 'kind' and 'name', got \(root.kindDescription)")
            return nil
        }
        guard let kindPair = pairs.first(where: { $0.key.scalar?.text == "kind" }) else {
            report(root, "", "a document needs 'kind: Workflow', 'kind: Agent' or 'kind: Tool'")
            return nil
        }
        let kindNames = ResourceKind.allCases.map(\.rawValue)
        guard let kindText = kindPair.value.scalar?.text, kindPair.value.scalar?.value.stringValue != nil,
            let kind = ResourceKind(rawValue: kindText)
        else {
            let shown = kindPair.value.scalar.map { "'\($0.text)'" } ?? kindPair.value.kindDescription
            report(kindPair.value, "kind", "unknown kind \(shown): expected \(kindNames.joined(separator: ", "))")
            return nil
        }
        let before = problems
        let resource: Resource?
        switch kind {
        case .workflow: resource = decodeWorkflow(root).map(Resource.workflow)
        case .agent: resource = decodeAgent(root).map(Resource.agent)
        case .tool: resource = decodeTool(root).map(Resource.tool)
        }
        return problems == before ? resource : nil
    }

    /// `name` (required) and `description` (optional) of any document.
    func header(_ f: Fields, _ root: YNode, what: String) -> (name: String?, description: String?) {
        var name: String?
        if let n = f["name"] {
            name = self.name(n, "name", what: what)
        } else {
            report(root, "", "a \(what) needs a name")
        }
        let description = f["description"].flatMap { string($0, "description") }
        return (name, description)
    }

    // MARK: Agent

    func decodeAgent(_ root: YNode) -> AgentSpec? {
        let allowed = ["kind", "name", "description", "instructions", "model", "tools", "max_turns"]
        guard let f = fields(root, "", allowed: allowed, what: "an Agent") else { return nil }
        let (name, description) = header(f, root, what: "agent")
        var instructions: String?
        if let node = f["instructions"] {
            instructions = string(node, "instructions")
            if let text = instructions, text.allSatisfy(\.isWhitespace) {
                report(node, "instructions", "instructions must not be empty")
            }
        } else {
            report(root, "", "an agent needs instructions (its system prompt)")
        }
        var model = ExpertTier.flash.rawValue
        if let node = f["model"], let m = string(node, "model") {
            if Self.builtInModels.contains(m) {
                model = m
            } else {
                report(node, "model", "unknown model '\(m)' for an agent: expected \(Self.builtInModels.joined(separator: ", "))")
            }
        }
        var tools: [String] = []
        if let node = f["tools"] {
            tools = nameList(node, "tools", what: "tool").map(\.0)
        }
        var maxTurns = 6
        if let node = f["max_turns"], let n = int(node, "max_turns", range: 1...50) { maxTurns = n }
        guard let name, let instructions else { return nil }
        return AgentSpec(name: name, description: description, instructions: instructions, model: model, tools: tools, maxTurns: maxTurns)
    }

    /// A list of resource names (a single name is accepted as a list of one).
    func nameList(_ node: YNode, _ path: String, what: String) -> [(String, YNode)] {
        switch node.value {
        case .sequence(let items):
            var result: [(String, YNode)] = []
            for (i, item) in items.enumerated() {
                if let n = name(item, Self.item(path, i), what: what) {
                    record(Self.item(path, i), item)
                    result.append((n, item))
                }
            }
            return result
        case .scalar(let s) where s.value.stringValue != nil:
            record(Self.item(path, 0), node)
            return name(node, path, what: what).map { [($0, node)] } ?? []
        default:
            report(node, path, "expected a list of \(what) names, got \(node.kindDescription)")
            return []
        }
    }

    // MARK: Tool

    func decodeTool(_ root: YNode) -> ToolSpec? {
        let allowed = ["kind", "name", "description", "http", "parameters"]
        guard let f = fields(root, "", allowed: allowed, what: "a Tool") else { return nil }
        let (name, description) = header(f, root, what: "tool")
        var http: HTTPToolSpec?
        if let node = f["http"] {
            http = decodeHTTP(node, "http")
        } else {
            report(root, "", "a tool needs http: {method, url} (HTTP tools are the only kind in this release)")
        }
        let parameters = f["parameters"].flatMap { schema($0, "parameters") }
        guard let name, let http else { return nil }
        return ToolSpec(name: name, description: description, http: http, parameters: parameters)
    }

    static let httpMethods = ["GET", "POST", "PUT", "PATCH", "DELETE"]

    func decodeHTTP(_ node: YNode, _ path: String) -> HTTPToolSpec? {
        guard let f = fields(node, path, allowed: ["method", "url", "headers", "timeout", "max_response_bytes"], what: "a tool's http section") else {
            return nil
        }
        var method = "POST"
        if let m = f["method"], let text = string(m, Self.child(path, "method")) {
            if Self.httpMethods.contains(text.uppercased()) {
                method = text.uppercased()
            } else {
                report(m, Self.child(path, "method"), "unknown HTTP method '\(text)': expected \(Self.httpMethods.joined(separator: ", "))")
            }
        }
        var url: String?
        if let u = f["url"] {
            let p = Self.child(path, "url")
            if let t = parseTemplate(u, p) {
                checkRoots(t, u, p, allowed: ["args"], place: "a tool url")
                let lower = t.source.lowercased()
                if lower.hasPrefix("http://") || lower.hasPrefix("https://") || t.source.hasPrefix("{{") {
                    url = t.source
                } else {
                    report(u, p, "the url must start with http:// or https://")
                }
            }
        } else {
            report(node, path, "http needs a url")
        }
        var headers: [String: String] = [:]
        if let h = f["headers"] {
            let p = Self.child(path, "headers")
            if case .mapping(let pairs) = h.value {
                for pair in pairs {
                    let key = pair.key.scalar?.text ?? ""
                    let hp = Self.child(p, key)
                    record(hp, pair.value)
                    guard let t = parseTemplate(pair.value, hp, what: "a header value string") else { continue }
                    checkRoots(t, pair.value, hp, allowed: ["secrets", "args"], place: "a tool header")
                    headers[key] = t.source
                }
            } else {
                report(h, p, "expected a mapping of header names to values, got \(h.kindDescription)")
            }
        }
        var timeout: TimeSpan?
        if let node = f["timeout"], let t = duration(node, Self.child(path, "timeout")) {
            if t > HTTPToolSpec.maxTimeout {
                report(node, Self.child(path, "timeout"), "a tool timeout can be at most \(HTTPToolSpec.maxTimeout)")
            } else {
                timeout = t
            }
        }
        let cap = f["max_response_bytes"].flatMap { int($0, Self.child(path, "max_response_bytes"), range: 1...HTTPToolSpec.maxResponseBytesLimit) }
        guard let url else { return nil }
        return HTTPToolSpec(method: method, url: url, headers: headers, timeout: timeout, maxResponseBytes: cap)
    }
}
