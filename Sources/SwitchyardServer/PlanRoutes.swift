import Foundation
import Hummingbird
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardStore
import SwitchyardTools

/// `POST /v1/workflows/{name}/plan {"input": {…}}`: a run's cost range, before it runs.
///
/// The answer is a range meant to contain the actual cost of a run that finishes:
///
/// - **min** prices the fewest calls the run can make (one attempt, one agent turn, flash
///   first for `cascade`, the cheaper expert for `auto`, no `verify` call, steps whose
///   `if` may be false skipped) with a small prompt estimate (the rendered prompt's
///   UTF-8 bytes / 8, or the step's smallest past prompt if smaller), the step's
///   smallest past completion (0 without history), every prompt token a cache hit, at
///   the cheapest rates (off-peak) any price row applies in the next 7 days.
/// - **max** is the reservation bound the runtime itself uses, summed over the most
///   calls the run can make (every retry attempt, every agent turn, flash and pro for
///   `cascade`, the dearer expert for `auto`, each `verify` call): prompt UTF-8 bytes
///   of the whole request (system, prompt, tool definitions) × the highest input rate +
///   `max_tokens` × the highest output rate, peak included. A prompt that reads other
///   steps' outputs adds their bound (their `max_tokens`); an agent's later turns add
///   the earlier turns' answers and tool results. Past calls of the step that were
///   larger than the bound raise it.
/// - A model without a price makes the step **unpriced**: its `min_usd`/`max_usd`, and
///   the totals, are null rather than zero.
struct PlanRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("workflows/:name/plan") { request, context in
            let name = context.parameters.get("name") ?? ""
            let tenant = context.tenant.id
            let body = try await JSONBody.object(of: request)
            guard let stored = try await api.resources.find(kind: .workflow, name: name, tenant: tenant), case .workflow(let spec) = stored.resource else {
                throw APIError.notFound("workflow \(name)")
            }
            if let given = body["input"], given != .null, given.objectValue == nil {
                throw APIError(.unprocessableContent, code: "invalid_input", "`input` must be a JSON object")
            }
            let input: JSONValue
            do {
                input = try spec.resolveInputs(.object(body["input"]?.objectValue ?? [:]))
            } catch let error as InputValidationError {
                throw APIError(.unprocessableContent, code: "invalid_input", error.description, details: RunRoutes.details(error))
            }
            var planner = try await CostPlanner.make(api: api, tenant: tenant)
            let steps = try await planner.plan(spec, input: input, depth: 0)
            return JSONBody.response(try planner.render(workflow: name, steps: steps))
        }
    }
}

/// A range of calls and cost, composed step by step.
struct CostEstimate: Sendable {
    var minCalls = 0
    var maxCalls = 0
    var minCost = Money.zero
    var maxCost = Money.zero
    /// Experts the calls may go to, in the order first met.
    var experts: [String] = []
    /// Why the cost cannot be given (a model without a price, an unknown expert).
    var unpriced: [String] = []
    var notes: [String] = []

    /// `self` then `other`: both happen.
    mutating func add(_ other: CostEstimate) throws {
        minCalls += other.minCalls
        maxCalls += other.maxCalls
        minCost = try minCost.adding(other.minCost)
        maxCost = try maxCost.adding(other.maxCost)
        merge(other)
    }

    /// `self` or `other`, whichever the run takes.
    static func either(_ a: CostEstimate, _ b: CostEstimate) -> CostEstimate {
        var result = a
        result.minCalls = min(a.minCalls, b.minCalls)
        result.maxCalls = max(a.maxCalls, b.maxCalls)
        result.minCost = min(a.minCost, b.minCost)
        result.maxCost = max(a.maxCost, b.maxCost)
        result.merge(b)
        return result
    }

    /// Happens between `low` and `high` times.
    func repeated(low: Int, high: Int) throws -> CostEstimate {
        var result = self
        result.minCalls = minCalls * low
        result.maxCalls = maxCalls * high
        result.minCost = try minCost.multiplied(by: low)
        result.maxCost = try maxCost.multiplied(by: high)
        return result
    }

    /// May not happen at all.
    var optional: CostEstimate {
        var result = self
        result.minCalls = 0
        result.minCost = .zero
        return result
    }

    private mutating func merge(_ other: CostEstimate) {
        for expert in other.experts where !experts.contains(expert) { experts.append(expert) }
        for reason in other.unpriced where !unpriced.contains(reason) { unpriced.append(reason) }
        for note in other.notes where !notes.contains(note) { notes.append(note) }
    }
}

/// What one workflow step comes to.
struct StepPlan: Sendable {
    var step: String
    var estimate: CostEstimate
    var expectedExpert: String?
    /// Whether the step may call a model (model steps, maps of them, child workflows).
    var listed = true
}

/// Past calls of one step by one expert (usage known only).
struct PastUsage: Sendable {
    var calls: Int
    var minPrompt: Int
    var maxPrompt: Int
    var averagePrompt: Int
    var minCompletion: Int
    var maxCompletion: Int
    var averageCompletion: Int
}

extension MeteringRepository {
    /// The smallest, largest and average tokens of a step's past calls, by expert, for `yard plan`.
    func pastUsage(tenant: UUID, workflow: String, step: String) async throws -> [String: PastUsage] {
        var result: [String: PastUsage] = [:]
        for try await row in try await database.query(
            """
            SELECT expert, count(*)::int8, min(prompt_tokens)::int8, max(prompt_tokens)::int8, avg(prompt_tokens)::int8,
                   min(completion_tokens)::int8, max(completion_tokens)::int8, avg(completion_tokens)::int8
            FROM model_calls WHERE tenant_id = \(tenant) AND workflow = \(workflow) AND step_id = \(step) AND usage_known
            GROUP BY expert
            """, logger: database.logger
        ).decode((String, Int, Int, Int, Int, Int, Int, Int).self) {
            result[row.0] = PastUsage(
                calls: row.1, minPrompt: row.2, maxPrompt: row.3, averagePrompt: row.4, minCompletion: row.5, maxCompletion: row.6,
                averageCompletion: row.7)
        }
        return result
    }

    /// The model each expert billed last for this tenant: what the server's experts run.
    func expertModels(tenant: UUID) async throws -> [String: String] {
        var result: [String: String] = [:]
        for try await (expert, model) in try await database.query(
            "SELECT DISTINCT ON (expert) expert, model FROM model_calls WHERE tenant_id = \(tenant) ORDER BY expert, started_at DESC",
            logger: database.logger
        ).decode((String, String).self) {
            result[expert] = model
        }
        return result
    }
}

/// Estimates a workflow's cost range (see ``PlanRoutes``).
struct CostPlanner {
    let api: APIDependencies
    let tenant: UUID
    let book: PriceBook
    /// The instants a run planned now may make its calls in.
    let window: ClosedRange<Date>
    /// Expert name → the model it runs, and whether that was seen in the ledger.
    let expertModels: [String: (model: String, observed: Bool)]
    let threshold: Double
    let defaultMaxTokens: Int
    let gate = Gate()
    /// Notes about the whole plan (assumptions).
    var notes: [String] = []

    /// Tokens assumed for the output of a step whose size cannot be bounded from the workflow.
    static let unknownOutputTokens = 4_096
    /// Bytes assumed for one built-in tool result.
    static let builtinToolResultBytes = 2_048
    static let maxDepth = 4
    /// An `openai` expert's default `max_retries` of blank JSON answers.
    static let defaultJSONRetries = 3
    static let horizon: TimeInterval = 7 * 86_400

    static func make(api: APIDependencies, tenant: UUID) async throws -> CostPlanner {
        let book = try await api.metering.priceBook()
        let now = Date()
        var notes: [String] = []
        var models: [String: (model: String, observed: Bool)] = [:]
        for (expert, model) in api.engineFacts.expertModels { models[expert] = (model, false) }
        let observed = try await api.metering.expertModels(tenant: tenant)
        for (expert, model) in observed { models[expert] = (model, true) }
        for (expert, entry) in models.sorted(by: { $0.key < $1.key }) where !entry.observed {
            notes.append("\(expert): no call of this tenant yet; assumed to run \(entry.model), as the server configures it")
        }
        let tenantThreshold = try await api.tenants.settings(tenant: tenant)?.gateThreshold
        if tenantThreshold == nil {
            notes.append("auto: expected routes use the server's gate threshold \(api.engineFacts.gateThreshold); the range allows either expert")
        }
        let defaultMaxTokens = api.engineFacts.defaultMaxTokens
        notes.append("steps without max_tokens are bounded by the engine's default of \(defaultMaxTokens) completion tokens per call")
        notes.append("rates: the cheapest (min) and dearest (max, peak included) any price row applies in the next 7 days")
        notes.append("min assumes every step runs once and succeeds; a run that fails early costs less")
        return CostPlanner(
            api: api, tenant: tenant, book: book, window: now...now.addingTimeInterval(horizon), expertModels: models,
            threshold: tenantThreshold ?? api.engineFacts.gateThreshold, defaultMaxTokens: defaultMaxTokens, notes: notes)
    }

    // MARK: - Workflows and steps

    mutating func plan(_ spec: WorkflowSpec, input: JSONValue, depth: Int) async throws -> [StepPlan] {
        let scope = TemplateScope(
            inputs: input, run: ["id": .null, "tenant": .string(tenant.uuidString.lowercased()), "workflow": .string(spec.name)])
        var plans: [String: StepPlan] = [:]
        /// Upper bounds of step outputs, in tokens, for prompts that read them.
        var outputBounds: [String: Int] = [:]
        /// Steps that are skipped for sure (`if` false from the input alone).
        var skipped: Set<String> = []
        var done: Set<String> = []
        var remaining = spec.steps
        while !remaining.isEmpty {
            let index = remaining.firstIndex { step in
                (Set(step.needs).union(Self.referencedSteps(step))).subtracting(done).isEmpty
            } ?? 0
            let step = remaining.remove(at: index)
            done.insert(step.id)
            let reads = Self.referencedSteps(step)
            if !reads.isDisjoint(with: skipped) {
                skipped.insert(step.id)
                plans[step.id] = StepPlan(step: step.id, estimate: CostEstimate(notes: ["skipped: it reads a step that is skipped"]), listed: Self.callsModels(step))
                continue
            }
            var conditional = false
            if let condition = step.condition {
                if condition.referencedSteps.isEmpty, let value = try? condition.evaluate(scope) {
                    if !value.isTruthy {
                        skipped.insert(step.id)
                        plans[step.id] = StepPlan(step: step.id, estimate: CostEstimate(notes: ["skipped: `if` is false for this input"]), listed: Self.callsModels(step))
                        continue
                    }
                } else {
                    conditional = true
                }
            }
            var plan = try await self.plan(step, workflow: spec.name, scope: scope, outputBounds: &outputBounds, depth: depth)
            plan.listed = Self.callsModels(step)
            if conditional {
                plan.estimate = plan.estimate.optional
                plan.estimate.notes.append("`if` reads other steps: the step may be skipped (min counts it as skipped)")
            }
            plans[step.id] = plan
        }
        return spec.steps.compactMap { plans[$0.id] }
    }

    static func callsModels(_ step: StepSpec) -> Bool {
        switch step.kind {
        case .model, .workflow: true
        case .map(let map): if case .model = map.step { true } else { false }
        case .transform, .tool, .waitFor: false
        }
    }

    static func referencedSteps(_ step: StepSpec) -> Set<String> {
        var reads = step.condition?.referencedSteps ?? []
        switch step.kind {
        case .model(let model):
            reads.formUnion(templates(of: model).flatMap(\.referencedSteps))
        case .map(let map):
            reads.formUnion(map.over.referencedSteps)
            if case .model(let model) = map.step { reads.formUnion(templates(of: model).flatMap(\.referencedSteps)) }
        case .transform(let template):
            reads.formUnion(template.referencedSteps)
        case .tool(let tool):
            reads.formUnion(((try? Template.embedded(in: tool.with)) ?? []).flatMap(\.template.referencedSteps))
        case .workflow(let child):
            reads.formUnion(((try? Template.embedded(in: child.with)) ?? []).flatMap(\.template.referencedSteps))
        case .waitFor:
            break
        }
        return reads
    }

    static func templates(of model: ModelStepSpec) -> [Template] {
        [model.prompt] + [model.model, model.check, model.verify].compactMap { $0 }
    }

    private mutating func plan(
        _ step: StepSpec, workflow: String, scope: TemplateScope, outputBounds: inout [String: Int], depth: Int
    ) async throws -> StepPlan {
        let attempts = max(1, step.retry.maxAttempts)
        switch step.kind {
        case .model(let model):
            let past = try await api.metering.pastUsage(tenant: tenant, workflow: workflow, step: step.id)
            let (single, expected) = try await self.item(model, step: step.id, workflow: workflow, scope: scope, past: past, outputBounds: outputBounds)
            var estimate = single
            outputBounds[step.id] = model.maxTokens ?? defaultMaxTokens
            if attempts > 1 {
                estimate = try estimate.repeated(low: 1, high: attempts)
                estimate.notes.append("max counts all \(attempts) attempts of `retry`")
            }
            return StepPlan(step: step.id, estimate: estimate, expectedExpert: expected)

        case .map(let map):
            guard case .model(let model) = map.step else {
                outputBounds[step.id] = Self.unknownOutputTokens
                return StepPlan(step: step.id, estimate: CostEstimate())
            }
            let past = try await api.metering.pastUsage(tenant: tenant, workflow: workflow, step: step.id)
            var items: [JSONValue]?
            if map.over.referencedSteps.isEmpty, case .array(let values)? = try? map.over.evaluate(scope) { items = values }
            var total = CostEstimate()
            var expected: String?
            if let items {
                total.notes.append("map over \(items.count) item\(items.count == 1 ? "" : "s") from the input")
                for value in items {
                    var itemScope = scope
                    itemScope.variables[map.itemName] = value
                    let (estimate, routed) = try await self.item(model, step: step.id, workflow: workflow, scope: itemScope, past: past, outputBounds: outputBounds)
                    try total.add(estimate)
                    expected = expected ?? routed
                }
            } else {
                var itemScope = scope
                itemScope.variables[map.itemName] = .null
                let (estimate, routed) = try await self.item(
                    model, step: step.id, workflow: workflow, scope: itemScope, past: past, outputBounds: outputBounds, itemUnknown: map.itemName)
                try total.add(estimate)
                expected = routed
                total.notes.append("map.over reads other steps' outputs: its items are unknown, so the inner step counts once")
            }
            outputBounds[step.id] = (model.maxTokens ?? defaultMaxTokens) * max(1, items?.count ?? 1)
            if attempts > 1 {
                total = try total.repeated(low: 1, high: attempts)
                total.notes.append("max counts all \(attempts) attempts of `retry`")
            }
            return StepPlan(step: step.id, estimate: total, expectedExpert: expected)

        case .transform(let template):
            if template.referencedSteps.isEmpty, let value = try? template.evaluate(scope) {
                outputBounds[step.id] = (value.stringValue ?? value.compactJSON).utf8.count
            } else {
                outputBounds[step.id] = Self.literalBytes(template) + template.referencedSteps.reduce(0) { $0 + (outputBounds[$1] ?? Self.unknownOutputTokens) }
            }
            return StepPlan(step: step.id, estimate: CostEstimate())

        case .tool(let tool):
            outputBounds[step.id] = try await toolResultBytes(tool.tool)
            return StepPlan(step: step.id, estimate: CostEstimate())

        case .waitFor:
            outputBounds[step.id] = Self.unknownOutputTokens
            return StepPlan(step: step.id, estimate: CostEstimate())

        case .workflow(let child):
            outputBounds[step.id] = Self.unknownOutputTokens
            var estimate = CostEstimate()
            guard depth < Self.maxDepth,
                let stored = try await api.resources.find(kind: .workflow, name: child.workflow, tenant: tenant),
                case .workflow(let childSpec) = stored.resource
            else {
                estimate.unpriced.append("child workflow \(child.workflow) could not be planned")
                return StepPlan(step: step.id, estimate: estimate)
            }
            let rendered: JSONValue? = Self.referencedSteps(step).isEmpty ? try? child.with.renderTemplates(scope) : nil
            guard let childInput = try? childSpec.resolveInputs(rendered ?? .object([:])) else {
                estimate.unpriced.append("the input of child workflow \(child.workflow) reads other steps' outputs; its cost is not estimated")
                return StepPlan(step: step.id, estimate: estimate)
            }
            if rendered == nil { estimate.notes.append("child workflow \(child.workflow) planned with its default inputs") }
            for plan in try await self.plan(childSpec, input: childInput, depth: depth + 1) {
                try estimate.add(plan.estimate)
            }
            estimate.notes.append("includes child workflow \(child.workflow)")
            return StepPlan(step: step.id, estimate: estimate)
        }
    }

    // MARK: - One model call sequence

    /// One item of a model step: its routing, its conversation(s), its checks.
    private func item(
        _ model: ModelStepSpec, step: String, workflow: String, scope: TemplateScope, past: [String: PastUsage],
        outputBounds: [String: Int], itemUnknown: String? = nil
    ) async throws -> (CostEstimate, String?) {
        var notes: [String] = []
        // The prompt: rendered when it reads only the input; else its literal text plus
        // the bound of what it reads.
        var promptText: String
        var extraTokens = 0
        let reads = model.prompt.referencedSteps
        let readsUnknownItem = itemUnknown.map { model.prompt.referencedRoots.contains($0) } ?? false
        if reads.isEmpty, !readsUnknownItem, let value = try? model.prompt.evaluate(scope) {
            promptText = value.stringValue ?? value.compactJSON
        } else {
            promptText = Self.literalText(model.prompt)
            for read in reads.sorted() {
                extraTokens += outputBounds[read] ?? Self.unknownOutputTokens
            }
            if readsUnknownItem { extraTokens += Self.unknownOutputTokens }
            notes.append("the prompt reads \(reads.sorted().map { "steps.\($0)" }.joined(separator: ", "))\(readsUnknownItem ? " and an unknown map item" : ""): estimated from its literal text, bounded by what it reads")
        }

        // The agent, its instructions and tools, as the runner builds the request.
        var agent: AgentSpec?
        if let name = model.agent, let stored = try await api.resources.find(kind: .agent, name: name, tenant: tenant), case .agent(let spec) = stored.resource {
            agent = spec
        }
        var definitions: [SwitchyardExperts.ToolDefinition] = []
        var toolResultBytes = 0
        for name in agent?.tools ?? [] {
            if let builtin = SwitchyardTools.ToolDefinition.builtins.first(where: { $0.name == name }) {
                definitions.append(SwitchyardExperts.ToolDefinition(name: builtin.name, description: builtin.description, parameters: builtin.parameters))
            } else if let stored = try await api.resources.find(kind: .tool, name: name, tenant: tenant), case .tool(let tool) = stored.resource {
                definitions.append(SwitchyardExperts.ToolDefinition(
                    name: tool.name, description: tool.description, parameters: tool.parameters ?? ["type": "object", "properties": [:]]))
            } else {
                definitions.append(SwitchyardExperts.ToolDefinition(name: name))
            }
            toolResultBytes += try await self.toolResultBytes(name)
        }
        var system: [String] = []
        if let agent { system.append(agent.instructions) }
        if let schema = model.output {
            system.append("Answer with a single JSON value (json) that satisfies this JSON Schema: \(schema.compactJSON)")
        }
        var messages: [ChatMessage] = []
        if !system.isEmpty { messages.append(ChatMessage(.system, system.joined(separator: "\n\n"))) }
        messages.append(ChatMessage(.user, promptText))
        let maxTokens = model.maxTokens ?? defaultMaxTokens
        let request = ModelRequest(messages: messages, tools: definitions, maxTokens: maxTokens, wantsJSON: model.output != nil, tenant: "")
        // " Answer in json." may be appended for JSON mode: a small margin covers it.
        let firstPromptBound = request.promptByteBound + extraTokens + 32
        let turns = definitions.isEmpty ? 1 : max(1, agent?.maxTurns ?? 1)
        // Each later turn carries the earlier answer (≤ max_tokens) and the tool results.
        let turnGrowth = maxTokens + toolResultBytes + 64 * (definitions.count + 1)
        let lowPromptGuess = promptText.utf8.count / 8
        if turns > 1 { notes.append("agent: 1 to \(turns) model calls per answer (max_turns); later turns include earlier answers and tool results") }

        func answer(_ expert: String) throws -> CostEstimate {
            var estimate = CostEstimate(experts: [expert])
            guard let (low, high, _) = rates(expert) else {
                estimate.minCalls = 1
                estimate.maxCalls = turns
                estimate.unpriced.append(unpricedReasonFor(expert))
                return estimate
            }
            let history = past[expert]
            let lowPrompt = min(lowPromptGuess, history?.minPrompt ?? Int.max)
            let lowCompletion = history?.minCompletion ?? 0
            estimate.minCalls = 1
            estimate.maxCalls = turns
            estimate.minCost = try min(low.inputCacheHit, low.inputCacheMiss).cost(ofTokens: lowPrompt).adding(low.output.cost(ofTokens: lowCompletion))
            let inputRate = max(high.inputCacheMiss, high.inputCacheHit)
            var maxCost = Money.zero
            for turn in 0..<turns {
                let prompt = max(firstPromptBound + turn * turnGrowth, history?.maxPrompt ?? 0)
                let completion = max(maxTokens, history?.maxCompletion ?? 0)
                maxCost = try maxCost.adding(inputRate.cost(ofTokens: prompt)).adding(high.output.cost(ofTokens: completion))
            }
            // JSON mode: an `openai` expert asks again on a blank answer (max_retries,
            // 3 by default) and every answer is billed; the scripted one never does.
            if model.output != nil, let name = expertModels[expert]?.model, !name.hasPrefix("scripted") {
                maxCost = try maxCost.multiplied(by: 1 + Self.defaultJSONRetries)
                estimate.notes.append("JSON mode: max counts \(1 + Self.defaultJSONRetries) billed answers per call (blank answers are asked again)")
            }
            estimate.maxCost = maxCost
            if let history {
                estimate.notes.append(
                    "\(expert): past average \(history.averagePrompt) prompt + \(history.averageCompletion) completion tokens over \(history.calls) call\(history.calls == 1 ? "" : "s")")
            }
            return estimate
        }

        // `verify`: flash answers a yes/no question about each answer (64 tokens at most).
        func verification() throws -> CostEstimate {
            guard let verify = model.verify else { return CostEstimate() }
            var estimate = CostEstimate(experts: [ExpertTier.flash.rawValue])
            estimate.maxCalls = 1
            guard let (_, high, _) = rates(ExpertTier.flash.rawValue) else {
                estimate.unpriced.append(unpricedReasonFor(ExpertTier.flash.rawValue))
                return estimate
            }
            let bytes = 256 + Self.literalBytes(verify) + maxTokens
                + verify.referencedSteps.reduce(0) { $0 + (outputBounds[$1] ?? Self.unknownOutputTokens) }
            estimate.maxCost = try max(high.inputCacheMiss, high.inputCacheHit).cost(ofTokens: bytes).adding(high.output.cost(ofTokens: 64))
            estimate.notes.append("verify: up to one flash call per answer")
            return estimate
        }

        // The routing policy: the step's `model`, else the agent's, else flash.
        var choices: [String]
        if let template = model.model {
            if template.referencedSteps.isEmpty, let value = try? template.evaluate(scope).stringValue {
                choices = [value]
            } else {
                let known = Set(expertModels.keys).union(["flash", "pro", "auto", "cascade"])
                choices = Self.stringLiterals(template.source).filter { known.contains($0) }
                if choices.isEmpty { choices = ["flash", "pro", "cascade"] }
                notes.append("model `\(template.source)` reads other steps: the range covers \(choices.joined(separator: ", "))")
            }
        } else {
            choices = [agent?.model ?? "flash"]
        }

        var expected: String?
        var combined: CostEstimate?
        for choice in choices {
            var estimate: CostEstimate
            switch choice {
            case "auto":
                let request = GateRequest(
                    prompt: promptText, system: agent?.instructions, stepKey: GateRepository.stepKey(workflow: workflow, step: step),
                    difficulty: model.difficulty.flatMap(Difficulty.init(rawValue:)), thinking: model.thinking ?? false, outputSchema: model.output,
                    toolCount: definitions.count)
                let history = try await api.gateHistory.history(tenant: tenant, stepKey: request.stepKey)
                let decision = gate.decide(request, history: history, threshold: threshold)
                if choices.count == 1 { expected = decision.expert }
                let flash = try answer(ExpertTier.flash.rawValue), pro = try answer(ExpertTier.pro.rawValue)
                estimate = CostEstimate.either(decision.expert == ExpertTier.pro.rawValue ? pro : flash, decision.expert == ExpertTier.pro.rawValue ? flash : pro)
                try estimate.add(verification().optional)
                let score = decision.score.map { String(format: "%.2f", $0) } ?? "?"
                estimate.notes.append("auto: the gate expects \(decision.expert) (score \(score), threshold \(String(format: "%.2f", threshold))); the range allows either expert")
            case "cascade":
                estimate = try answer(ExpertTier.flash.rawValue)
                try estimate.add(verification().optional)
                var escalation = try answer(ExpertTier.pro.rawValue).optional
                try escalation.add(verification().optional)
                try estimate.add(escalation)
                estimate.notes.append("cascade: flash always; pro too when flash's answer fails its checks (max counts both)")
            default:
                estimate = try answer(choice)
                try estimate.add(verification().optional)
            }
            combined = combined.map { CostEstimate.either($0, estimate) } ?? estimate
        }
        var result = combined ?? CostEstimate()
        for note in notes where !result.notes.contains(note) { result.notes.insert(note, at: 0) }
        return (result, expected)
    }

    // MARK: - Rates

    /// The cheapest and the dearest rates an expert's model may be billed at in the window; nil when unpriced.
    func rates(_ expert: String) -> (low: RateSet, high: RateSet, model: String)? {
        guard let model = expertModels[expert]?.model,
            let high = book.upperBoundRates(forModel: model, during: window)
        else { return nil }
        var instants = [window.lowerBound]
        instants += book.rows.map(\.effectiveFrom).filter { $0 > window.lowerBound && $0 <= window.upperBound }
        var low: RateSet?
        for instant in instants {
            guard let row = book.row(forBilledModel: model, at: instant) else { continue }
            var rates = RateSet(inputCacheHit: row.inputCacheHit, inputCacheMiss: row.inputCacheMiss, output: row.output, period: .standard)
            if let peak = row.peak {
                rates.inputCacheHit = min(rates.inputCacheHit, peak.inputCacheHit)
                rates.inputCacheMiss = min(rates.inputCacheMiss, peak.inputCacheMiss)
                rates.output = min(rates.output, peak.output)
            }
            low = low.map {
                RateSet(inputCacheHit: min($0.inputCacheHit, rates.inputCacheHit), inputCacheMiss: min($0.inputCacheMiss, rates.inputCacheMiss),
                        output: min($0.output, rates.output), period: .standard)
            } ?? rates
        }
        guard let low else { return nil }
        return (low, high, model)
    }

    func unpricedReasonFor(_ expert: String) -> String {
        guard let model = expertModels[expert]?.model else { return "unpriced: no model is known for expert \(expert)" }
        return "unpriced: \(expert) runs \(model), which has no price in the price book (yard prices set)"
    }

    private func toolResultBytes(_ name: String) async throws -> Int {
        if SwitchyardTools.ToolDefinition.builtins.contains(where: { $0.name == name }) { return Self.builtinToolResultBytes }
        if let stored = try await api.resources.find(kind: .tool, name: name, tenant: tenant), case .tool(let tool) = stored.resource {
            return tool.http?.maxResponseBytes ?? 1 << 20
        }
        return Self.unknownOutputTokens
    }

    // MARK: - Template text

    /// The template's text outside `{{ … }}`.
    static func literalText(_ template: Template) -> String {
        var text = template.source
        while let open = text.range(of: "{{"), let close = text.range(of: "}}", range: open.upperBound..<text.endIndex) {
            text.removeSubrange(open.lowerBound..<close.upperBound)
        }
        return text
    }

    static func literalBytes(_ template: Template) -> Int {
        literalText(template).utf8.count
    }

    /// Quoted string literals in a template's source (`'pro'`, `"cascade"`).
    static func stringLiterals(_ source: String) -> [String] {
        var result: [String] = []
        var quote: Character?
        var current = ""
        for character in source {
            if let open = quote {
                if character == open {
                    if !result.contains(current) { result.append(current) }
                    quote = nil
                    current = ""
                } else {
                    current.append(character)
                }
            } else if character == "'" || character == "\"" {
                quote = character
            }
        }
        return result
    }

    // MARK: - Rendering

    func render(workflow: String, steps: [StepPlan]) throws -> JSONValue {
        var minTotal = Money.zero, maxTotal = Money.zero
        var priced = true
        var rendered: [JSONValue] = []
        for plan in steps {
            let estimate = plan.estimate
            // Steps that never call a model (transforms, tools, waits) are not listed.
            guard plan.listed else { continue }
            let stepPriced = estimate.unpriced.isEmpty
            if stepPriced {
                minTotal = try minTotal.adding(estimate.minCost)
                maxTotal = try maxTotal.adding(estimate.maxCost)
            } else {
                priced = false
            }
            var object: [String: JSONValue] = [
                "step": .string(plan.step),
                "experts": .array(estimate.experts.map(JSONValue.string)),
                "calls": ["min": .int(estimate.minCalls), "max": .int(estimate.maxCalls)],
                "min_usd": stepPriced ? .string(estimate.minCost.decimalString) : .null,
                "max_usd": stepPriced ? .string(estimate.maxCost.decimalString) : .null,
                "unpriced": .bool(!stepPriced),
                "notes": .array((estimate.unpriced + estimate.notes).map(JSONValue.string)),
            ]
            if let expected = plan.expectedExpert { object["expected_expert"] = .string(expected) }
            rendered.append(.object(object))
        }
        return [
            "workflow": .string(workflow),
            "steps": .array(rendered),
            "min_usd": priced ? .string(minTotal.decimalString) : .null,
            "max_usd": priced ? .string(maxTotal.decimalString) : .null,
            "unpriced": .bool(!priced),
            "notes": .array(notes.map(JSONValue.string)),
        ]
    }
}
