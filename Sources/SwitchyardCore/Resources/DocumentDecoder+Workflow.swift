/// Workflow documents: inputs, steps (and their kinds), the step graph and the
/// templates' references, checked with positions like the rest of the decoder.
extension DocumentDecoder {
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
            report(
                second, Self.child(path, present[1]),
                "a step can have only one of \(Self.kindKeys.joined(separator: ", ")); this one has both '\(present[0])' and '\(present[1])'")
            return nil
        }
        var ok = true
        for companion in Self.modelCompanions where keyword != "prompt" && f.has(companion) {
            if let key = f.key(companion) {
                let message =
                    companion == "agent"
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
                if valid {
                    signal = s
                } else {
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
                report(
                    node, Self.child(path, "difficulty"),
                    "unknown difficulty '\(d)': expected \(Difficulty.allCases.map(\.rawValue).joined(separator: ", "))")
                ok = false
            }
        }
        // `check` and `verify` read the answer as `output`, besides what other templates read.
        let check = f["check"].flatMap {
            workflowTemplate($0, Self.child(path, "check"), step: step, item: item, what: "an expression", extraRoots: ["output"])
        }
        let verify = f["verify"].flatMap {
            workflowTemplate($0, Self.child(path, "verify"), step: step, item: item, what: "a question", extraRoots: ["output"])
        }
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
                    fail(
                        declaredInputs.isEmpty
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
                        fail(
                            "step '\(me)' reads steps.\(key), but '\(key)' is not upstream of it: add '\(key)' to its needs (directly or through a step it needs)"
                        )
                    }
                default:
                    break
                }
            }
        }
    }
}
