/// Checks references between documents of one batch and to the tenant's stored
/// resources: step agents, step tools, agent tools and child workflows must exist.
struct CrossReferenceValidator {
    let documents: [ResourceDocument]
    let catalog: ResourceCatalog
    let issues: IssueCollector

    /// Catalog entries overridden by the batch (the batch wins for the same name).
    var agents: [String: AgentSpec] {
        var result = catalog.agents
        for d in documents { if case .agent(let a) = d.resource { result[a.name] = a } }
        return result
    }

    var tools: Set<String> {
        var result = Set(catalog.tools.keys).union(BuiltinTools.names)
        for d in documents { if case .tool(let t) = d.resource { result.insert(t.name) } }
        return result
    }

    var workflows: Set<String> {
        var result = catalog.workflows
        for d in documents { if case .workflow(let w) = d.resource { result.insert(w.name) } }
        return result
    }

    func run() {
        let agents = self.agents
        let tools = self.tools
        let workflows = self.workflows

        var seen: [String: ResourceDocument] = [:]
        for document in documents {
            let key = "\(document.kind.rawValue)/\(document.name)"
            if let first = seen[key] {
                let at = first.location(of: "name")
                issues.add(
                    document.location(of: "name"), path: "name",
                    "duplicate \(document.kind.rawValue) '\(document.name)': already defined at \(at)")
            } else {
                seen[key] = document
            }
        }

        for document in documents {
            switch document.resource {
            case .agent(let agent):
                for (i, tool) in agent.tools.enumerated() where !tools.contains(tool) {
                    let path = "tools[\(i)]"
                    issues.add(
                        document.location(of: path), path: path, "unknown tool '\(tool)'; apply a Tool named '\(tool)' first or in the same batch")
                }
            case .workflow(let workflow):
                for (i, step) in workflow.steps.enumerated() {
                    check(step.kind, path: "steps[\(i)]", in: document, workflow: workflow, agents: agents, tools: tools, workflows: workflows)
                }
            case .tool(let tool):
                if BuiltinTools.names.contains(tool.name) {
                    issues.add(document.location(of: "name"), path: "name", "'\(tool.name)' is the name of a built-in tool; choose another name")
                }
            }
        }
    }

    private func check(
        _ kind: StepKind, path: String, in document: ResourceDocument, workflow: WorkflowSpec,
        agents: [String: AgentSpec], tools: Set<String>, workflows: Set<String>
    ) {
        switch kind {
        case .model(let m):
            if let agent = m.agent, agents[agent] == nil {
                let p = "\(path).agent"
                issues.add(document.location(of: p), path: p, "unknown agent '\(agent)'; apply an Agent named '\(agent)' first or in the same batch")
            }
        case .tool(let t):
            if !tools.contains(t.tool) {
                let p = "\(path).tool"
                issues.add(document.location(of: p), path: p, "unknown tool '\(t.tool)'; apply a Tool named '\(t.tool)' first or in the same batch")
            }
        case .map(let m):
            check(m.step, path: "\(path).map.step", in: document, workflow: workflow, agents: agents, tools: tools, workflows: workflows)
        case .workflow(let w):
            let p = "\(path).workflow"
            if w.workflow == workflow.name {
                issues.add(document.location(of: p), path: p, "a workflow cannot start itself as a child workflow")
            } else if !workflows.contains(w.workflow) {
                issues.add(document.location(of: p), path: p, "unknown workflow '\(w.workflow)'; apply it first or in the same batch")
            }
        case .transform, .waitFor:
            break
        }
    }
}
