import Foundation
import Hummingbird
import SwitchyardAPI
import SwitchyardCore
import SwitchyardEngine
import SwitchyardMetering
import SwitchyardStore

/// `POST /v1/workflows/{name}/plan {"input": {…}}`: a run's cost range, before it runs.
///
/// The route reads the request and renders the plan; what the range means and how it
/// is estimated is ``CostPlanner``'s. Steps that never call a model are not listed; a
/// step with a model that has no price is **unpriced**: its `min_usd`/`max_usd`, and
/// the totals, are null rather than zero.
struct PlanRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<TenantRequestContext>) {
        group.post("workflows/:name/plan") { request, context in
            let name = context.parameters.get("name") ?? ""
            let tenant = context.tenant.id
            let body = try await JSONBody.object(of: request)
            guard let stored = try await api.resources.find(kind: .workflow, name: name, tenant: tenant), case .workflow(let spec) = stored.resource
            else {
                throw APIError.notFound("workflow \(name)")
            }
            if let given = body["input"], given != .null, given.objectValue == nil {
                throw APIError(.unprocessableContent, code: .invalidInput, "`input` must be a JSON object")
            }
            let input: JSONValue
            do {
                input = try spec.resolveInputs(.object(body["input"]?.objectValue ?? [:]))
            } catch let error as InputValidationError {
                throw APIError(.unprocessableContent, code: .invalidInput, error.description, details: RunRoutes.details(error))
            }
            let facts = api.engineFacts
            let planner = try await CostPlanner.make(
                database: api.database, tenant: tenant, experts: facts.experts, gateThreshold: facts.gateThreshold,
                defaultMaxTokens: facts.defaultMaxTokens)
            return try JSONBody.reply(try Self.render(workflow: name, plan: try await planner.plan(spec, input: input)))
        }
    }

    /// The plan as the API answers it: each listed step's range and notes, and the
    /// totals (null when any listed step is unpriced).
    static func render(workflow: String, plan: WorkflowPlan) throws -> APIPlan {
        var minTotal = Money.zero
        var maxTotal = Money.zero
        var priced = true
        var rendered: [APIPlanStep] = []
        for step in plan.steps {
            let estimate = step.estimate
            // Steps that never call a model (transforms, tools, waits) are not listed.
            guard step.listed else { continue }
            let stepPriced = estimate.unpriced.isEmpty
            if stepPriced {
                minTotal = try minTotal.adding(estimate.minCost)
                maxTotal = try maxTotal.adding(estimate.maxCost)
            } else {
                priced = false
            }
            rendered.append(
                APIPlanStep(
                    step: step.step, experts: estimate.experts, calls: .init(min: estimate.minCalls, max: estimate.maxCalls),
                    minUSD: stepPriced ? estimate.minCost.decimalString : nil, maxUSD: stepPriced ? estimate.maxCost.decimalString : nil,
                    unpriced: !stepPriced, notes: estimate.unpriced + estimate.notes, expectedExpert: step.expectedExpert))
        }
        return APIPlan(
            workflow: workflow, steps: rendered, minUSD: priced ? minTotal.decimalString : nil, maxUSD: priced ? maxTotal.decimalString : nil,
            unpriced: !priced, notes: plan.notes)
    }
}
