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
    private var problems = 0

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

    private var templateUses: [TemplateUse] = []

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
            let message = reference.root == "secrets"
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
    private func header(_ f: Fields, _ root: YNode, what: String) -> (name: String?, description: String?) {
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
        var model = "flash"
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
        guard let f = fields(node, path, allowed: ["method", "url", "headers", "timeout", "max_response_bytes"], what: "a tool's http section") else { return nil }
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

    // MARK: Workflow

    struct StepDraft {
        var id: String?
        var idNode: YNode?
        var node: YNode
        var path: String
        var needs: [(id: String, node: YNode, path: String)] = []
        var spec: StepSpec?
    }

    func decodeWorkflow(_ root: YNode) -> WorkflowSpec? {
        let allowed = ["kind", "name", "description", "inputs", "steps", "outputs", "timeout"]
        guard let f = fields(root, "", allowed: allowed, what: "a Workflow") else { return nil }
        let (name, description) = header(f, root, what: "workflow")
        let (inputs, declaredInputs) = f["inputs"].map(decodeInputs) ?? ([], [])
        var drafts: [StepDraft] = []
        if let node = f["steps"] {
            drafts = decodeSteps(node)
        } else {
            report(root, "", "a workflow needs steps")
        }
        var outputs: [OutputSpec] = []
        if let node = f["outputs"] {
            if case .mapping(let pairs) = node.value {
                for pair in pairs {
                    let key = pair.key.scalar?.text ?? ""
                    let p = Self.child("outputs", key)
                    record(p, pair.value)
                    if let t = workflowTemplate(
                        pair.value, p, step: nil, item: nil,
                        what: "a template string such as \"{{ steps.draft.output }}\"")
                    {
                        outputs.append(OutputSpec(name: key, value: t))
                    }
                }
            } else {
                report(node, "outputs", "expected a mapping of output names to templates, got \(node.kindDescription)")
            }
        }
        let timeout = f["timeout"].flatMap { duration($0, "timeout") }

        checkGraph(drafts)
        checkTemplates(drafts, declaredInputs: declaredInputs)

        guard let name else { return nil }
        let steps = drafts.compactMap(\.spec)
        guard steps.count == drafts.count else { return nil }
        return WorkflowSpec(name: name, description: description, inputs: inputs, steps: steps, outputs: outputs, timeout: timeout)
    }

    /// Inputs, and the names declared (even those with errors, to avoid follow-on messages).
    func decodeInputs(_ node: YNode) -> ([InputSpec], Set<String>) {
        guard case .mapping(let pairs) = node.value else {
            report(node, "inputs", "expected a mapping of input names to {type, required, default, description}, got \(node.kindDescription)")
            return ([], [])
        }
        var inputs: [InputSpec] = []
        var declared = Set<String>()
        let types = InputType.allCases.map(\.rawValue).joined(separator: ", ")
        for pair in pairs {
            let name = pair.key.scalar?.text ?? ""
            let path = Self.child("inputs", name)
            declared.insert(name)
            record(path, pair.value)
            guard Self.isIdentifier(name) else {
                report(pair.key, path, "invalid input name '\(name)': use letters, digits and '_', starting with a letter or '_'")
                continue
            }
            guard let f = fields(pair.value, path, allowed: ["type", "required", "default", "description"], what: "an input") else { continue }
            var type: InputType?
            if let t = f["type"] {
                if let text = string(t, Self.child(path, "type")) {
                    type = InputType(rawValue: text)
                    if type == nil { report(t, Self.child(path, "type"), "unknown input type '\(text)': expected one of \(types)") }
                }
            } else {
                report(pair.value, path, "an input needs a type (\(types))")
            }
            let required = f["required"].flatMap { bool($0, Self.child(path, "required")) } ?? false
            var defaultValue: JSONValue?
            if let d = f["default"] {
                let value = d.json
                if let type, !type.accepts(value) {
                    report(d, Self.child(path, "default"), "the default must be \(type.rawValue), got \(d.kindDescription)")
                } else if required {
                    report(d, Self.child(path, "default"), "an input with a default is never missing: remove 'required: true' or the default")
                } else if let type {
                    defaultValue = type.normalized(value)
                }
            }
            let description = f["description"].flatMap { string($0, Self.child(path, "description")) }
            if let type {
                inputs.append(InputSpec(name: name, type: type, required: required, defaultValue: defaultValue, description: description))
            }
        }
        return (inputs, declared)
    }

    func decodeSteps(_ node: YNode) -> [StepDraft] {
        guard case .sequence(let items) = node.value else {
            report(node, "steps", "expected a list of steps, got \(node.kindDescription)")
            return []
        }
        guard !items.isEmpty else {
            report(node, "steps", "a workflow needs at least one step")
            return []
        }
        guard items.count <= limits.maxStepsPerWorkflow else {
            report(node, "steps", "a workflow can have at most \(limits.maxStepsPerWorkflow) steps; this one has \(items.count)")
            return []
        }
        return items.enumerated().map { decodeStep($1, Self.item("steps", $0), index: $0) }
    }

    func decodeStep(_ node: YNode, _ path: String, index: Int) -> StepDraft {
        var draft = StepDraft(node: node, path: path)
        record(path, node)
        guard let f = fields(node, path, allowed: Self.stepKeys, what: "a step") else { return draft }
        let before = problems
        if let idNode = f["id"] {
            draft.idNode = idNode
            if let id = string(idNode, Self.child(path, "id")) {
                if Self.isStepID(id) {
                    draft.id = id
                } else {
                    report(idNode, Self.child(path, "id"), "invalid step id '\(id)': use letters, digits, '_' and '-', starting with a letter or '_'")
                }
            }
        } else {
            report(node, path, "a step needs an id")
        }
        if let needsNode = f["needs"] {
            let p = Self.child(path, "needs")
            switch needsNode.value {
            case .sequence(let items):
                for (i, item) in items.enumerated() {
                    let ip = Self.item(p, i)
                    record(ip, item)
                    if let s = string(item, ip, what: "a step id") { draft.needs.append((s, item, ip)) }
                }
            case .scalar(let s) where s.value.stringValue != nil:
                draft.needs.append((s.text, needsNode, p))
            default:
                report(needsNode, p, "expected a list of step ids, got \(needsNode.kindDescription)")
            }
        }
        let condition = f["if"].flatMap { workflowTemplate($0, Self.child(path, "if"), step: index, item: nil) }
        var retry = RetryPolicy.none
        if let r = f["retry"] { retry = decodeRetry(r, Self.child(path, "retry")) ?? retry }
        let timeout = f["timeout"].flatMap { duration($0, Self.child(path, "timeout")) }
        var onError = OnError.fail
        if let e = f["on_error"], let text = string(e, Self.child(path, "on_error")) {
            if let value = OnError(rawValue: text) {
                onError = value
            } else {
                report(e, Self.child(path, "on_error"), "unknown on_error '\(text)': expected fail or continue")
            }
        }
        let kind = decodeKind(f, node, path, step: index, item: nil)
        if problems == before, let id = draft.id, let kind {
            draft.spec = StepSpec(
                id: id, needs: draft.needs.map(\.id), condition: condition, retry: retry, timeout: timeout, onError: onError, kind: kind)
        }
        return draft
    }

    func decodeRetry(_ node: YNode, _ path: String) -> RetryPolicy? {
        guard let f = fields(node, path, allowed: ["max_attempts", "backoff", "initial", "max"], what: "a retry policy") else { return nil }
        var policy = RetryPolicy(maxAttempts: 3)
        if let n = f["max_attempts"], let v = int(n, Self.child(path, "max_attempts"), range: 1...100) { policy.maxAttempts = v }
        if let b = f["backoff"], let text = string(b, Self.child(path, "backoff")) {
            if let kind = BackoffKind(rawValue: text) {
                policy.backoff = kind
            } else {
                report(b, Self.child(path, "backoff"), "unknown backoff '\(text)': expected fixed or exponential")
            }
        }
        if let i = f["initial"], let v = duration(i, Self.child(path, "initial")) { policy.initial = v }
        if let m = f["max"], let v = duration(m, Self.child(path, "max")) { policy.max = v }
        if policy.initial > policy.max {
            if let m = f["max"] {
                report(m, Self.child(path, "max"), "max (\(policy.max)) must not be shorter than initial (\(policy.initial))")
            } else if let i = f["initial"] {
                report(i, Self.child(path, "initial"), "initial (\(policy.initial)) is longer than the default max (\(policy.max)); set max too")
            }
        }
        return policy
    }

    /// The step's kind from its one kind key and that kind's companion keys.
    func decodeKind(_ f: Fields, _ node: YNode, _ path: String, step: Int, item: String?) -> StepKind? {
        let inner = item != nil
        let present = Self.kindKeys.filter { f.has($0) }
        guard let keyword = present.first else {
            let hint = f.has("agent") ? " (an agent step needs a prompt)" : ""
            let kinds = (inner ? Self.kindKeys.filter { Self.innerStepKeys.contains($0) } : Self.kindKeys).joined(separator: ", ")
            report(node, path, "a step needs exactly one of \(kinds)\(hint)")
            return nil
        }
        if present.count > 1, let second = f.key(present[1]) {
            report(second, Self.child(path, present[1]), "a step can have only one of \(Self.kindKeys.joined(separator: ", ")); this one has both '\(present[0])' and '\(present[1])'")
            return nil
        }
        var ok = true
        for companion in Self.modelCompanions where keyword != "prompt" && f.has(companion) {
            if let key = f.key(companion) {
                let message = companion == "agent"
                    ? "'agent' needs a 'prompt' (the task given to the agent) and cannot be combined with '\(keyword)'"
                    : "'\(companion)' only applies to model steps (steps with 'prompt')"
                report(key, Self.child(path, companion), message)
            }
            ok = false
        }
        if f.has("with"), keyword != "tool", keyword != "workflow", let key = f.key("with") {
            report(key, Self.child(path, "with"), "'with' only applies to tool and workflow steps")
            ok = false
        }
        guard let value = f[keyword] else { return nil }
        let p = Self.child(path, keyword)
        let kind: StepKind?
        switch keyword {
        case "prompt":
            kind = decodeModel(f, value, path, step: step, item: item).map(StepKind.model)
        case "tool":
            let tool = name(value, p, what: "tool")
            var with = JSONValue.object([:])
            if let w = f["with"] { with = templatedJSON(w, Self.child(path, "with"), step: step, item: item) ?? with }
            kind = tool.map { .tool(ToolStepSpec(tool: $0, with: with)) }
        case "map":
            if inner {
                report(f.key("map") ?? value, p, "a map's inner step cannot be another map")
                return nil
            }
            kind = decodeMap(value, p, step: step).map(StepKind.map)
        case "transform":
            kind = workflowTemplate(value, p, step: step, item: item).map(StepKind.transform)
        case "workflow":
            let child = name(value, p, what: "workflow")
            var with = JSONValue.object([:])
            if let w = f["with"] { with = templatedJSON(w, Self.child(path, "with"), step: step, item: item) ?? with }
            kind = child.map { .workflow(ChildWorkflowSpec(workflow: $0, with: with)) }
        default:
            var signal: String?
            if let s = string(value, p, what: "a signal name") {
                let valid = !s.isEmpty && s.count <= 64 && s.unicodeScalars.allSatisfy { TemplateLexer.isIdentifierPart($0) || $0 == "." }
                if valid { signal = s } else {
                    report(value, p, "invalid signal name '\(s)': use up to 64 letters, digits, '_', '-' and '.'")
                }
            }
            kind = signal.map { .waitFor(WaitForSpec(signal: $0)) }
        }
        return ok ? kind : nil
    }

    func decodeModel(_ f: Fields, _ promptNode: YNode, _ path: String, step: Int, item: String?) -> ModelStepSpec? {
        let prompt = workflowTemplate(promptNode, Self.child(path, "prompt"), step: step, item: item)
        var model: Template?
        var ok = true
        if let m = f["model"] {
            let p = Self.child(path, "model")
            if let t = workflowTemplate(m, p, step: step, item: item, what: "a model name or template") {
                if t.isLiteral, !Self.isModelName(t.source) {
                    report(m, p, "invalid model '\(t.source)': use flash, pro, auto, cascade, the name of a configured expert, or a template")
                    ok = false
                }
                model = t
            }
        }
        let agent = f["agent"].flatMap { name($0, Self.child(path, "agent"), what: "agent") }
        let thinking = f["thinking"].flatMap { bool($0, Self.child(path, "thinking")) }
        let maxTokens = f["max_tokens"].flatMap { int($0, Self.child(path, "max_tokens"), range: 1...1_000_000) }
        let output = f["output"].flatMap { schema($0, Self.child(path, "output")) }
        var difficulty: Difficulty?
        if let node = f["difficulty"], let d = string(node, Self.child(path, "difficulty")) {
            if let known = Difficulty(rawValue: d) {
                difficulty = known
            } else {
                report(node, Self.child(path, "difficulty"), "unknown difficulty '\(d)': expected \(Difficulty.allCases.map(\.rawValue).joined(separator: ", "))")
                ok = false
            }
        }
        // `check` and `verify` read the answer as `output`, besides what other templates read.
        let check = f["check"].flatMap { workflowTemplate($0, Self.child(path, "check"), step: step, item: item, what: "an expression", extraRoots: ["output"]) }
        let verify = f["verify"].flatMap { workflowTemplate($0, Self.child(path, "verify"), step: step, item: item, what: "a question", extraRoots: ["output"]) }
        var onBudget: BudgetPolicy?
        if let node = f["on_budget"], let policy = string(node, Self.child(path, "on_budget")) {
            if let known = BudgetPolicy(rawValue: policy) {
                onBudget = known
            } else {
                report(node, Self.child(path, "on_budget"), "unknown on_budget '\(policy)': expected fail or downgrade")
                ok = false
            }
        }
        guard ok, let prompt else { return nil }
        return ModelStepSpec(
            prompt: prompt, model: model, agent: agent, thinking: thinking, maxTokens: maxTokens, output: output,
            difficulty: difficulty, check: check, verify: verify, onBudget: onBudget)
    }

    func decodeMap(_ node: YNode, _ path: String, step: Int) -> MapStepSpec? {
        guard let f = fields(node, path, allowed: ["over", "as", "concurrency", "step"], what: "a map") else { return nil }
        var itemName = "item"
        var ok = true
        if let a = f["as"], let text = string(a, Self.child(path, "as")) {
            if !Self.isIdentifier(text) {
                report(a, Self.child(path, "as"), "invalid item name '\(text)': use letters, digits and '_', starting with a letter or '_'")
                ok = false
            } else if Self.reservedVariables.contains(text) {
                report(a, Self.child(path, "as"), "'\(text)' is already a template variable; choose another item name")
                ok = false
            } else {
                itemName = text
            }
        }
        var over: Template?
        if let o = f["over"] {
            let p = Self.child(path, "over")
            over = workflowTemplate(o, p, step: step, item: nil, what: "a template yielding a list, such as \"{{ inputs.items }}\"")
            if let t = over, t.isLiteral {
                report(o, p, "over must be a template yielding a list, such as \"{{ inputs.items }}\"")
                ok = false
            }
        } else {
            report(node, path, "a map needs 'over' (a template yielding the list to map over)")
        }
        var concurrency = 4
        if let c = f["concurrency"], let n = int(c, Self.child(path, "concurrency"), range: 1...1000) { concurrency = n }
        var inner: StepKind?
        if let s = f["step"] {
            let p = Self.child(path, "step")
            var hints: [String: String] = [:]
            for key in Self.commonStepKeys { hints[key] = "'\(key)' belongs on the map step, not on its inner step" }
            hints["map"] = "maps do not nest; map over a flattened list instead"
            hints["wait_for"] = "a wait parks a whole step; put the wait_for step before or after the map"
            if let innerFields = fields(s, p, allowed: Self.innerStepKeys, what: "a map's inner step", hints: hints) {
                inner = decodeKind(innerFields, s, p, step: step, item: itemName)
            }
        } else {
            report(node, path, "a map needs 'step' (the step to run for each item)")
        }
        guard ok, let over, let inner else { return nil }
        return MapStepSpec(over: over, itemName: itemName, concurrency: concurrency, step: inner)
    }

    // MARK: - Graph and template checks

    /// Duplicate ids, unknown or self `needs`, and cycles.
    func checkGraph(_ drafts: [StepDraft]) {
        var firstIndex: [String: Int] = [:]
        for (i, d) in drafts.enumerated() {
            guard let id = d.id, let idNode = d.idNode else { continue }
            if let first = firstIndex[id], let firstNode = drafts[first].idNode {
                report(idNode, Self.child(d.path, "id"), "duplicate step id '\(id)' (first used at line \(firstNode.line))")
            } else {
                firstIndex[id] = i
            }
        }
        let allIDs = drafts.compactMap(\.id)
        var edges: [[(target: Int, need: Int)]] = Array(repeating: [], count: drafts.count)
        for (i, d) in drafts.enumerated() {
            for (n, need) in d.needs.enumerated() {
                if need.id == d.id {
                    report(need.node, need.path, "step '\(need.id)' cannot need itself")
                } else if let target = firstIndex[need.id] {
                    edges[i].append((target, n))
                } else {
                    report(need.node, need.path, "unknown step '\(need.id)' in needs; steps are: \(allIDs.joined(separator: ", "))")
                }
            }
        }
        // Iterative depth-first search; a need pointing at a step on the current path closes a cycle.
        var color = Array(repeating: 0, count: drafts.count)
        for start in drafts.indices where color[start] == 0 {
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            color[start] = 1
            while let top = stack.last {
                let out = edges[top.node]
                if top.next < out.count {
                    stack[stack.count - 1].next += 1
                    let (target, needIndex) = out[top.next]
                    if color[target] == 1 {
                        let from = stack.firstIndex { $0.node == target } ?? 0
                        let cycle = stack[from...].map { drafts[$0.node].id ?? "?" } + [drafts[target].id ?? "?"]
                        let need = drafts[top.node].needs[needIndex]
                        report(need.node, need.path, "dependency cycle: \(cycle.joined(separator: " -> "))")
                    } else if color[target] == 0 {
                        color[target] = 1
                        stack.append((target, 0))
                    }
                } else {
                    color[top.node] = 2
                    stack.removeLast()
                }
            }
        }
    }

    /// Every template's variables: known roots, declared inputs, `run` fields, and
    /// `steps.X` where X exists and is upstream of the step using it.
    func checkTemplates(_ drafts: [StepDraft], declaredInputs: Set<String>) {
        var needsByID: [String: [String]] = [:]
        for d in drafts { if let id = d.id, needsByID[id] == nil { needsByID[id] = d.needs.map(\.id) } }
        var upstreamCache: [Int: Set<String>] = [:]
        func upstream(_ index: Int) -> Set<String> {
            if let cached = upstreamCache[index] { return cached }
            var seen = Set<String>()
            var stack = drafts[index].needs.map(\.id)
            while let next = stack.popLast() {
                guard seen.insert(next).inserted else { continue }
                stack.append(contentsOf: needsByID[next] ?? [])
            }
            upstreamCache[index] = seen
            return seen
        }
        let allIDs = drafts.compactMap(\.id)
        let known = Set(allIDs)
        let inputList = declaredInputs.sorted().joined(separator: ", ")
        for use in templateUses {
            var roots = ["inputs", "steps", "run"]
            if let item = use.itemName { roots.append(item) }
            roots += use.extraRoots
            for reference in use.template.references {
                func fail(_ message: String) { reportTemplate(use.node, use.path, offset: reference.offset, message) }
                guard roots.contains(reference.root) else {
                    if reference.root == "secrets" {
                        fail("'secrets' can only be used in tool http headers")
                    } else {
                        fail("unknown variable '\(reference.root)' in template; templates here can use \(roots.joined(separator: ", "))")
                    }
                    continue
                }
                guard let key = reference.firstKey else { continue }
                switch reference.root {
                case "inputs" where !declaredInputs.contains(key):
                    fail(declaredInputs.isEmpty
                        ? "unknown input '\(key)': this workflow declares no inputs"
                        : "unknown input '\(key)'; declared inputs: \(inputList)")
                case "run" where !Self.runFields.contains(key):
                    fail("unknown field 'run.\(key)'; run has \(Self.runFields.joined(separator: ", "))")
                case "steps":
                    guard known.contains(key) else {
                        fail("unknown step '\(key)' in template; steps are: \(allIDs.joined(separator: ", "))")
                        continue
                    }
                    guard let index = use.stepIndex else { continue }
                    let me = drafts[index].id ?? "?"
                    if key == me {
                        fail("step '\(me)' cannot read its own output")
                    } else if !upstream(index).contains(key) {
                        fail("step '\(me)' reads steps.\(key), but '\(key)' is not upstream of it: add '\(key)' to its needs (directly or through a step it needs)")
                    }
                default:
                    break
                }
            }
        }
    }
}

