import Foundation
import SwitchyardCore
import SwitchyardExperts
import SwitchyardMetering
import SwitchyardStore
import SwitchyardTools

extension CostPlanner {
    // MARK: - Agents and tools

    /// The step's agent; nil when the step has none or it is not stored (the run would
    /// fail at once, at no cost).
    func agent(_ name: String?) async throws -> AgentSpec? {
        guard let name, let stored = try await resources.find(kind: .agent, name: name, tenant: tenant), case .agent(let spec) = stored.resource
        else {
            return nil
        }
        return spec
    }

    /// A tool as the model sees it (resolved as the runner resolves it) and the bytes
    /// one of its results may take. A tool that is missing or invalid still counts as a
    /// bare definition: the plan prices the step rather than refusing it.
    func tool(_ name: String) async throws -> (definition: FunctionDefinition, resultBytes: Int) {
        if let builtin = SwitchyardTools.ToolDefinition.builtin(named: name) {
            return (ResolvedTool(definition: builtin).modelDefinition, Self.builtinToolResultBytes)
        }
        let stored = try await resources.find(kind: .tool, name: name, tenant: tenant)
        guard case .tool(let spec)? = stored?.resource else {
            return (FunctionDefinition(name: name), Self.unknownOutputTokens)
        }
        let definition = (try? Toolbox.resolve(name, stored: stored))?.modelDefinition ?? FunctionDefinition(name: name)
        return (definition, spec.http?.maxResponseBytes ?? Self.storedToolResultBytes)
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
            low =
                low.map {
                    RateSet(
                        inputCacheHit: min($0.inputCacheHit, rates.inputCacheHit), inputCacheMiss: min($0.inputCacheMiss, rates.inputCacheMiss),
                        output: min($0.output, rates.output), period: .standard)
                } ?? rates
        }
        guard let low else { return nil }
        return (low, high, model)
    }

    /// Why an expert's calls cannot be priced, with what to do about it.
    func unpricedReasonFor(_ expert: String) -> String {
        guard let model = expertModels[expert]?.model else { return "unpriced: no model is known for expert \(expert)" }
        return "unpriced: \(expert) runs \(model), which has no price in the price book (yard prices set)"
    }

    // MARK: - Template text

    /// The template's text outside `{{ … }}`: what is known of a prompt that reads
    /// other steps' outputs before they exist.
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

    /// Quoted string literals in a template's source (`'pro'`, `"cascade"`): the
    /// choices a `model` that reads other steps may come to.
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
}
