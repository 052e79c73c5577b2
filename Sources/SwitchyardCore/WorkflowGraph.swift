/// The step graph of a workflow, as the engine and the validator need it.
///
/// These helpers tolerate graphs that did not validate (unknown `needs` are
/// ignored and cycles do not loop forever), so that the validator can use them too.
extension WorkflowSpec {
    /// Step id → ids of the steps that need it, in document order.
    public var dependents: [String: [String]] {
        var result: [String: [String]] = [:]
        for step in steps {
            result[step.id, default: []] += []
            for need in step.needs where result[need, default: []].last != step.id {
                result[need, default: []].append(step.id)
            }
        }
        return result
    }

    /// Every step `id` depends on, directly or transitively through `needs`.
    /// The step itself is included only when it is part of a cycle.
    public func upstream(of id: String) -> Set<String> {
        var needsByID: [String: [String]] = [:]
        for step in steps where needsByID[step.id] == nil { needsByID[step.id] = step.needs }
        var seen = Set<String>()
        var stack = needsByID[id] ?? []
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            stack.append(contentsOf: needsByID[next] ?? [])
        }
        return seen
    }

    /// Step ids ordered so that every step comes after the steps it needs; ties keep
    /// document order. Steps on a cycle (which validation rejects) are left out.
    public func topologicalOrder() -> [String] {
        let ids = steps.map(\.id)
        let known = Set(ids)
        var remaining: [String: Int] = [:]
        for step in steps {
            remaining[step.id] =
                Set(step.needs.filter { known.contains($0) && $0 != step.id }).count
                + (step.needs.contains(step.id) ? 1 : 0)
        }
        let dependents = self.dependents
        var order: [String] = []
        var emitted = Set<String>()
        var ready = ids.filter { remaining[$0] == 0 }
        var position = [String: Int]()
        for (i, id) in ids.enumerated() where position[id] == nil { position[id] = i }
        while !ready.isEmpty {
            ready.sort { (position[$0] ?? 0) < (position[$1] ?? 0) }
            let id = ready.removeFirst()
            guard emitted.insert(id).inserted else { continue }
            order.append(id)
            for dependent in Set(dependents[id] ?? []) where dependent != id {
                remaining[dependent, default: 0] -= 1
                if remaining[dependent] == 0 { ready.append(dependent) }
            }
        }
        return order
    }
}

extension StepKind {
    /// Every template in this step kind (for a map, its `over` and its inner step's templates).
    public var templates: [Template] {
        switch self {
        case .model(let m): return [m.prompt] + [m.model, m.check, m.verify].compactMap { $0 }
        case .tool(let t): return ((try? Template.embedded(in: t.with)) ?? []).map(\.template)
        case .map(let m): return [m.over] + m.step.templates
        case .transform(let t): return [t]
        case .workflow(let w): return ((try? Template.embedded(in: w.with)) ?? []).map(\.template)
        case .waitFor: return []
        }
    }
}

extension StepSpec {
    /// Every template of the step: its `if:` condition and its kind's templates.
    public var templates: [Template] {
        (condition.map { [$0] } ?? []) + kind.templates
    }

    /// Ids of the steps whose outputs this step's templates read (`steps.<id>…`),
    /// including its condition, model, prompt, `with`, `over`, `transform` and a map's inner step.
    public var referencedSteps: Set<String> {
        templates.reduce(into: Set<String>()) { $0.formUnion($1.referencedSteps) }
    }
}
