import Foundation
import Logging
import PostgresNIO
import SwitchyardCore

/// A step claimed by this process, with what executing it needs.
public struct ClaimedStep: Sendable, Hashable {
    public var tenantID: UUID
    public var runID: UUID
    public var stepID: String
    public var attempt: Int
    public var maxAttempts: Int
    public var workflow: String
    public var version: Int
    public var input: JSONValue
    /// The run's steps that have finished so far, with their status and output.
    public var finished: [String: FinishedStep]

    /// This attempt's identity: one step may be claimed again (a new attempt) while an
    /// earlier attempt's task is still running, so the attempt is part of it.
    public var attemptKey: StepAttemptKey { StepAttemptKey(runID: runID, stepID: stepID, attempt: attempt) }
}

extension ClaimedStep {
    /// The order in which statements that update many claimed steps' rows list them:
    /// the same order everywhere (tenant, run, step), so that two such statements
    /// (a heartbeat and a completion batch) lock shared rows in the same order and
    /// never deadlock on each other.
    static func lockOrder(_ a: ClaimedStep, _ b: ClaimedStep) -> Bool {
        if a.tenantID != b.tenantID { return precedes(a.tenantID, b.tenantID) }
        if a.runID != b.runID { return precedes(a.runID, b.runID) }
        return a.stepID < b.stepID
    }

    /// Byte order, without formatting the ids as text (`uuidString` goes through sprintf).
    private static func precedes(_ a: UUID, _ b: UUID) -> Bool {
        withUnsafeBytes(of: a.uuid) { a in withUnsafeBytes(of: b.uuid) { b in a.lexicographicallyPrecedes(b) } }
    }
}

/// One attempt of one step of a run.
public struct StepAttemptKey: Sendable, Hashable {
    public var runID: UUID
    public var stepID: String
    public var attempt: Int

    public init(runID: UUID, stepID: String, attempt: Int) {
        self.runID = runID
        self.stepID = stepID
        self.attempt = attempt
    }
}

/// A final step's status and output, as templates and the run's finalizer see it.
public struct FinishedStep: Sendable, Hashable {
    public var status: StepStatus
    public var output: JSONValue?

    public init(status: StepStatus, output: JSONValue?) {
        self.status = status
        self.output = output
    }
}

/// What an executed (or expired) step becomes.
public enum StepTransition: Sendable, Hashable {
    case succeeded(output: JSONValue, expert: String?)
    case skipped(reason: String)
    /// The last attempt failed. With `continueRun` (`on_error: continue`) dependents go
    /// on; otherwise the run fails and its other steps are cancelled.
    case failed(ErrorRecord, continueRun: Bool, expert: String?)
    /// Try again after `delay`.
    case retry(ErrorRecord, delay: TimeSpan, expert: String?)
    /// Park the step until the named signal arrives (or the deadline passes).
    case wait(signal: String, timeout: TimeSpan?)
}

/// The result of a fenced completion.
public enum CompletionResult: Sendable, Hashable {
    /// The step's lease was no longer ours (expired and reclaimed, or the run was
    /// cancelled): nothing was written.
    case rejected
    case committed(newlyReady: [String], runFinished: RunStatus?)
}

/// Which maintenance sweeps have work (see ``StepQueue/maintenanceDue()``).
public struct MaintenanceDue: Sendable, Hashable {
    public var expiredLeases = false
    public var expiredWaits = false
    public var runsAwaitingEnd = false
    public var orphanedChildren = false
    /// Reservations exist (a call in flight, or one abandoned by a stopped process).
    public var abandonedReservations = false
    public var overdueRuns = false
}

/// How a run ends once its last step is final: the output object, or why it failed.
public typealias RunFinalizer = @Sendable (_ outputs: [String: FinishedStep]) -> Result<JSONValue, ErrorRecord>
