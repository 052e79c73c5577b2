import Foundation
import Logging
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardStore

/// Runs model steps through the MoE runtime: the gate picks the expert, the agent
/// loop calls tools, cascade checks flash's answer and escalates to pro, and every
/// outcome the gate can learn from is recorded for the step.
struct ModelStepRunner: Sendable {
    let experts: ExpertPool
    let resources: ResourceRepository
    let queue: StepQueue
    let gate: Gate
    let history: GateRepository
    let tenants: TenantRepository
    let toolbox: Toolbox
    let deltas: DeltaHub
    let metering: CallMetering
    let defaultThreshold: Double
    let logger: Logger
    var telemetry: EngineTelemetry = .disabled

    /// A model's final answer, before the step's checks.
    private struct Answer {
        var text: String
        var value: JSONValue
        /// Tool calls the model got wrong (unknown tool, arguments that are not valid).
        var toolProblems: [String]
    }

    /// Why an answer does not pass: the code the step fails with, and the problems.
    private struct Rejection: Error {
        var code: StepErrorCode
        var problems: [String]
        var message: String { problems.prefix(5).joined(separator: "; ") }
    }

    func run(_ step: ModelStepSpec, scope: TemplateScope, context: CallContext) async throws(StepFailure) -> (JSONValue, String?) {
        let promptValue = try evaluate(step.prompt, scope, field: "prompt")
        let prompt = promptValue.stringValue ?? promptValue.compactJSON
        let agent = try await loadAgent(step.agent, tenant: context.claim.tenantID)
        let tools = try await toolbox.resolve(agent?.tools ?? [], tenant: context.claim.tenantID)
        let requested = try step.model.map { template throws(StepFailure) in try evaluate(template, scope, field: "model") }?.stringValue
        let choice = RoutingPolicy.choice(requested: requested, agent: agent)
        let stepKey = GateRepository.stepKey(workflow: context.claim.workflow, step: context.claim.stepID)
        let requests = ModelStepRequest(
            step: step, agent: agent, tools: tools.map(\.modelDefinition), tenant: context.claim.tenantID, defaultMaxTokens: metering.defaultMaxTokens
        )

        var decision: RouteDecision
        switch RoutingPolicy(choice: choice) {
        case .auto:
            let (learned, threshold) = try await gateInputs(tenant: context.claim.tenantID, stepKey: stepKey)
            let lean = await metering.lean(tenant: context.claim.tenantID, proModel: experts.experts[ExpertTier.pro.rawValue]?.model)
            decision = gate.decide(requests.gateRequest(prompt: prompt, stepKey: stepKey), history: learned, threshold: threshold, lean: lean)
        case .cascade:
            decision = RouteDecision(
                policy: .cascade, expert: ExpertTier.flash.rawValue,
                reasons: ["cascade: flash answers first; pro answers if flash's answer fails its checks"])
        case .fixed(let name):
            decision = Gate.fixed(name)
        }
        await record(decision, context: context)

        let first: CheckedAnswer
        do {
            first = try await answerChecked(decision.expert, requests, prompt: prompt, tools: tools, scope: scope, context: context, choice: choice)
        } catch let failure
            where failure.error.has(.budgetExceeded) && decision.expert == ExpertTier.pro.rawValue
            && (step.onBudget ?? failure.budgetPolicy) == .downgrade
        {
            // The budget cannot take pro's worst case: the gate sends the step to flash.
            decision.expert = ExpertTier.flash.rawValue
            decision.reasons.append("budget: pro's worst case does not fit the remaining budget; downgraded to flash (on_budget: downgrade)")
            await record(decision, context: context)
            first = try await answerChecked(decision.expert, requests, prompt: prompt, tools: tools, scope: scope, context: context, choice: choice)
        }
        guard case .failure(let rejection) = first.outcome else {
            await learn(decision.expert, succeeded: true, stepKey: stepKey, context: context)
            return (first.value, decision.expert)
        }
        await learn(decision.expert, succeeded: false, stepKey: stepKey, context: context)
        guard decision.policy == .cascade else { throw StepFailure(rejection.code, rejection.message, retryable: true) }

        decision = Gate.cascade(escalated: true, reason: "\(rejection.code): \(rejection.message)")
        await record(decision, context: context)
        let second = try await answerChecked(decision.expert, requests, prompt: prompt, tools: tools, scope: scope, context: context, choice: choice)
        switch second.outcome {
        case .success:
            await learn(decision.expert, succeeded: true, stepKey: stepKey, context: context)
            return (second.value, decision.expert)
        case .failure(let rejection):
            await learn(decision.expert, succeeded: false, stepKey: stepKey, context: context)
            throw StepFailure(rejection.code, "pro's answer failed too: \(rejection.message)", retryable: true)
        }
    }

    // MARK: - Routing and learning

    private func gateInputs(tenant: UUID, stepKey: String) async throws(StepFailure) -> (StepHistory, Double) {
        do {
            let learned = try await history.history(tenant: tenant, stepKey: stepKey)
            let threshold = try await tenants.settings(tenant: tenant)?.gateThreshold ?? defaultThreshold
            return (learned, threshold)
        } catch {
            throw StepFailure.database(error)
        }
    }

    /// Stores the decision on the step (the API and `yard runs show` read it there) and
    /// appends `model.routed`. A lost write is logged, not fatal: the call still runs.
    private func record(_ decision: RouteDecision, context: CallContext) async {
        let route = decision.json
        // A map's items routed alike write once: each write takes the step's row lock.
        guard context.noteRoute(route, expert: decision.expert) else { return }
        do {
            try await queue.recordRoute(context.claim, route: route, event: NewEvent(.modelRouted, step: context.claim.stepID, data: route))
        } catch {
            logger.error("could not record a route", metadata: ["run": "\(context.claim.runID)", "error": "\(Database.describe(error))"])
        }
    }

    private func learn(_ expert: String, succeeded: Bool, stepKey: String, context: CallContext) async {
        guard let tier = ExpertTier(rawValue: expert) else { return }
        do {
            try await history.record(tenant: context.claim.tenantID, stepKey: stepKey, expert: tier, succeeded: succeeded)
        } catch {
            logger.error("could not record a gate outcome", metadata: ["step": "\(stepKey)", "error": "\(Database.describe(error))"])
        }
    }

    // MARK: - Answers

    private struct CheckedAnswer {
        var value: JSONValue
        var outcome: Result<Void, Rejection>
    }

    /// One expert's answer with the step's checks applied: output schema, tool-call
    /// validity, `check` and `verify`. Provider errors throw (they say nothing about the
    /// expert's quality); a failed check is an outcome.
    private func answerChecked(
        _ expertName: String, _ requests: ModelStepRequest, prompt: String, tools: [ResolvedTool], scope: TemplateScope,
        context: CallContext, choice: String
    ) async throws(StepFailure) -> CheckedAnswer {
        let step = requests.step
        let answer: Answer
        do {
            answer = try await self.answer(expertName, requests, prompt: prompt, tools: tools, context: context, choice: choice)
        } catch let failure where failure.error.has(.maxTurns) {
            return CheckedAnswer(value: .null, outcome: .failure(Rejection(code: .maxTurns, problems: [failure.error.message])))
        }
        if !answer.toolProblems.isEmpty, RoutingPolicy(choice: choice) == .cascade {
            return CheckedAnswer(value: answer.value, outcome: .failure(Rejection(code: .invalidToolCalls, problems: answer.toolProblems)))
        }
        var value = answer.value
        if let schema = step.output {
            guard let parsed = Self.parseJSONAnswer(answer.text) else {
                return CheckedAnswer(
                    value: .null, outcome: .failure(Rejection(code: .outputInvalid, problems: ["the answer is not JSON: \(answer.text.prefix(200))"]))
                )
            }
            do {
                let problems = try JSONSchema(schema).validate(parsed)
                if !problems.isEmpty {
                    return CheckedAnswer(
                        value: parsed,
                        outcome: .failure(Rejection(code: .outputInvalid, problems: ["the answer does not match the output schema"] + problems)))
                }
            } catch {
                throw StepFailure(.outputInvalid, "the output schema is invalid: \(error)", retryable: false)
            }
            value = parsed
        }
        var checkScope = scope
        checkScope.variables["output"] = value
        if let check = step.check, !(try evaluate(check, checkScope, field: "check").isTruthy) {
            return CheckedAnswer(
                value: value, outcome: .failure(Rejection(code: .checkFailed, problems: ["check `\(check.source)` is false for the answer"])))
        }
        if let verify = step.verify {
            let question = try evaluate(verify, checkScope, field: "verify")
            if let doubt = try await self.verify(question.stringValue ?? question.compactJSON, context: context) {
                return CheckedAnswer(value: value, outcome: .failure(Rejection(code: .checkFailed, problems: ["the verifier said no: \(doubt)"])))
            }
        }
        return CheckedAnswer(value: value, outcome: .success(()))
    }

    /// Asks flash the step's `verify` question; nil when it says yes, else its answer.
    private func verify(_ question: String, context: CallContext) async throws(StepFailure) -> String? {
        let expert = try self.expert(named: ExpertTier.flash.rawValue)
        let request = ModelStepRequest.verification(question, tenant: context.claim.tenantID)
        let response = try await call(expert, request, context: context, choice: "verify")
        let verdict = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
        let firstWord = verdict.prefix { $0.isLetter }.lowercased()
        return firstWord == "yes" ? nil : String(verdict.prefix(200))
    }

    /// The conversation with one expert: a single call, or for an agent with tools the
    /// loop model → tool calls → results → … → final answer, at most `max_turns` calls.
    private func answer(
        _ expertName: String, _ requests: ModelStepRequest, prompt: String, tools: [ResolvedTool], context: CallContext, choice: String
    ) async throws(StepFailure) -> Answer {
        let expert = try self.expert(named: expertName)
        var messages = requests.openingMessages(prompt: prompt)
        let turns = requests.maxTurns
        var toolProblems: [String] = []
        for turn in 1...turns {
            let response = try await call(expert, requests.request(messages), context: context, choice: choice)
            guard !response.toolCalls.isEmpty else {
                return Answer(text: response.text, value: .string(response.text), toolProblems: toolProblems)
            }
            messages.append(response.assistantMessage)
            for toolCall in response.toolCalls {
                let result = await toolbox.invoke(toolCall, available: tools, turn: turn, context: context)
                if let problem = result.modelProblem { toolProblems.append(problem) }
                messages.append(.toolResult(callID: toolCall.id, result.content))
            }
        }
        let name = requests.agent?.name ?? "the agent"
        throw StepFailure(.maxTurns, "\(name) was still calling tools after max_turns (\(turns)) model calls", retryable: false)
    }

    // MARK: - Calls

    private func expert(named name: String) throws(StepFailure) -> any Expert {
        do {
            return try experts.expert(named: name)
        } catch {
            throw StepFailure(.unknownExpert, error.message, retryable: false)
        }
    }

    private func loadAgent(_ name: String?, tenant: UUID) async throws(StepFailure) -> AgentSpec? {
        guard let name else { return nil }
        do {
            guard let stored = try await resources.find(kind: .agent, name: name, tenant: tenant), case .agent(let spec) = stored.resource else {
                throw StepFailure(.agentMissing, "agent \(name) does not exist", retryable: false)
            }
            return spec
        } catch let failure as StepFailure {
            throw failure
        } catch {
            throw StepFailure.database(error)
        }
    }

    private func evaluate(_ template: Template, _ scope: TemplateScope, field: String) throws(StepFailure) -> JSONValue {
        do {
            return try template.evaluate(scope)
        } catch {
            throw StepFailure(.templateError, "\(field): \(error.message)", retryable: false)
        }
    }

    /// Calls an expert under the tenant's budget: reserves the call's worst case first
    /// (refused: nothing is sent), then settles the ledger row to the real cost, and
    /// appends a `model.called` event, whether the call succeeded or not. Text streams
    /// to `model.delta` watchers while it arrives.
    private func call(_ expert: any Expert, _ request: ModelRequest, context: CallContext, choice: String) async throws(StepFailure) -> ModelResponse
    {
        let index = context.nextCallIndex()
        let claim = context.claim
        let startedAt = Date()
        var request = request
        // A true bound needs a completion cap: the step's, else the engine's default.
        request.maxTokens = request.maxTokens ?? metering.defaultMaxTokens
        let reservation = try await metering.reserve(
            expert: expert, request: request, claim: claim, callIndex: index, startedAt: startedAt)
        context.noteSideEffect()

        let clock = ContinuousClock()
        let start = clock.now
        let span = telemetry.startModelCall(expert: expert.name, model: expert.model, claim: claim, index: index)
        let result: Result<ModelResponse, ExpertError> = await span.propagating {
            await deltas.relaying(
                run: claim.runID, tenant: claim.tenantID, step: claim.stepID, call: index, expert: expert.name
            ) { onDelta -> Result<ModelResponse, ExpertError> in
                var request = request
                if onDelta != nil { request.stream = true }
                do throws(ExpertError) {
                    return .success(try await expert.complete(request, onDelta: onDelta))
                } catch {
                    return .failure(error)
                }
            }
        }
        let elapsed = clock.now - start
        let latency = Int(elapsed.inMilliseconds)
        let record = metering.ledgerRow(
            for: result, expert: expert, reservation: reservation, claim: claim, callIndex: index, startedAt: startedAt, latency: latency)
        telemetry.finishModelCall(span, record: record)
        var event: [String: JSONValue] = [
            "expert": .string(expert.name), "model": .string(record.model), "requested": .string(choice), "call": .int(index),
            "prompt_tokens": .int(record.promptTokens), "completion_tokens": .int(record.completionTokens), "latency_ms": .int(latency),
            "cost_usd": record.cost.map { .string($0.decimalString) } ?? .null,
        ]
        if !record.usageKnown { event["usage_known"] = false }
        if case .success(let response) = result, !response.toolCalls.isEmpty {
            event["tool_calls"] = .array(response.toolCalls.map { .string($0.name) })
        }
        if let error = record.error { event["error"] = .string(error) }
        // Settled even when the run was cancelled mid-call: the provider may have billed it.
        await metering.settle(record, event: NewEvent(.modelCalled, step: claim.stepID, data: .object(event)))
        if Task.isCancelled, case .failure = result {
            throw StepFailure(.cancelled, "the call was cancelled", retryable: false)
        }
        switch result {
        case .success(let response):
            return response
        case .failure(let error):
            // A step retry repeats the call: only where the same request may succeed
            // (a refused key or a malformed request fails the same way every time).
            throw StepFailure(.modelError, "\(expert.name): \(error.message)", retryable: error.isRetryable)
        }
    }

    /// Parses a model's JSON answer, tolerating a Markdown code fence around it.
    static func parseJSONAnswer(_ text: String) -> JSONValue? {
        var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if body.hasPrefix("```") {
            body = String(body.drop(while: { $0 != "\n" }).dropFirst())
            if body.hasSuffix("```") { body = String(body.dropLast(3)) }
        }
        return try? JSONDecoder().decode(JSONValue.self, from: Data(body.utf8))
    }
}

extension RouteDecision {
    /// The API form stored on the step: `{"policy", "expert", "score", "threshold", "reasons", "escalated"}`.
    var json: JSONValue {
        [
            "policy": .string(policy.rawValue), "expert": .string(expert), "score": score.map(JSONValue.double) ?? .null,
            "threshold": threshold.map(JSONValue.double) ?? .null, "reasons": .array(reasons.map(JSONValue.string)), "escalated": .bool(escalated),
        ]
    }
}
