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
            return JSONBody.response(try Self.render(workflow: name, plan: try await planner.plan(spec, input: input)))
        }
    }

    /// The plan as the API answers it: each listed step's range and notes, and the
    /// totals (null when any listed step is unpriced).
    static func render(workflow: String, plan: WorkflowPlan) throws -> JSONValue {
        var minTotal = Money.zero
        var maxTotal = Money.zero
        var priced = true
        var rendered: [JSONValue] = []
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
            var object: [String: JSONValue] = [
                "step": .string(step.step),
                "experts": .array(estimate.experts.map(JSONValue.string)),
                "calls": ["min": .int(estimate.minCalls), "max": .int(estimate.maxCalls)],
                "min_usd": stepPriced ? .string(estimate.minCost.decimalString) : .null,
                "max_usd": stepPriced ? .string(estimate.maxCost.decimalString) : .null,
                "unpriced": .bool(!stepPriced),
                "notes": .array((estimate.unpriced + estimate.notes).map(JSONValue.string)),
            ]
            if let expected = step.expectedExpert { object["expected_expert"] = .string(expected) }
            rendered.append(.object(object))
        }
        return [
            "workflow": .string(workflow),
            "steps": .array(rendered),
            "min_usd": priced ? .string(minTotal.decimalString) : .null,
            "max_usd": priced ? .string(maxTotal.decimalString) : .null,
            "unpriced": .bool(!priced),
            "notes": .array(plan.notes.map(JSONValue.string)),
        ]
    }
}
