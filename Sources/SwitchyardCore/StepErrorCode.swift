/// The stable code of a failed step's or run's error (`error.code` in the API and in
/// `step.failed` / `run.failed` events). Clients branch on these, so they never change.
///
/// A struct of constants rather than an enum: a step's error may also carry a code
/// from a tool (`ToolError.Code`) or an expert (`ExpertError.Code`), passed through as
/// they are (`init(rawValue:)`).
public struct StepErrorCode: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    // The step's definition and its data.
    public static let templateError = StepErrorCode(rawValue: "template_error")
    public static let invalidInput = StepErrorCode(rawValue: "invalid_input")
    public static let outputInvalid = StepErrorCode(rawValue: "output_invalid")
    public static let outputError = StepErrorCode(rawValue: "output_error")
    public static let checkFailed = StepErrorCode(rawValue: "check_failed")
    public static let notSupported = StepErrorCode(rawValue: "not_supported")
    public static let fanOutLimit = StepErrorCode(rawValue: "fan_out_limit")
    public static let stepMissing = StepErrorCode(rawValue: "step_missing")
    public static let workflowMissing = StepErrorCode(rawValue: "workflow_missing")
    public static let agentMissing = StepErrorCode(rawValue: "agent_missing")
    public static let toolMissing = StepErrorCode(rawValue: "tool_missing")
    public static let unknownExpert = StepErrorCode(rawValue: "unknown_expert")

    // Model calls.
    public static let modelError = StepErrorCode(rawValue: "model_error")
    public static let maxTurns = StepErrorCode(rawValue: "max_turns")
    public static let invalidToolCalls = StepErrorCode(rawValue: "invalid_tool_calls")
    public static let budgetExceeded = StepErrorCode(rawValue: "budget_exceeded")
    public static let meteringError = StepErrorCode(rawValue: "metering_error")

    // Time, waiting and children.
    public static let timeout = StepErrorCode(rawValue: "timeout")
    public static let waitTimeout = StepErrorCode(rawValue: "wait_timeout")
    public static let childFailed = StepErrorCode(rawValue: "child_failed")
    public static let childTimeout = StepErrorCode(rawValue: "child_timeout")
    public static let cancelled = StepErrorCode(rawValue: "cancelled")

    // The engine and its database.
    public static let leaseLost = StepErrorCode(rawValue: "lease_lost")
    public static let databaseUnavailable = StepErrorCode(rawValue: "database_unavailable")
    public static let databaseError = StepErrorCode(rawValue: "database_error")
    public static let resultNotStored = StepErrorCode(rawValue: "result_not_stored")

    // A run's own errors.
    public static let stepFailed = StepErrorCode(rawValue: "step_failed")
    public static let runTimeout = StepErrorCode(rawValue: "run_timeout")
}
