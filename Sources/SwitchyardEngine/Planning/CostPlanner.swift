import Foundation
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardStore
import SwitchyardTools

/// Estimates a workflow's cost range before it runs (`POST /v1/workflows/{name}/plan`).
///
/// The range is meant to contain the actual cost of a run that finishes:
///
/// - **min** prices the fewest calls the run can make (one attempt, one agent turn, flash
///   first for `cascade`, the cheaper expert for `auto`, no `verify` call, steps whose
///   `if` may be false skipped) with a small prompt estimate (the rendered prompt's
///   UTF-8 bytes / 8, or the step's smallest past prompt if smaller), the step's
///   smallest past completion (0 without history), every prompt token a cache hit, at
///   the cheapest rates (off-peak) any price row applies in the next 7 days.
/// - **max** is the reservation bound the runtime itself uses, summed over the most
///   calls the run can make (every retry attempt, every agent turn, flash and pro for
///   `cascade`, the dearer expert for `auto`, each `verify` call, every billed answer an
///   expert may take per call): prompt UTF-8 bytes of the whole request (system,
///   prompt, tool definitions) × the highest input rate + `max_tokens` × the highest
///   output rate, peak included. A prompt that reads other steps' outputs adds their
///   bound (their `max_tokens`); an agent's later turns add the earlier turns' answers
///   and tool results. Past calls of the step that were larger than the bound raise it.
/// - A model without a price makes the step **unpriced**: it has no cost, and neither
///   has the plan.
///
/// The requests it prices are built by ``ModelStepRequest`` and routed by
/// ``RoutingPolicy``, as the step runner builds and routes them, and an expert's
/// billed answers per call are its own ``Expert/billedAttempts(for:)``.
public struct CostPlanner: Sendable {
    /// A model an expert runs, and whether it was seen in the tenant's ledger (else it
    /// is what this server configures).
    struct ExpertModel: Sendable {
        var model: String
        var observed: Bool
    }

    let resources: ResourceRepository
    let metering: MeteringRepository
    let gateHistory: GateRepository
    let tenant: UUID
    let book: PriceBook
    /// The instants a run planned now may make its calls in.
    let window: ClosedRange<Date>
    /// Expert name → the model it runs.
    let expertModels: [String: ExpertModel]
    /// This server's experts: how many billed answers one call may take.
    let experts: ExpertPool
    let threshold: Double
    let defaultMaxTokens: Int
    let gate = Gate()
    /// Notes about the whole plan (its assumptions).
    let notes: [String]

    /// Tokens assumed for the output of a step whose size cannot be bounded from the workflow.
    static let unknownOutputTokens = 4_096
    /// Bytes assumed for one built-in tool result.
    static let builtinToolResultBytes = 2_048
    /// Bytes assumed for a stored tool's result when it sets no `max_response_bytes`.
    static let storedToolResultBytes = 1 << 20
    /// How deep child workflows are planned.
    static let maxDepth = 4
    static let horizon: TimeInterval = 7 * 86_400

    /// A planner for one tenant: reads the price book, the models the tenant's calls
    /// billed, and the tenant's gate threshold, and notes what it had to assume. The
    /// rates are those of the 7 days from `now`.
    public static func make(
        database: Database, tenant: UUID, experts: ExpertPool, gateThreshold: Double, defaultMaxTokens: Int, now: Date = Date()
    ) async throws -> CostPlanner {
        let metering = MeteringRepository(database: database)
        let book = try await metering.priceBook()
        var notes: [String] = []
        var models: [String: ExpertModel] = [:]
        for (name, expert) in experts.experts { models[name] = ExpertModel(model: expert.model, observed: false) }
        for (expert, model) in try await metering.expertModels(tenant: tenant) { models[expert] = ExpertModel(model: model, observed: true) }
        for (expert, entry) in models.sorted(by: { $0.key < $1.key }) where !entry.observed {
            notes.append("\(expert): no call of this tenant yet; assumed to run \(entry.model), as the server configures it")
        }
        let tenantThreshold = try await TenantRepository(database: database).settings(tenant: tenant)?.gateThreshold
        if tenantThreshold == nil {
            notes.append("auto: expected routes use the server's gate threshold \(gateThreshold); the range allows either expert")
        }
        notes.append("steps without max_tokens are bounded by the engine's default of \(defaultMaxTokens) completion tokens per call")
        notes.append("rates: the cheapest (min) and dearest (max, peak included) any price row applies in the next 7 days")
        notes.append("min assumes every step runs once and succeeds; a run that fails early costs less")
        return CostPlanner(
            resources: ResourceRepository(database: database), metering: metering, gateHistory: GateRepository(database: database),
            tenant: tenant, book: book, window: now...now.addingTimeInterval(horizon), expertModels: models, experts: experts,
            threshold: tenantThreshold ?? gateThreshold, defaultMaxTokens: defaultMaxTokens, notes: notes)
    }

    /// The plan of a run of `spec` with this (resolved) input.
    public func plan(_ spec: WorkflowSpec, input: JSONValue) async throws -> WorkflowPlan {
        WorkflowPlan(steps: try await steps(of: spec, input: input, depth: 0), notes: notes)
    }

    // MARK: - Workflows and steps

    /// What the step bounds of a workflow plan know so far.
    struct Walk {
        /// Upper bounds of step outputs, in tokens, for prompts that read them.
        var outputBounds: [String: Int] = [:]
        /// Steps that are skipped for sure (`if` false from the input alone).
        var skipped: Set<String> = []
    }

    /// Every step's plan, in document order. Steps are planned in the order the engine
    /// may run them, so that a step's readers know its output bound.
    func steps(of spec: WorkflowSpec, input: JSONValue, depth: Int) async throws -> [StepPlan] {
        let scope = TemplateScope(
            inputs: input, run: ["id": .null, "tenant": .string(tenant.lowercasedString), "workflow": .string(spec.name)])
        let workflow = CompiledWorkflow(spec)
        var walk = Walk()
        var plans: [String: StepPlan] = [:]
        for id in spec.topologicalOrder() {
            guard let step = workflow.steps[id] else { continue }
            plans[id] = try await plan(step, reads: workflow.referencedSteps[id] ?? [], workflow: spec.name, scope: scope, walk: &walk, depth: depth)
        }
        return spec.steps.compactMap { plans[$0.id] }
    }

    /// A step as the engine treats it: skipped when it reads a skipped step or its `if`
    /// is false for the input alone; optional when its `if` reads other steps.
    private func plan(
        _ step: StepSpec, reads: Set<String>, workflow: String, scope: TemplateScope, walk: inout Walk, depth: Int
    ) async throws -> StepPlan {
        let listed = Self.callsModels(step)
        if !reads.isDisjoint(with: walk.skipped) {
            walk.skipped.insert(step.id)
            return StepPlan(step: step.id, estimate: CostEstimate(notes: ["skipped: it reads a step that is skipped"]), listed: listed)
        }
        var conditional = false
        if let condition = step.condition {
            if condition.referencedSteps.isEmpty, let value = try? condition.evaluate(scope) {
                if !value.isTruthy {
                    walk.skipped.insert(step.id)
                    return StepPlan(step: step.id, estimate: CostEstimate(notes: ["skipped: `if` is false for this input"]), listed: listed)
                }
            } else {
                conditional = true
            }
        }
        var plan = try await self.plan(step, reads: reads, workflow: workflow, scope: scope, outputBounds: &walk.outputBounds, depth: depth)
        plan.listed = listed
        if conditional {
            plan.estimate = plan.estimate.optional
            plan.estimate.notes.append("`if` reads other steps: the step may be skipped (min counts it as skipped)")
        }
        return plan
    }

    /// Whether a step may call a model (model steps, maps of them, child workflows).
    static func callsModels(_ step: StepSpec) -> Bool {
        switch step.kind {
        case .model, .workflow: true
        case .map(let map): if case .model = map.step { true } else { false }
        case .transform, .tool, .waitFor: false
        }
    }

    /// A step that runs: its calls by kind, and the bound of its output for its readers.
    private func plan(
        _ step: StepSpec, reads: Set<String>, workflow: String, scope: TemplateScope, outputBounds: inout [String: Int], depth: Int
    ) async throws -> StepPlan {
        let attempts = max(1, step.retry.maxAttempts)
        var plan: StepPlan
        switch step.kind {
        case .model(let model):
            let past = try await metering.pastUsage(tenant: tenant, workflow: workflow, step: step.id)
            let item = try await self.item(model, step: step.id, workflow: workflow, scope: scope, past: past, outputBounds: outputBounds)
            outputBounds[step.id] = model.maxTokens ?? defaultMaxTokens
            plan = StepPlan(step: step.id, estimate: item.estimate, expectedExpert: item.expected)
            plan.requests = [item.request]
        case .map(let map):
            guard case .model(let model) = map.step else {
                outputBounds[step.id] = Self.unknownOutputTokens
                return StepPlan(step: step.id, estimate: CostEstimate())
            }
            plan = try await self.map(map, model: model, step: step.id, workflow: workflow, scope: scope, outputBounds: &outputBounds)
        case .transform(let template):
            if template.referencedSteps.isEmpty, let value = try? template.evaluate(scope) {
                outputBounds[step.id] = (value.stringValue ?? value.compactJSON).utf8.count
            } else {
                outputBounds[step.id] =
                    Self.literalBytes(template) + template.referencedSteps.reduce(0) { $0 + (outputBounds[$1] ?? Self.unknownOutputTokens) }
            }
            return StepPlan(step: step.id, estimate: CostEstimate())
        case .tool(let tool):
            outputBounds[step.id] = try await self.tool(tool.tool).resultBytes
            return StepPlan(step: step.id, estimate: CostEstimate())
        case .waitFor:
            outputBounds[step.id] = Self.unknownOutputTokens
            return StepPlan(step: step.id, estimate: CostEstimate())
        case .workflow(let child):
            outputBounds[step.id] = Self.unknownOutputTokens
            return StepPlan(step: step.id, estimate: try await self.child(child, reads: reads, scope: scope, depth: depth))
        }
        if attempts > 1 {
            plan.estimate = try plan.estimate.repeated(low: 1, high: attempts)
            plan.estimate.notes.append("max counts all \(attempts) attempts of `retry`")
        }
        return plan
    }

    /// A map of a model step: each item from the input, or one unknown item when `over`
    /// reads other steps' outputs.
    private func map(
        _ map: MapStepSpec, model: ModelStepSpec, step: String, workflow: String, scope: TemplateScope, outputBounds: inout [String: Int]
    ) async throws -> StepPlan {
        let past = try await metering.pastUsage(tenant: tenant, workflow: workflow, step: step)
        var items: [JSONValue]?
        if map.over.referencedSteps.isEmpty, case .array(let values)? = try? map.over.evaluate(scope) { items = values }
        var plan = StepPlan(step: step, estimate: CostEstimate())
        if let items {
            plan.estimate.notes.append("map over \(items.count) item\(items.count == 1 ? "" : "s") from the input")
            for value in items {
                var itemScope = scope
                itemScope.variables[map.itemName] = value
                let item = try await self.item(model, step: step, workflow: workflow, scope: itemScope, past: past, outputBounds: outputBounds)
                try plan.estimate.add(item.estimate)
                plan.expectedExpert = plan.expectedExpert ?? item.expected
                plan.requests.append(item.request)
            }
        } else {
            var itemScope = scope
            itemScope.variables[map.itemName] = .null
            let item = try await self.item(
                model, step: step, workflow: workflow, scope: itemScope, past: past, outputBounds: outputBounds, itemUnknown: map.itemName)
            try plan.estimate.add(item.estimate)
            plan.expectedExpert = item.expected
            plan.requests.append(item.request)
            plan.estimate.notes.append("map.over reads other steps' outputs: its items are unknown, so the inner step counts once")
        }
        outputBounds[step] = (model.maxTokens ?? defaultMaxTokens) * max(1, items?.count ?? 1)
        return plan
    }

    /// A child workflow, planned with its input when that input reads only this run's.
    private func child(_ child: ChildWorkflowSpec, reads: Set<String>, scope: TemplateScope, depth: Int) async throws -> CostEstimate {
        var estimate = CostEstimate()
        guard depth < Self.maxDepth,
            let stored = try await resources.find(kind: .workflow, name: child.workflow, tenant: tenant),
            case .workflow(let childSpec) = stored.resource
        else {
            estimate.unpriced.append("child workflow \(child.workflow) could not be planned")
            return estimate
        }
        let rendered: JSONValue? = reads.isEmpty ? try? child.with.renderTemplates(scope) : nil
        guard let childInput = try? childSpec.resolveInputs(rendered ?? .object([:])) else {
            estimate.unpriced.append("the input of child workflow \(child.workflow) reads other steps' outputs; its cost is not estimated")
            return estimate
        }
        if rendered == nil { estimate.notes.append("child workflow \(child.workflow) planned with its default inputs") }
        for plan in try await steps(of: childSpec, input: childInput, depth: depth + 1) {
            try estimate.add(plan.estimate)
        }
        estimate.notes.append("includes child workflow \(child.workflow)")
        return estimate
    }
}
