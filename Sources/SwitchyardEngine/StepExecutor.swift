import Foundation
import Logging
import SwitchyardCore
import SwitchyardExperts
import SwitchyardStore
import Synchronization

/// Why an attempt failed, and whether trying again could help: a template or
/// configuration error fails the same way every time, a provider error may not.
struct StepFailure: Error, Sendable {
    var error: ErrorRecord
    var retryable: Bool
    /// For `budget_exceeded`: what the tenant's budget says to do about it.
    var budgetPolicy: BudgetPolicy?

    init(_ code: StepErrorCode, _ message: String, retryable: Bool, budgetPolicy: BudgetPolicy? = nil) {
        self.error = ErrorRecord(code, message)
        self.retryable = retryable
        self.budgetPolicy = budgetPolicy
    }

    /// A database call of the attempt failed: `database_unavailable` when PostgreSQL
    /// could not be reached (the engine then waits and runs the attempt again, if it
    /// had done nothing yet), `database_error` when it refused the statement.
    static func database(_ error: any Error, _ prefix: String = "") -> StepFailure {
        StepFailure(Database.isUnavailable(error) ? .databaseUnavailable : .databaseError, prefix + Database.describe(error), retryable: true)
    }

    /// Whether the attempt failed because PostgreSQL could not be reached.
    var isDatabaseUnavailable: Bool { error.has(.databaseUnavailable) }
}

/// What the engine does with an executed attempt.
enum AttemptVerdict: Sendable {
    /// Write this transition.
    case commit(StepTransition)
    /// The run was cancelled while the step ran: there is nothing to write.
    case abandon
    /// PostgreSQL could not be reached before the attempt did anything that costs money
    /// or shows outside (no model call admitted, no tool called): the same attempt can
    /// simply run again once the database answers, without spending a retry.
    case waitForDatabase(ErrorRecord)
}

/// The result of running one attempt of a step.
enum AttemptOutcome: Sendable {
    case succeeded(JSONValue, expert: String?)
    case failed(StepFailure, expert: String?)
    case skipped(String)
    case wait(signal: String, timeout: TimeSpan?)
    /// The run was cancelled while the step ran: nothing is to be written.
    case abandoned
    /// The database was unreachable and the attempt had done nothing yet.
    case databaseUnavailable(ErrorRecord)
}

/// Runs one claimed step: evaluates its templates, calls experts, and turns the
/// outcome into the transition the queue commits.
struct StepExecutor: Sendable {
    let queue: StepQueue
    let resources: ResourceRepository
    let runs: RunRepository
    let models: ModelStepRunner
    let toolbox: Toolbox
    let cancellations: RunCancellations
    let configuration: EngineConfiguration
    let logger: Logger
    var telemetry: EngineTelemetry = .disabled

    /// How many attempts the engine may add beyond a step's retry budget when the
    /// step's own work is not to blame: its process stopped or stalled (the lease was
    /// lost), or the database went away after the attempt had spent something.
    static let lostLeaseAllowance = 2

    func execute(_ claim: ClaimedStep, workflow: CompiledWorkflow) async -> AttemptVerdict {
        await telemetry.attempt(claim, kind: EngineTelemetry.kind(of: workflow.steps[claim.stepID]?.kind)) {
            await executeAttempt(claim, workflow: workflow)
        }
    }

    /// `execute` without its instrumentation.
    private func executeAttempt(_ claim: ClaimedStep, workflow: CompiledWorkflow) async -> AttemptVerdict {
        guard let step = workflow.steps[claim.stepID] else {
            return .commit(
                .failed(
                    ErrorRecord(.stepMissing, "step \(claim.stepID) is not in \(claim.workflow) v\(claim.version)"),
                    continueRun: false, expert: nil))
        }
        // Attempts past the retry budget come only from expired leases: the step keeps
        // losing its process (it may be what crashes it). Stop it rather than let it
        // take down one server after another.
        if claim.attempt > claim.maxAttempts + Self.lostLeaseAllowance {
            let error = ErrorRecord(
                .leaseLost,
                "the step was interrupted \(claim.attempt - claim.maxAttempts) times beyond its retries (its process stopped or stalled, or the database was unreachable, each time)"
            )
            return .commit(.failed(error, continueRun: step.onError == .continue, expert: nil))
        }
        let outcome = await attempt(claim, step: step, workflow: workflow)
        switch outcome {
        case .succeeded(let output, let expert):
            return .commit(.succeeded(output: output, expert: expert))
        case .skipped(let reason):
            return .commit(.skipped(reason: reason))
        case .wait(let signal, let timeout):
            return .commit(.wait(signal: signal, timeout: timeout))
        case .abandoned:
            return .abandon
        case .databaseUnavailable(let error):
            return .waitForDatabase(error)
        case .failed(let failure, let expert)
        where failure.isDatabaseUnavailable && claim.attempt < claim.maxAttempts + Self.lostLeaseAllowance:
            // The database went away after the attempt had spent something: it runs
            // again once the database is back, within the engine's allowance beyond
            // the step's own retries (a restart of PostgreSQL must not fail a run).
            return .commit(.retry(failure.error, delay: TimeSpan(milliseconds: 1_000), expert: expert))
        case .failed(let failure, let expert):
            if failure.retryable && claim.attempt < claim.maxAttempts {
                let delay = step.retry.delay(afterAttempt: claim.attempt, unitRandom: Double.random(in: 0..<1))
                return .commit(.retry(failure.error, delay: delay, expert: expert))
            }
            return .commit(.failed(failure.error, continueRun: step.onError == .continue, expert: expert))
        }
    }

    /// One attempt, raced against the step's timeout and the run's cancellation.
    private func attempt(_ claim: ClaimedStep, step: StepSpec, workflow: CompiledWorkflow) async -> AttemptOutcome {
        let outputs = claim.finished.compactMapValues { $0.status == .succeeded ? ($0.output ?? .null) : nil }
        let runInfo = Engine.runInfo(run: claim.runID, tenant: claim.tenantID, workflow: claim.workflow)
        let scope = TemplateScope(inputs: claim.input, steps: outputs, run: runInfo)

        // A step that reads the output of a skipped step is skipped too.
        if let skipped = (workflow.referencedSteps[step.id] ?? []).sorted().first(where: { claim.finished[$0]?.status == .skipped }) {
            return .skipped("it uses the output of \(skipped), which was skipped")
        }
        if let condition = step.condition {
            do {
                guard try condition.evaluate(scope).isTruthy else { return .skipped("`if` was false") }
            } catch {
                return .failed(StepFailure(.templateError, "if: \(error.message)", retryable: false), expert: nil)
            }
        }
        switch step.kind {
        case .waitFor(let wait):
            return await waitFor(wait, claim: claim, timeout: step.timeout)
        case .workflow(let child):
            return await childWorkflow(child, claim: claim, scope: scope, timeout: step.timeout)
        default:
            break
        }

        let context = CallContext(claim: claim, logger: logger)
        return await withTaskGroup(of: AttemptOutcome?.self) { group in
            group.addTask {
                do throws(StepFailure) {
                    let (output, expert) = try await run(step.kind, scope: scope, context: context)
                    return .succeeded(output, expert: expert)
                } catch {
                    if Task.isCancelled { return nil }
                    if error.isDatabaseUnavailable && !context.hadSideEffects {
                        return .databaseUnavailable(error.error)
                    }
                    return .failed(error, expert: context.lastExpert)
                }
            }
            if let timeout = step.timeout {
                group.addTask {
                    do {
                        try await Task.sleep(for: timeout.duration)
                    } catch {
                        return nil
                    }
                    return .failed(StepFailure(.timeout, "the step did not finish within \(timeout)", retryable: true), expert: context.lastExpert)
                }
            }
            group.addTask {
                await cancellations.waitForCancellation(of: claim.runID)
                return Task.isCancelled ? nil : .abandoned
            }
            var outcome: AttemptOutcome = .abandoned
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }

    private func waitFor(_ wait: WaitForSpec, claim: ClaimedStep, timeout: TimeSpan?) async -> AttemptOutcome {
        do {
            if let data = try await queue.signal(named: wait.signal, run: claim.runID, tenant: claim.tenantID) {
                return .succeeded(data, expert: nil)
            }
            if try await queue.waitDeadlinePassed(claim) {
                let limit = timeout.map { " within \($0)" } ?? ""
                return .failed(StepFailure(.waitTimeout, "no \(wait.signal) signal arrived\(limit)", retryable: false), expert: nil)
            }
        } catch {
            return Self.databaseFailure(error)
        }
        return .wait(signal: wait.signal, timeout: timeout)
    }

    /// A `workflow:` step: starts the child run once (a step run again after a crash
    /// finds it by its idempotency key), then waits, holding no worker, for the signal
    /// the child's end delivers. The step's `timeout` bounds the child run.
    private func childWorkflow(_ child: ChildWorkflowSpec, claim: ClaimedStep, scope: TemplateScope, timeout: TimeSpan?) async -> AttemptOutcome {
        let signal = ChildRuns.signal(step: claim.stepID)
        do {
            if let result = try await queue.signal(named: signal, run: claim.runID, tenant: claim.tenantID) {
                let status = result["status"]?.stringValue ?? RunStatus.failed.rawValue
                guard status == RunStatus.succeeded.rawValue else {
                    let reason = result["error"]?["message"]?.stringValue.map { ": \($0)" } ?? ""
                    let run = result["run"]?.stringValue ?? "?"
                    return .failed(
                        StepFailure(.childFailed, "child run \(run) of \(child.workflow) \(status)\(reason)", retryable: false), expert: nil)
                }
                return .succeeded(result["output"] ?? .null, expert: nil)
            }
            if try await queue.waitDeadlinePassed(claim) {
                try await runs.cancelChildren(of: claim.runID, step: claim.stepID, tenant: claim.tenantID, reason: "the parent step timed out")
                let limit = timeout.map { " within \($0)" } ?? ""
                return .failed(StepFailure(.childTimeout, "the child run of \(child.workflow) did not finish\(limit)", retryable: false), expert: nil)
            }
            guard let stored = try await resources.find(kind: .workflow, name: child.workflow, tenant: claim.tenantID),
                case .workflow(let spec) = stored.resource
            else {
                return .failed(StepFailure(.workflowMissing, "workflow \(child.workflow) does not exist", retryable: false), expert: nil)
            }
            let input: JSONValue
            do {
                input = try spec.resolveInputs(try child.with.renderTemplates(scope))
            } catch let error as TemplateError {
                return .failed(StepFailure(.templateError, "with: \(error.message)", retryable: false), expert: nil)
            } catch {
                return .failed(StepFailure(.invalidInput, "the input of \(child.workflow) is invalid: \(error)", retryable: false), expert: nil)
            }
            let (childRun, created) = try await runs.createRun(
                tenant: claim.tenantID, workflow: child.workflow, version: stored.version, spec: spec, input: input,
                idempotencyKey: ChildRuns.idempotencyKey(parent: claim.runID, step: claim.stepID), parent: (claim.runID, claim.stepID))
            if created {
                try await queue.appendEvents(
                    [
                        NewEvent(
                            .childStarted, step: claim.stepID,
                            data: ["run": .string(childRun.id.lowercasedString), "workflow": .string(child.workflow)])
                    ],
                    run: claim.runID, tenant: claim.tenantID)
            }
        } catch let error as DatabaseError where error.code == .conflict {
            return .failed(StepFailure(.childFailed, error.message, retryable: false), expert: nil)
        } catch {
            return Self.databaseFailure(error)
        }
        return .wait(signal: signal, timeout: timeout)
    }

    /// A `wait_for` or `workflow` step whose database call failed: both only read, or
    /// start their child idempotently, so an unreachable database never costs a retry.
    private static func databaseFailure(_ error: any Error) -> AttemptOutcome {
        let failure = StepFailure.database(error)
        return failure.isDatabaseUnavailable ? .databaseUnavailable(failure.error) : .failed(failure, expert: nil)
    }

    /// Runs a step body of any kind but `wait_for` and `workflow`.
    private func run(_ kind: StepKind, scope: TemplateScope, context: CallContext) async throws(StepFailure) -> (JSONValue, String?) {
        switch kind {
        case .transform(let template):
            return (try evaluate(template, scope, field: "transform"), nil)
        case .model(let model):
            return try await models.run(model, scope: scope, context: context)
        case .map(let map):
            return (try await runMap(map, scope: scope, context: context), context.lastExpert)
        case .tool(let tool):
            let arguments: JSONValue
            do {
                arguments = try tool.with.renderTemplates(scope)
            } catch {
                throw StepFailure(.templateError, "with: \(error.message)", retryable: false)
            }
            return (try await toolbox.runStep(tool, arguments: arguments, context: context), nil)
        case .workflow, .waitFor:
            // The loader refuses both inside a map; at the top level `attempt` runs them.
            throw StepFailure(.notSupported, "\(kind.keyword) cannot run inside a map", retryable: false)
        }
    }

    private func evaluate(_ template: Template, _ scope: TemplateScope, field: String) throws(StepFailure) -> JSONValue {
        do {
            return try template.evaluate(scope)
        } catch {
            throw StepFailure(.templateError, "\(field): \(error.message)", retryable: false)
        }
    }

    private func runMap(_ map: MapStepSpec, scope: TemplateScope, context: CallContext) async throws(StepFailure) -> JSONValue {
        guard case .array(let items) = try evaluate(map.over, scope, field: "map.over") else {
            throw StepFailure(.templateError, "map.over must evaluate to a list", retryable: false)
        }
        guard items.count <= configuration.maxFanOut else {
            throw StepFailure(.fanOutLimit, "map.over has \(items.count) items; the limit is \(configuration.maxFanOut)", retryable: false)
        }
        guard !items.isEmpty else { return .array([]) }
        let width = max(1, min(map.concurrency, items.count))
        let results: Result<[JSONValue], StepFailure> = await withTaskGroup(of: (Int, Result<JSONValue, StepFailure>).self) { group in
            var outputs = [JSONValue](repeating: .null, count: items.count)
            var next = 0
            func start(_ index: Int) {
                var itemScope = scope
                itemScope.variables[map.itemName] = items[index]
                group.addTask {
                    do throws(StepFailure) {
                        let (value, _) = try await run(map.step, scope: itemScope, context: context)
                        return (index, .success(value))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            while next < width {
                start(next)
                next += 1
            }
            while let (index, result) = await group.next() {
                switch result {
                case .success(let value):
                    outputs[index] = value
                case .failure(let failure):
                    group.cancelAll()
                    return .failure(
                        StepFailure(
                            StepErrorCode(rawValue: failure.error.code), "item \(index): \(failure.error.message)", retryable: failure.retryable))
                }
                if next < items.count {
                    start(next)
                    next += 1
                }
            }
            return .success(outputs)
        }
        return .array(try results.get())
    }
}

/// Per-attempt state shared by the calls of one step (a map's items run concurrently).
final class CallContext: Sendable {
    let claim: ClaimedStep
    let logger: Logger
    private let state = Mutex<(nextIndex: Int, lastExpert: String?, lastRoute: JSONValue?, sideEffects: Int)>((0, nil, nil, 0))

    init(claim: ClaimedStep, logger: Logger) {
        self.claim = claim
        self.logger = logger
    }

    /// The next call index of this attempt; with the attempt it makes the call row's key.
    func nextCallIndex() -> Int {
        state.withLock { state in
            defer { state.nextIndex += 1 }
            return state.nextIndex
        }
    }

    /// Notes that the attempt did something that costs money or shows outside (a model
    /// call admitted under the budget, a tool called), after which it must not simply
    /// be run again.
    func noteSideEffect() {
        state.withLock { $0.sideEffects += 1 }
    }

    var hadSideEffects: Bool { state.withLock { $0.sideEffects > 0 } }

    var lastExpert: String? {
        get { state.withLock { $0.lastExpert } }
        set { state.withLock { $0.lastExpert = newValue } }
    }

    /// Notes a routing decision; false when it repeats the last one (a map's items
    /// routed alike), which then need not be written again.
    func noteRoute(_ route: JSONValue, expert: String) -> Bool {
        state.withLock { state in
            state.lastExpert = expert
            guard state.lastRoute != route else { return false }
            state.lastRoute = route
            return true
        }
    }
}
