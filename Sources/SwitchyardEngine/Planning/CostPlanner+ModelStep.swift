import Foundation
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardStore

extension CostPlanner {
    /// One item of a model step as priced.
    struct PricedItem {
        var estimate: CostEstimate
        /// The expert the gate expects, when the step is routed `auto` and nothing else.
        var expected: String?
        /// The first request of every answer, as the runner would build it.
        var request: ModelRequest
    }

    /// The prompt as far as the plan can know it.
    struct PromptEstimate {
        /// Rendered when the prompt reads only the input; else its literal text.
        var text: String
        /// The bound of what the prompt reads that the plan cannot render.
        var extraTokens: Int
        var note: String?
    }

    /// What bounds the calls of one answer (one expert's conversation).
    struct CallShape {
        var request: ModelRequest
        var turns: Int
        var maxTokens: Int
        var firstPromptBound: Int
        /// What each later turn adds: the earlier answer and the tool results.
        var turnGrowth: Int
        var lowPromptGuess: Int
        var past: [String: PastUsage]
    }

    /// One item of a model step: its routing, its conversation(s), its checks.
    func item(
        _ model: ModelStepSpec, step: String, workflow: String, scope: TemplateScope, past: [String: PastUsage],
        outputBounds: [String: Int], itemUnknown: String? = nil
    ) async throws -> PricedItem {
        var notes: [String] = []
        let prompt = promptEstimate(model.prompt, scope: scope, outputBounds: outputBounds, itemUnknown: itemUnknown)
        if let note = prompt.note { notes.append(note) }

        // The agent, its instructions and tools, and the request, as the runner builds them.
        let agent = try await self.agent(model.agent)
        var definitions: [FunctionDefinition] = []
        var toolResultBytes = 0
        for name in agent?.tools ?? [] {
            let tool = try await self.tool(name)
            definitions.append(tool.definition)
            toolResultBytes += tool.resultBytes
        }
        let requests = ModelStepRequest(step: model, agent: agent, tools: definitions, tenant: tenant, defaultMaxTokens: defaultMaxTokens)
        let request = requests.firstRequest(prompt: prompt.text)
        let shape = CallShape(
            request: request, turns: requests.maxTurns, maxTokens: requests.maxTokens,
            // " Answer in json." may be appended for JSON mode: a small margin covers it.
            firstPromptBound: request.promptByteBound + prompt.extraTokens + 32,
            // Each later turn carries the earlier answer (≤ max_tokens) and the tool results.
            turnGrowth: requests.maxTokens + toolResultBytes + 64 * (definitions.count + 1),
            lowPromptGuess: prompt.text.utf8.count / 8, past: past)
        if shape.turns > 1 {
            notes.append("agent: 1 to \(shape.turns) model calls per answer (max_turns); later turns include earlier answers and tool results")
        }

        let choices = routeChoices(model, agent: agent, scope: scope, notes: &notes)
        var expected: String?
        var combined: CostEstimate?
        for choice in choices {
            var estimate: CostEstimate
            switch RoutingPolicy(choice: choice) {
            case .auto:
                let gateRequest = requests.gateRequest(prompt: prompt.text, stepKey: GateRepository.stepKey(workflow: workflow, step: step))
                let decision = gate.decide(
                    gateRequest, history: try await gateHistory.history(tenant: tenant, stepKey: gateRequest.stepKey), threshold: threshold)
                if choices.count == 1 { expected = decision.expert }
                estimate = try auto(decision, model, shape: shape, outputBounds: outputBounds)
            case .cascade:
                estimate = try cascade(model, shape: shape, outputBounds: outputBounds)
            case .fixed(let name):
                estimate = try answer(name, shape: shape)
                try estimate.add(verification(model, maxTokens: shape.maxTokens, outputBounds: outputBounds).optional)
            }
            combined = combined.map { CostEstimate.either($0, estimate) } ?? estimate
        }
        var result = combined ?? CostEstimate()
        for note in notes where !result.notes.contains(note) { result.notes.insert(note, at: 0) }
        return PricedItem(estimate: result, expected: expected, request: request)
    }

    /// The prompt: rendered when it reads only the input; else its literal text plus the
    /// bound of what it reads.
    func promptEstimate(_ prompt: Template, scope: TemplateScope, outputBounds: [String: Int], itemUnknown: String?) -> PromptEstimate {
        let reads = prompt.referencedSteps
        let readsUnknownItem = itemUnknown.map { prompt.referencedRoots.contains($0) } ?? false
        if reads.isEmpty, !readsUnknownItem, let value = try? prompt.evaluate(scope) {
            return PromptEstimate(text: value.stringValue ?? value.compactJSON, extraTokens: 0)
        }
        var extraTokens = 0
        for read in reads.sorted() {
            extraTokens += outputBounds[read] ?? Self.unknownOutputTokens
        }
        if readsUnknownItem { extraTokens += Self.unknownOutputTokens }
        let what = reads.sorted().map { "steps.\($0)" }.joined(separator: ", ") + (readsUnknownItem ? " and an unknown map item" : "")
        return PromptEstimate(
            text: Self.literalText(prompt), extraTokens: extraTokens,
            note: "the prompt reads \(what): estimated from its literal text, bounded by what it reads")
    }

    /// The choices the step's `model` may come to (see ``RoutingPolicy/choice(requested:agent:)``):
    /// one when it reads only the input; when it reads other steps, the experts and
    /// policies its text names (all of flash, pro and cascade when it names none).
    func routeChoices(_ model: ModelStepSpec, agent: AgentSpec?, scope: TemplateScope, notes: inout [String]) -> [String] {
        guard let template = model.model else { return [RoutingPolicy.choice(requested: nil, agent: agent)] }
        if template.referencedSteps.isEmpty, let value = try? template.evaluate(scope).stringValue {
            return [value]
        }
        let known = Set(expertModels.keys).union(RoutingPolicy.keywords)
        var choices = Self.stringLiterals(template.source).filter { known.contains($0) }
        if choices.isEmpty { choices = [ExpertTier.flash.rawValue, ExpertTier.pro.rawValue, RoutingMode.cascade.rawValue] }
        notes.append("model `\(template.source)` reads other steps: the range covers \(choices.joined(separator: ", "))")
        return choices
    }

    /// `auto`: the gate calls one of the policy's experts; the range allows either.
    private func auto(_ decision: RouteDecision, _ model: ModelStepSpec, shape: CallShape, outputBounds: [String: Int]) throws -> CostEstimate {
        let experts = RoutingPolicy.auto.experts
        var answers = try experts.map { try answer($0, shape: shape) }
        // The expected expert's answer first: its notes and name lead the step's.
        if let expected = experts.firstIndex(of: decision.expert) { answers.insert(answers.remove(at: expected), at: 0) }
        var estimate = answers.dropFirst().reduce(answers.first ?? CostEstimate()) { CostEstimate.either($0, $1) }
        try estimate.add(verification(model, maxTokens: shape.maxTokens, outputBounds: outputBounds).optional)
        let score = decision.score.map { String(format: "%.2f", $0) } ?? "?"
        estimate.notes.append(
            "auto: the gate expects \(decision.expert) (score \(score), threshold \(String(format: "%.2f", threshold))); the range allows either expert"
        )
        return estimate
    }

    /// `cascade`: the first expert always; each later one too when the earlier answer
    /// fails its checks (max counts them all).
    private func cascade(_ model: ModelStepSpec, shape: CallShape, outputBounds: [String: Int]) throws -> CostEstimate {
        let verification = try self.verification(model, maxTokens: shape.maxTokens, outputBounds: outputBounds).optional
        var estimate = CostEstimate()
        for (index, expert) in RoutingPolicy.cascade.experts.enumerated() {
            var attempt = try answer(expert, shape: shape)
            try attempt.add(verification)
            try estimate.add(index == 0 ? attempt : attempt.optional)
        }
        estimate.notes.append("cascade: flash always; pro too when flash's answer fails its checks (max counts both)")
        return estimate
    }

    /// One expert's answer: one to `turns` calls, each billed as many times as the
    /// expert may ask again (``Expert/billedAttempts(for:)``).
    func answer(_ expert: String, shape: CallShape) throws -> CostEstimate {
        var estimate = CostEstimate(experts: [expert])
        estimate.minCalls = 1
        estimate.maxCalls = shape.turns
        guard let (low, high, _) = rates(expert) else {
            estimate.unpriced.append(unpricedReasonFor(expert))
            return estimate
        }
        let history = shape.past[expert]
        let lowPrompt = min(shape.lowPromptGuess, history?.minPrompt ?? Int.max)
        let lowCompletion = history?.minCompletion ?? 0
        estimate.minCost = try min(low.inputCacheHit, low.inputCacheMiss).cost(ofTokens: lowPrompt).adding(low.output.cost(ofTokens: lowCompletion))
        let inputRate = max(high.inputCacheMiss, high.inputCacheHit)
        var maxCost = Money.zero
        for turn in 0..<shape.turns {
            let prompt = max(shape.firstPromptBound + turn * shape.turnGrowth, history?.maxPrompt ?? 0)
            let completion = max(shape.maxTokens, history?.maxCompletion ?? 0)
            maxCost = try maxCost.adding(inputRate.cost(ofTokens: prompt)).adding(high.output.cost(ofTokens: completion))
        }
        // An expert this server does not run is assumed to answer once per call.
        let billed = experts.experts[expert]?.billedAttempts(for: shape.request) ?? 1
        if billed > 1 {
            maxCost = try maxCost.multiplied(by: billed)
            estimate.notes.append(
                shape.request.wantsJSON
                    ? "JSON mode: max counts \(billed) billed answers per call (blank answers are asked again)"
                    : "max counts \(billed) billed answers per call")
        }
        estimate.maxCost = maxCost
        if let history {
            estimate.notes.append(
                "\(expert): past average \(history.averagePrompt) prompt + \(history.averageCompletion) completion tokens over \(history.calls) call\(history.calls == 1 ? "" : "s")"
            )
        }
        return estimate
    }

    /// `verify`: flash answers a yes/no question about each answer.
    func verification(_ model: ModelStepSpec, maxTokens: Int, outputBounds: [String: Int]) throws -> CostEstimate {
        guard let verify = model.verify else { return CostEstimate() }
        let flash = ExpertTier.flash.rawValue
        var estimate = CostEstimate(experts: [flash])
        estimate.maxCalls = 1
        guard let (_, high, _) = rates(flash) else {
            estimate.unpriced.append(unpricedReasonFor(flash))
            return estimate
        }
        let bytes =
            256 + Self.literalBytes(verify) + maxTokens
            + verify.referencedSteps.reduce(0) { $0 + (outputBounds[$1] ?? Self.unknownOutputTokens) }
        estimate.maxCost = try max(high.inputCacheMiss, high.inputCacheHit).cost(ofTokens: bytes)
            .adding(high.output.cost(ofTokens: ModelStepRequest.verificationMaxTokens))
        estimate.notes.append("verify: up to one flash call per answer")
        return estimate
    }
}
