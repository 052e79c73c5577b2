import Foundation
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering
import SwitchyardStore

/// Stored records as the API's wire types (see SwitchyardAPI).
enum Render {
    static func timestamp(_ date: Date?) -> String? {
        date?.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    static func id(_ uuid: UUID) -> String {
        uuid.lowercasedString
    }

    static func run(_ run: RunRecord, withSteps: Bool = true) -> APIRun {
        APIRun(
            id: id(run.id), workflow: run.workflow, version: run.version, status: run.status, input: run.input,
            output: run.output, error: run.error?.json, createdAt: timestamp(run.createdAt), startedAt: timestamp(run.startedAt),
            finishedAt: timestamp(run.finishedAt), steps: withSteps ? run.steps.map(step) : nil,
            usage: withSteps ? usage(run.usage) : nil)
    }

    static func usage(_ usage: UsageSummary) -> APIUsage {
        APIUsage(
            calls: usage.calls, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens,
            costUSD: usage.cost.decimalString, unpricedCalls: usage.unpricedCalls, estimatedCalls: usage.estimatedCalls)
    }

    static func step(_ step: StepRecord) -> APIStep {
        APIStep(
            id: step.id, status: step.status, attempts: step.attempts, expert: step.expert, output: step.output,
            error: step.error?.json, startedAt: timestamp(step.startedAt), finishedAt: timestamp(step.finishedAt), route: step.route,
            feedback: step.feedback, costUSD: step.cost?.decimalString)
    }

    static func event(_ event: RunEvent) -> APIRunEvent {
        APIRunEvent(seq: Int(event.seq), type: event.type, step: event.stepID, data: event.data, at: timestamp(event.createdAt))
    }

    static func workflowSummary(_ version: ResourceVersion) -> APIWorkflow {
        var workflow = APIWorkflow(name: version.name, version: version.version, createdAt: timestamp(version.createdAt), isWorkflow: false)
        if case .workflow(let spec) = version.resource {
            workflow.isWorkflow = true
            workflow.description = spec.description
            workflow.steps = spec.steps.count
            workflow.inputs = Dictionary(
                uniqueKeysWithValues: spec.inputs.map { input in
                    (input.name, APIWorkflowInput(type: input.type.rawValue, required: input.required, defaultValue: input.defaultValue))
                })
        }
        return workflow
    }

    static func tenantSettings(_ settings: TenantSettings) -> APITenantSettings {
        APITenantSettings(
            gateThreshold: settings.gateThreshold, egressAllow: settings.egressAllow, maxRunningSteps: settings.maxRunningSteps,
            runsPerSecond: settings.runsPerSecond, runBurst: settings.runBurst)
    }

    static func issue(_ issue: ValidationIssue) -> APIProblem {
        APIProblem(path: issue.path, message: issue.message, file: issue.file, line: issue.line, column: issue.column)
    }
}
