/// The status of a run; the first three are live, the rest final.
public enum RunStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case queued, running, waiting, succeeded, failed, cancelled

    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .queued, .running, .waiting: false
        }
    }

    /// The event that ends a run with this status; nil for a live status.
    public var finalEvent: RunEventType? {
        switch self {
        case .succeeded: .runSucceeded
        case .failed: .runFailed
        case .cancelled: .runCancelled
        case .queued, .running, .waiting: nil
        }
    }
}

/// The status of a step. `succeeded`, `failed`, `skipped` and `cancelled` are final.
public enum StepStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending, ready, running, waiting, succeeded, failed, skipped, cancelled

    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .skipped, .cancelled: true
        case .pending, .ready, .running, .waiting: false
        }
    }
}

/// The types of the events in a run's log (`GET /v1/runs/{id}/events`): what the
/// store writes, the server streams and `yard` reads. The raw values are the wire
/// and database names; other tools depend on them.
public enum RunEventType: String, Sendable, Hashable, CaseIterable, Codable {
    case runCreated = "run.created"
    case runSucceeded = "run.succeeded"
    case runFailed = "run.failed"
    case runCancelled = "run.cancelled"
    case runSignalled = "run.signalled"
    case stepStarted = "step.started"
    case stepSucceeded = "step.succeeded"
    case stepSkipped = "step.skipped"
    case stepFailed = "step.failed"
    case stepRetrying = "step.retrying"
    case stepWaiting = "step.waiting"
    case stepLeaseExpired = "step.lease_expired"
    /// Steps cancelled together because the run failed.
    case stepsCancelled = "steps.cancelled"
    case childStarted = "child.started"
    case modelRouted = "model.routed"
    case modelCalled = "model.called"
    /// Live text of a model answer, streamed and never stored.
    case modelDelta = "model.delta"
    case toolCalled = "tool.called"
    case budgetAlert = "budget.alert"

    /// The events that end a run: its stream ends after one of them.
    public static let final: Set<RunEventType> = [.runSucceeded, .runFailed, .runCancelled]

    /// Whether the run's log ends with this event.
    public var isFinal: Bool { Self.final.contains(self) }
}
