/// The one place that refuses workflows this release cannot run: tool execution is
/// not available yet. Tools (and agents that list tools) can be applied and stored,
/// but a workflow with a `tool:` step — also inside a `map` — or with a model step
/// whose agent has tools is rejected at apply time rather than failing at run time.
///
/// When tool execution ships, set ``isToolExecutionAvailable`` to true (or delete
/// this file and its single call in ``CrossReferenceValidator``).
public enum ToolExecutionGate {
    public static let isToolExecutionAvailable = false

    static let suffix = "(tools can be applied and stored, but workflows cannot call them)"

    static func issues(for workflow: WorkflowSpec, in document: ResourceDocument, agents: [String: AgentSpec]) -> [ValidationIssue] {
        guard !isToolExecutionAvailable else { return [] }
        var found: [ValidationIssue] = []
        func visit(_ kind: StepKind, stepID: String, path: String) {
            switch kind {
            case .tool(let t):
                let p = "\(path).tool"
                found.append(ValidationIssue(
                    document.location(of: p), path: p,
                    message: "tool execution is not available yet: step '\(stepID)' calls tool '\(t.tool)' \(suffix)"))
            case .model(let m):
                if let name = m.agent, let agent = agents[name], !agent.tools.isEmpty {
                    let p = "\(path).agent"
                    found.append(ValidationIssue(
                        document.location(of: p), path: p,
                        message: "tool execution is not available yet: step '\(stepID)' uses agent '\(name)', which has tools \(agent.tools.joined(separator: ", ")) \(suffix)"))
                }
            case .map(let m):
                visit(m.step, stepID: stepID, path: "\(path).map.step")
            case .transform, .workflow, .waitFor:
                break
            }
        }
        for (i, step) in workflow.steps.enumerated() { visit(step.kind, stepID: step.id, path: "steps[\(i)]") }
        return found
    }
}
