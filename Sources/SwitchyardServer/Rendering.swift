import SwitchyardMetering
import Foundation
import SwitchyardCore
import SwitchyardStore

/// The API's JSON shapes of stored records.
enum Render {
    static func timestamp(_ date: Date?) -> JSONValue {
        guard let date else { return .null }
        return .string(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)))
    }

    static func id(_ uuid: UUID) -> JSONValue {
        .string(uuid.uuidString.lowercased())
    }

    static func error(_ error: ErrorRecord?) -> JSONValue {
        error?.json ?? .null
    }

    static func run(_ run: RunRecord, withSteps: Bool = true) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": id(run.id),
            "workflow": .string(run.workflow),
            "version": .int(run.version),
            "status": .string(run.status.rawValue),
            "input": run.input,
            "output": run.output ?? .null,
            "error": error(run.error),
            "created_at": timestamp(run.createdAt),
            "started_at": timestamp(run.startedAt),
            "finished_at": timestamp(run.finishedAt),
        ]
        if withSteps {
            object["steps"] = .array(run.steps.map(step))
            object["usage"] = [
                "calls": .int(run.usage.calls), "prompt_tokens": .int(run.usage.promptTokens),
                "completion_tokens": .int(run.usage.completionTokens), "cost_usd": .string(run.usage.cost.decimalString),
                "unpriced_calls": .int(run.usage.unpricedCalls), "estimated_calls": .int(run.usage.estimatedCalls),
            ]
        }
        return .object(object)
    }

    static func step(_ step: StepRecord) -> JSONValue {
        [
            "id": .string(step.id),
            "status": .string(step.status.rawValue),
            "attempts": .int(step.attempts),
            "expert": step.expert.map { .string($0) } ?? .null,
            "output": step.output ?? .null,
            "error": error(step.error),
            "started_at": timestamp(step.startedAt),
            "finished_at": timestamp(step.finishedAt),
            "route": step.route ?? .null,
            "feedback": step.feedback.map(JSONValue.bool) ?? .null,
            "cost_usd": step.cost.map { .string($0.decimalString) } ?? .null,
        ]
    }

    static func event(_ event: RunEvent) -> JSONValue {
        [
            "seq": .int(Int(event.seq)),
            "type": .string(event.type),
            "step": event.stepID.map { .string($0) } ?? .null,
            "data": event.data,
            "at": timestamp(event.createdAt),
        ]
    }

    static func workflowSummary(_ version: ResourceVersion) -> JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(version.name),
            "version": .int(version.version),
            "created_at": timestamp(version.createdAt),
        ]
        if case .workflow(let spec) = version.resource {
            object["description"] = spec.description.map { .string($0) } ?? .null
            object["steps"] = .int(spec.steps.count)
            object["inputs"] = .object(Dictionary(uniqueKeysWithValues: spec.inputs.map { input in
                var field: [String: JSONValue] = ["type": .string(input.type.rawValue), "required": .bool(input.required)]
                if let value = input.defaultValue { field["default"] = value }
                return (input.name, .object(field))
            }))
        }
        return .object(object)
    }
}
