import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardObservability
import SwitchyardStore
import SwitchyardTools
import Synchronization

/// How one engine process schedules work.
public struct EngineConfiguration: Sendable, Hashable {
    /// Steps this process runs at once.
    public var concurrency: Int = 64
    /// How long a claimed step stays ours without a heartbeat.
    public var lease: Duration = .seconds(30)
    /// How often leases are renewed; a third of the lease by default.
    public var heartbeatInterval: Duration?
    /// The longest an idle dispatcher sleeps before looking again, in case a
    /// notification was missed.
    public var idlePoll: Duration = .seconds(1)
    /// How often expired leases, waits and run deadlines are looked for.
    public var maintenanceInterval: Duration = .seconds(1)
    /// The most items one `map` may fan out to.
    public var maxFanOut: Int = 10_000
    /// The `auto` gate's threshold for tenants that set none.
    public var gateThreshold: Double = Gate.defaultThreshold
    /// The completion cap (`max_tokens`) sent when a step sets none: every call has one,
    /// so that its budget reservation is a true upper bound.
    public var defaultMaxTokens: Int = 8_192
    /// The most steps of one tenant running at once across all servers, for tenants
    /// without their own cap; nil: no cap.
    public var maxRunningStepsPerTenant: Int?
    /// The most live event streams (`GET …/events`) one tenant may hold open on this
    /// server.
    public var maxEventStreamsPerTenant: Int = 64
    /// How long a graceful shutdown lets running steps finish. After it their leases
    /// are let go (any server runs them again) and the process stops.
    public var shutdownGrace: Duration = .seconds(30)
    /// How long a step without a `timeout` of its own may keep its lease. A step still
    /// running after this (its own timeout, when it has one) is presumed stuck: its lease
    /// is no longer renewed, so another attempt can take over.
    public var maxStepRuntime: Duration = .seconds(3600)

    public init() {}

    var effectiveHeartbeat: Duration { heartbeatInterval ?? lease / 3 }
}

/// The durable scheduler of one `yard serve` process: it claims ready steps from
/// PostgreSQL, runs them, and commits their results, together with every other
/// process sharing the database (docs/ARCHITECTURE.md, "Failure model"). It runs as a `Service`.
///
/// Every database call it makes has a deadline (see ``Database``), so nothing here
/// waits on PostgreSQL forever: while the database is down the engine keeps its
/// running steps' outcomes and writes them once it is back, if their leases are still
/// theirs, and claims nothing.
public final class Engine: Service, Sendable {
    public let configuration: EngineConfiguration
    let database: Database
    let queue: StepQueue
    let runs: RunRepository
    let metering: MeteringRepository
    let calls: CallMetering
    let executor: StepExecutor
    /// Writes successful and skipped steps in batches (group commit): the steps that
    /// finish while one batch is written go together in the next statement, each fenced
    /// and committed with its event as if alone (``StepQueue/complete(_:notifyOthers:)``).
    let completions: GroupCommit<(completion: StepCompletion, notifyOthers: Bool), CompletionOutcome>
    /// Decoded workflow versions, shared with the API that starts runs of them.
    public let workflows: WorkflowCache
    let logger: Logger
    /// Metrics, spans and transition log lines (EngineTelemetry.swift).
    let telemetry: EngineTelemetry
    let wakeup = Wakeup()
    let cancellations = RunCancellations()
    /// Live model deltas for followers of `GET …/events?deltas=1`.
    public let deltas: DeltaHub
    /// Wakes this process's live event streams when their runs change.
    public let events: RunEventFeed
    /// The steps this process is running, by run and step: their leases are the ones
    /// the heartbeat renews, and their count is what the dispatcher has in use.
    private let running = Mutex<[StepAttemptKey: RunningStep]>([:])
    private let stopping = Mutex(false)
    private let lastOtherWake = Mutex<ContinuousClock.Instant?>(nil)

    /// A step this process runs, with what its lease needs.
    struct RunningStep: Sendable {
        var claim: ClaimedStep
        /// The heartbeat renews the lease until then; later the step counts as stuck.
        var renewUntil: ContinuousClock.Instant
        /// When the lease expires as far as this process knows: claim or last renewal,
        /// plus the lease. An outcome is written only while this may still hold.
        var leaseValidUntil: ContinuousClock.Instant
        /// The step outran its bound and its lease was let go: it is no longer renewed.
        var abandoned = false
    }

    public init(
        database: Database, experts: ExpertPool, tools: ToolEnvironment, configuration: EngineConfiguration = EngineConfiguration(),
        gate: Gate = Gate(), logger: Logger = Logger(label: "switchyard.engine"), observability: Observability = Observability()
    ) {
        self.configuration = configuration
        self.database = database
        let queue = StepQueue(database: database)
        self.queue = queue
        self.completions = GroupCommit { writes in
            try await queue.complete(writes.map(\.completion), notifyOthers: writes.contains { $0.notifyOthers })
        }
        self.runs = RunRepository(database: database)
        let resources = ResourceRepository(database: database)
        let tenants = TenantRepository(database: database)
        self.workflows = WorkflowCache(resources: resources)
        self.logger = logger
        let telemetry = EngineTelemetry(observability: observability, logger: logger)
        self.telemetry = telemetry
        let deltas = DeltaHub(owner: queue.owner, database: database, logger: logger)
        self.deltas = deltas
        self.events = RunEventFeed(
            owner: queue.owner, database: database, maxStreamsPerTenant: configuration.maxEventStreamsPerTenant, logger: logger)
        let toolbox = Toolbox(
            resources: resources, secrets: SecretRepository(database: database), tenants: tenants, queue: queue, environment: tools, logger: logger,
            telemetry: telemetry)
        let metering = MeteringRepository(database: database)
        self.metering = metering
        let callMetering = CallMetering(
            repository: metering, queue: queue, prices: PriceBookCache(), defaultMaxTokens: configuration.defaultMaxTokens,
            settleRetryWindow: configuration.lease, logger: logger, telemetry: telemetry)
        self.calls = callMetering
        let models = ModelStepRunner(
            experts: experts, resources: resources, queue: queue, gate: gate, history: GateRepository(database: database), tenants: tenants,
            toolbox: toolbox, deltas: deltas, metering: callMetering, defaultThreshold: configuration.gateThreshold, logger: logger,
            telemetry: telemetry)
        self.executor = StepExecutor(
            queue: queue, resources: resources, runs: runs, models: models, toolbox: toolbox, cancellations: cancellations,
            configuration: configuration, logger: logger, telemetry: telemetry)
    }

    /// This process's lease owner id.
    public var owner: UUID { queue.owner }

    /// Wakes the dispatcher, for work created by this process.
    public func poke() {
        wakeup.signal()
    }

    /// Whether every slot is taken: work created here should then wake other
    /// processes' engines too, rather than wait for a slot here.
    public var isSaturated: Bool {
        running.withLock { $0.count } >= configuration.concurrency
    }

    /// Whether work created here now should wake other processes' engines: only when
    /// every slot here is taken, and then at most once per ``otherWakeInterval``. A
    /// NOTIFY makes PostgreSQL serialise the committing transactions on one lock, so
    /// one per created run would cap run creation; an engine woken once claims all the
    /// ready work it has room for, and its next claim finds the rest.
    public func shouldWakeOthers() -> Bool {
        guard isSaturated else { return false }
        let now = ContinuousClock.now
        return lastOtherWake.withLock { last in
            if let previous = last, now - previous < Self.otherWakeInterval { return false }
            last = now
            return true
        }
    }

    /// The shortest time between two wake-ups of other engines for created work.
    public static let otherWakeInterval: Duration = .milliseconds(10)

    /// How many steps this process is running now.
    public var runningSteps: Int {
        running.withLock { $0.count }
    }

    public func run() async throws {
        logger.info("engine started", metadata: ["owner": "\(owner)", "concurrency": "\(configuration.concurrency)"])
        await withDiscardingTaskGroup { group in
            group.addTask { await self.listen() }
            group.addTask { await self.renewLeases() }
            group.addTask { await self.maintain() }
            await withGracefulShutdownHandler {
                await self.dispatch()
            } onGracefulShutdown: {
                self.stopping.withLock { $0 = true }
                self.wakeup.signal()
            }
            group.cancelAll()
        }
        logger.info("engine stopped", metadata: ["owner": "\(owner)"])
    }

    private var isStopping: Bool {
        Task.isCancelled || stopping.withLock { $0 }
    }

    /// Claims ready steps while there are free slots, runs each in a child task, and
    /// sleeps only when there is nothing to claim. On graceful shutdown it stops
    /// claiming and lets the running steps finish, for at most the shutdown grace.
    private func dispatch() async {
        let claims = FailureLog("claiming steps", logger: logger)
        await withDiscardingTaskGroup { group in
            while !isStopping {
                let free = configuration.concurrency - running.withLock { $0.count }
                var claimed: [ClaimedStep] = []
                // The database starts a lease at its `now()`, before the answer reaches
                // here: the estimate of when it ends starts from before the claim.
                let claimedAt = ContinuousClock.now
                if free > 0 {
                    do {
                        claimed = try await queue.claim(limit: free, lease: configuration.lease, tenantCap: configuration.maxRunningStepsPerTenant)
                        telemetry.claimed(claimed.count)
                        claims.succeeded()
                    } catch {
                        claims.failed(error)
                    }
                }
                if claimed.isEmpty {
                    var idle = configuration.idlePoll
                    if free > 0, !claims.isFailing, let next = try? await queue.nextReadyDelay(), next < idle {
                        idle = max(next, .milliseconds(1))
                    }
                    await wakeup.wait(upTo: idle)
                    continue
                }
                running.withLock { running in
                    for step in claimed {
                        running[step.attemptKey] = RunningStep(
                            claim: step, renewUntil: claimedAt + configuration.maxStepRuntime, leaseValidUntil: claimedAt + configuration.lease)
                    }
                }
                for step in claimed {
                    group.addTask {
                        await self.process(step)
                        _ = self.running.withLock { $0.removeValue(forKey: step.attemptKey) }
                        self.wakeup.signal()
                    }
                }
            }
            await drain(group: &group)
        }
    }

    /// After the dispatcher stops: waits for the running steps for at most the
    /// shutdown grace, then lets the leases of those still running go, so that another
    /// server takes them over at once, and cancels them.
    private func drain(group: inout DiscardingTaskGroup) async {
        guard !Task.isCancelled else { return }
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while runningSteps > 0, ContinuousClock.now < deadline {
            await wakeup.wait(upTo: deadline - ContinuousClock.now)
        }
        // Marked abandoned first, so that the heartbeat no longer renews them.
        let left = running.withLock { running -> [ClaimedStep] in
            var left: [ClaimedStep] = []
            for (key, step) in running where !step.abandoned {
                left.append(step.claim)
                running[key]?.abandoned = true
            }
            return left
        }
        guard !left.isEmpty else {
            group.cancelAll()
            return
        }
        logger.warning(
            "steps still running after the shutdown grace; letting their leases go",
            metadata: [
                "steps": "\(left.count)", "grace": "\(configuration.shutdownGrace)",
            ])
        do {
            try await queue.release(left)
        } catch {
            logger.warning("could not let the leases go; they expire on their own", metadata: ["error": "\(Database.describe(error))"])
        }
        group.cancelAll()
    }

    /// Runs one claimed step and commits its outcome.
    func process(_ claim: ClaimedStep) async {
        // Settlements still held when the attempt ends without committing are the
        // sweep's to bill (at their upper bound).
        defer { calls.dropHeld(for: claim.attemptKey) }
        let workflow: CompiledWorkflow
        do {
            workflow = try await workflows.workflow(tenant: claim.tenantID, name: claim.workflow, version: claim.version)
        } catch {
            logger.error("cannot load the workflow of a claimed step; releasing it", metadata: ["run": "\(claim.runID)", "error": "\(error)"])
            try? await queue.release([claim])
            return
        }
        if let timeout = workflow.steps[claim.stepID]?.timeout {
            // The step's own timeout ends it (longer or shorter than the engine's bound);
            // a lease of slack lets its outcome be written.
            boundRuntime(of: claim, to: timeout.duration + configuration.lease)
        }
        var pause = Duration.milliseconds(100)
        while true {
            switch await executor.execute(claim, workflow: workflow) {
            case .abandon:
                return
            case .commit(let transition):
                // A process being torn down does not record outcomes its cancellation
                // caused; the lease expires and another process runs the step again.
                guard !Task.isCancelled else { return }
                await commit(claim, transition, workflow: workflow)
                return
            case .waitForDatabase(let error):
                // Nothing was spent yet: wait for PostgreSQL and run the attempt again,
                // while the lease may still be ours.
                guard !Task.isCancelled, ContinuousClock.now + pause < leaseValidUntil(claim) else {
                    logger.warning(
                        "the database stayed unreachable for the step's whole lease; its lease lapses and it runs again",
                        metadata: [
                            "run": "\(claim.runID)", "step": "\(claim.stepID)", "error": "\(error.message)",
                        ])
                    return
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            }
        }
    }

    /// Writes a step's outcome. While PostgreSQL cannot be reached the write is tried
    /// again, with backoff, for as long as the lease may still be ours (and another
    /// lease beyond, as nobody may have taken the step over meanwhile: the write is
    /// fenced, so it lands at most once). An outcome the database refuses (a value it
    /// cannot store) becomes a failure of the step, never a second run of its work.
    private func commit(_ claim: ClaimedStep, _ transition: StepTransition, workflow: CompiledWorkflow) async {
        let runInfo = Self.runInfo(run: claim.runID, tenant: claim.tenantID, workflow: claim.workflow)
        var transition = transition
        var pause = Duration.milliseconds(50)
        while true {
            let saturated = running.withLock { $0.count } >= configuration.concurrency
            do {
                // The step's calls are billed exactly before it can succeed.
                try await calls.settleHeld(for: claim.attemptKey)
                let dependents = workflow.dependents[claim.stepID] ?? []
                let finalize: RunFinalizer = { finished in workflow.finalize(input: claim.input, run: runInfo, finished: finished) }
                let result: CompletionResult
                if let outcome = StepCompletion.Outcome(transition) {
                    let completion = StepCompletion(
                        step: claim, outcome: outcome, dependents: dependents,
                        runEnd: Self.runEnd(of: claim, outcome, workflow: workflow, finalize: finalize))
                    let written = try await completions.submit((completion, saturated))
                    result = try await endRunIfAwaiting(written, claim: claim, finalize: finalize)
                } else {
                    result = try await queue.complete(claim, transition, dependents: dependents, notifyOthers: saturated, finalize: finalize)
                }
                switch result {
                case .rejected:
                    telemetry.fenced(claim)
                case .committed(let ready, let finished):
                    telemetry.committed(claim, transition, runFinished: finished)
                    if !ready.isEmpty { wakeup.signal() }
                    if case .retry = transition { wakeup.signal() }
                    if let finished {
                        cancellations.forget(claim.runID)
                        if finished != .succeeded {
                            do {
                                try await runs.cancelChildren(of: claim.runID, tenant: claim.tenantID)
                            } catch {
                                // The maintenance sweep cancels orphaned children.
                                logger.warning(
                                    "could not cancel child runs", metadata: ["run": "\(claim.runID)", "error": "\(Database.describe(error))"])
                            }
                        }
                    }
                }
                return
            } catch is CancellationError {
                // The engine is being torn down: the lease lapses and the step runs again.
                return
            } catch  where Database.isUnavailable(error) {
                guard !Task.isCancelled, ContinuousClock.now + pause < leaseValidUntil(claim) + configuration.lease else {
                    logger.warning(
                        "could not record a step's outcome while its lease lasted; it runs again",
                        metadata: [
                            "run": "\(claim.runID)", "step": "\(claim.stepID)", "error": "\(Database.describe(error))",
                        ])
                    return
                }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            } catch {
                logger.error(
                    "the database refused a step's outcome; recording the step as failed",
                    metadata: [
                        "run": "\(claim.runID)", "step": "\(claim.stepID)", "error": "\(Database.describe(error))",
                    ])
                if case .failed(let record, _, _) = transition, record.has(.resultNotStored) {
                    // Even the failure could not be written: let the lease lapse.
                    return
                }
                let stored = ErrorRecord(.resultNotStored, "the step's result could not be stored: \(Database.describe(error))")
                transition = .failed(stored, continueRun: workflow.steps[claim.stepID]?.onError == .continue, expert: nil)
            }
        }
    }

    /// How the run ends if `claim` is its last step, when the claim carried every
    /// other step's outcome (they were all final when it was claimed, so they cannot
    /// change): the run then ends in the same statement as its last step. Nil when a
    /// step of a parallel branch was still live at the claim; the run is then ended
    /// from the database's outputs once the batch says it has no steps left.
    static func runEnd(
        of claim: ClaimedStep, _ outcome: StepCompletion.Outcome, workflow: CompiledWorkflow, finalize: RunFinalizer
    ) -> RunEnd? {
        guard claim.finished[claim.stepID] == nil, claim.finished.count == workflow.steps.count - 1 else { return nil }
        var finished = claim.finished
        switch outcome {
        case .succeeded(let output, _): finished[claim.stepID] = FinishedStep(status: .succeeded, output: output)
        case .skipped: finished[claim.stepID] = FinishedStep(status: .skipped, output: nil)
        }
        return RunEnd(finalize(finished))
    }

    /// Ends the run when the batch left it with no steps but could not end it. The
    /// step is committed by then, so a failure here is not the step's: the maintenance
    /// sweep ends such runs.
    private func endRunIfAwaiting(_ written: CompletionOutcome, claim: ClaimedStep, finalize: @escaping RunFinalizer) async throws -> CompletionResult
    {
        guard written.runAwaitsEnd, case .committed(let ready, _) = written.result else { return written.result }
        do {
            return .committed(newlyReady: ready, runFinished: try await queue.endRun(claim.runID, tenant: claim.tenantID, finalize: finalize))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.warning(
                "could not end a run after its last step; the maintenance sweep ends it",
                metadata: ["run": "\(claim.runID)", "error": "\(Database.describe(error))"])
            return written.result
        }
    }

    private func leaseValidUntil(_ claim: ClaimedStep) -> ContinuousClock.Instant {
        running.withLock { $0[claim.attemptKey]?.leaseValidUntil } ?? .now
    }

    private func boundRuntime(of claim: ClaimedStep, to limit: Duration) {
        running.withLock { running in
            running[claim.attemptKey]?.renewUntil = .now + limit
        }
    }

    /// The `run` variable of templates.
    static func runInfo(run: UUID, tenant: UUID, workflow: String) -> JSONValue {
        ["id": .string(run.lowercasedString), "tenant": .string(tenant.lowercasedString), "workflow": .string(workflow)]
    }

    /// Renews the leases of running steps until cancelled: only of steps within their
    /// runtime bound. A step past it is presumed stuck: its lease is let go, so that
    /// another server runs it as a new attempt (this attempt's late outcome is fenced
    /// out). It keeps its slot here until its task ends, for it still holds whatever
    /// it is stuck on.
    private func renewLeases() async {
        let failures = FailureLog("renewing leases", logger: logger)
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.effectiveHeartbeat)
            } catch {
                return
            }
            let now = ContinuousClock.now
            let (alive, stuck) = running.withLock { running -> ([ClaimedStep], [ClaimedStep]) in
                var alive: [ClaimedStep] = []
                var stuck: [ClaimedStep] = []
                for (key, step) in running where !step.abandoned {
                    if now < step.renewUntil {
                        alive.append(step.claim)
                    } else {
                        stuck.append(step.claim)
                        running[key]?.abandoned = true
                    }
                }
                return (alive, stuck)
            }
            if !stuck.isEmpty {
                for step in stuck {
                    logger.warning(
                        "a step outran its runtime bound; letting its lease go",
                        metadata: [
                            "run": "\(step.runID)", "step": "\(step.stepID)", "attempt": "\(step.attempt)",
                        ])
                }
                try? await queue.release(stuck)
            }
            do {
                let renewed = try await queue.heartbeat(alive, lease: configuration.lease)
                failures.succeeded()
                let validUntil = now + configuration.lease
                running.withLock { running in
                    for claim in renewed {
                        running[claim.attemptKey]?.leaseValidUntil = validUntil
                    }
                }
            } catch {
                failures.failed(error)
            }
        }
    }

    /// Periodic timers: expired leases, expired waits, overdue runs. One survey query
    /// tells which sweeps have anything to do, so an idle engine costs one query per
    /// interval here.
    /// How often maintenance looks for hot tables that outgrew their planner statistics
    /// (``StepQueue/refreshStaleStatistics(threshold:)``).
    static let statisticsInterval: Duration = .seconds(2)

    private func maintain() async {
        var lastAnnouncement = ContinuousClock.now
        var lastRenewal = ContinuousClock.now
        var lastStatistics = ContinuousClock.now
        let failures = FailureLog("maintenance", logger: logger)
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.maintenanceInterval)
            } catch {
                return
            }
            do {
                if ContinuousClock.now - lastAnnouncement >= DeltaHub.announceInterval {
                    lastAnnouncement = .now
                    await deltas.announceFollowedRuns()
                }
                if ContinuousClock.now - lastRenewal >= RunEventFeed.renewInterval {
                    lastRenewal = .now
                    await events.renew()
                }
                if ContinuousClock.now - lastStatistics >= Self.statisticsInterval {
                    lastStatistics = .now
                    let analysed = try await queue.refreshStaleStatistics()
                    if !analysed.isEmpty { logger.info("analysed tables that outgrew their statistics", metadata: ["tables": "\(analysed)"]) }
                }
                let due = try await queue.maintenanceDue()
                var reclaimed = 0
                var woken = 0
                if due.expiredLeases { reclaimed = try await queue.reclaimExpiredLeases() }
                telemetry.leasesExpired(reclaimed)
                if due.expiredWaits { woken = try await queue.wakeExpiredWaits() }
                if due.runsAwaitingEnd {
                    for stalled in try await queue.runsAwaitingEnd() {
                        let workflow = try await workflows.workflow(tenant: stalled.tenant, name: stalled.workflow, version: stalled.version)
                        let runInfo = Self.runInfo(run: stalled.run, tenant: stalled.tenant, workflow: stalled.workflow)
                        _ = try await queue.endRun(stalled.run, tenant: stalled.tenant) { finished in
                            workflow.finalize(input: stalled.input, run: runInfo, finished: finished)
                        }
                    }
                }
                if due.orphanedChildren { try await runs.cancelOrphans() }
                if due.abandonedReservations { try await metering.settleAbandonedReservations() }
                if due.overdueRuns {
                    for overdue in try await queue.overdueRuns() {
                        _ = try await runs.finish(
                            overdue.run, tenant: overdue.tenant, status: .failed,
                            error: ErrorRecord(.runTimeout, "the run did not finish before its timeout"))
                    }
                }
                failures.succeeded()
                if reclaimed > 0 || woken > 0 {
                    logger.info("timers fired", metadata: ["reclaimed_leases": "\(reclaimed)", "woken_waits": "\(woken)"])
                    wakeup.signal()
                }
            } catch is CancellationError {
                return
            } catch {
                failures.failed(error)
            }
        }
    }

    /// Listens for `work` (wake the dispatcher), `cancel` (stop a run's steps), delta
    /// relays and run events (wake streams) on a dedicated connection, reconnecting
    /// after errors.
    private func listen() async {
        let handlers: [NotificationChannel: @Sendable (String) -> Void] = [
            .work: { _ in self.wakeup.signal() },
            .cancel: { payload in
                if let run = UUID(uuidString: payload) { self.cancellations.cancel(run) }
            },
            .deltaWatch: { payload in self.deltas.noteRemoteWatch(payload) },
            .deltas: { payload in self.deltas.receive(payload) },
            .runEvents: { payload in self.events.received(payload) },
        ]
        let failures = FailureLog("listening for notifications", logger: logger)
        while !Task.isCancelled {
            do {
                try await database.listen(dispatching: handlers) {
                    failures.succeeded()
                    // Notifications sent while nobody listened are lost: look for work
                    // now, and let every stream read.
                    self.wakeup.signal()
                    self.events.wakeAll()
                }
            } catch {
                if Task.isCancelled { return }
                failures.failed(error)
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}

/// Logs a task's repeated failures once per outage rather than once per attempt: the
/// first failure as a warning, the rest at debug level, and the recovery with how many
/// attempts failed. (A database outage would otherwise print a line per second per loop.)
final class FailureLog: Sendable {
    private let what: String
    private let logger: Logger
    private let state = Mutex<(failures: Int, since: ContinuousClock.Instant?)>((0, nil))

    init(_ what: String, logger: Logger) {
        self.what = what
        self.logger = logger
    }

    var isFailing: Bool { state.withLock { $0.failures > 0 } }

    func failed(_ error: any Error) {
        let count = state.withLock { state -> Int in
            state.failures += 1
            if state.since == nil { state.since = .now }
            return state.failures
        }
        let metadata: Logger.Metadata = ["error": "\(Database.describe(error))"]
        if count == 1 {
            logger.warning("\(what) failed; retrying", metadata: metadata)
        } else {
            logger.debug("\(what) failed again", metadata: metadata.merging(["failures": "\(count)"]) { $1 })
        }
    }

    func succeeded() {
        let ended = state.withLock { state -> (Int, ContinuousClock.Instant)? in
            guard state.failures > 0, let since = state.since else { return nil }
            defer { state = (0, nil) }
            return (state.failures, since)
        }
        if let (failures, since) = ended {
            logger.info("\(what) works again", metadata: ["failures": "\(failures)", "after": "\(ContinuousClock.now - since)"])
        }
    }
}
