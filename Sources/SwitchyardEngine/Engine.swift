import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardStore
import SwitchyardTools

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

    public init() {}

    var effectiveHeartbeat: Duration { heartbeatInterval ?? lease / 3 }
}

/// The durable scheduler of one `yard serve` process: it claims ready steps from
/// PostgreSQL, runs them, and commits their results, together with every other
/// process sharing the database (DESIGN §4). It runs as a `Service`.
public final class Engine: Service, Sendable {
    public let configuration: EngineConfiguration
    let database: Database
    let queue: StepQueue
    let runs: RunRepository
    let metering: MeteringRepository
    let executor: StepExecutor
    let workflows: WorkflowCache
    let logger: Logger
    let wakeup = Wakeup()
    let cancellations = RunCancellations()
    /// Live model deltas for followers of `GET …/events?deltas=1`.
    public let deltas: DeltaHub
    /// The steps this process is running, by run and step: their leases are the ones
    /// the heartbeat renews, and their count is what the dispatcher has in use.
    private let running = Mutex<[String: ClaimedStep]>([:])
    private let stopping = Mutex(false)

    public init(
        database: Database, experts: ExpertPool, tools: ToolEnvironment, configuration: EngineConfiguration = EngineConfiguration(),
        gate: Gate = Gate(), logger: Logger = Logger(label: "switchyard.engine")
    ) {
        self.configuration = configuration
        self.database = database
        let queue = StepQueue(database: database)
        self.queue = queue
        self.runs = RunRepository(database: database)
        let resources = ResourceRepository(database: database)
        let tenants = TenantRepository(database: database)
        self.workflows = WorkflowCache(resources: resources)
        self.logger = logger
        let deltas = DeltaHub(owner: queue.owner, database: database, logger: logger)
        self.deltas = deltas
        let toolbox = Toolbox(
            resources: resources, secrets: SecretRepository(database: database), tenants: tenants, queue: queue, environment: tools, logger: logger)
        let metering = MeteringRepository(database: database)
        self.metering = metering
        let callMetering = CallMetering(
            repository: metering, queue: queue, prices: PriceBookCache(), defaultMaxTokens: configuration.defaultMaxTokens, logger: logger)
        let models = ModelStepRunner(
            experts: experts, resources: resources, queue: queue, gate: gate, history: GateRepository(database: database), tenants: tenants,
            toolbox: toolbox, deltas: deltas, metering: callMetering, defaultThreshold: configuration.gateThreshold, logger: logger)
        self.executor = StepExecutor(
            queue: queue, resources: resources, runs: runs, models: models, toolbox: toolbox, cancellations: cancellations,
            configuration: configuration, logger: logger)
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
    /// claiming and lets the running steps finish.
    private func dispatch() async {
        await withDiscardingTaskGroup { group in
            while !isStopping {
                let free = configuration.concurrency - running.withLock { $0.count }
                var claimed: [ClaimedStep] = []
                if free > 0 {
                    do {
                        claimed = try await queue.claim(limit: free, lease: configuration.lease, tenantCap: configuration.maxRunningStepsPerTenant)
                    } catch {
                        logger.error("claiming steps failed", metadata: ["error": "\(Database.describe(error))"])
                    }
                }
                if claimed.isEmpty {
                    var idle = configuration.idlePoll
                    if free > 0, let next = try? await queue.nextReadyDelay(), next < idle {
                        idle = max(next, .milliseconds(1))
                    }
                    await wakeup.wait(upTo: idle)
                    continue
                }
                running.withLock { running in
                    for step in claimed { running[Self.key(step)] = step }
                }
                for step in claimed {
                    group.addTask {
                        await self.process(step)
                        _ = self.running.withLock { $0.removeValue(forKey: Self.key(step)) }
                        self.wakeup.signal()
                    }
                }
            }
        }
    }

    static func key(_ step: ClaimedStep) -> String {
        "\(step.runID)/\(step.stepID)"
    }

    /// Runs one claimed step and commits its outcome.
    func process(_ claim: ClaimedStep) async {
        let workflow: CompiledWorkflow
        do {
            workflow = try await workflows.workflow(tenant: claim.tenantID, name: claim.workflow, version: claim.version)
        } catch {
            logger.error("cannot load the workflow of a claimed step; releasing it", metadata: ["run": "\(claim.runID)", "error": "\(error)"])
            try? await queue.release(claim)
            return
        }
        guard let transition = await executor.execute(claim, workflow: workflow) else { return }
        // A process being torn down does not record outcomes its cancellation caused;
        // the lease expires and another process runs the step again.
        guard !Task.isCancelled else { return }
        let saturated = running.withLock { $0.count } >= configuration.concurrency
        let runInfo = Self.runInfo(run: claim.runID, tenant: claim.tenantID, workflow: claim.workflow)
        do {
            let result = try await queue.complete(
                claim, transition, dependents: workflow.dependents[claim.stepID] ?? [], notifyOthers: saturated,
                finalize: { finished in workflow.finalize(input: claim.input, run: runInfo, finished: finished) })
            switch result {
            case .rejected:
                logger.notice("a completion was fenced out", metadata: ["run": "\(claim.runID)", "step": "\(claim.stepID)", "attempt": "\(claim.attempt)"])
            case .committed(let ready, let finished):
                if !ready.isEmpty { wakeup.signal() }
                if case .retry = transition { wakeup.signal() }
                if let finished {
                    cancellations.forget(claim.runID)
                    if finished != .succeeded {
                        try await runs.cancelChildren(of: claim.runID, tenant: claim.tenantID)
                    }
                }
            }
        } catch {
            logger.error("completing a step failed; releasing its lease so that it runs again", metadata: [
                "run": "\(claim.runID)", "step": "\(claim.stepID)", "error": "\(Database.describe(error))",
            ])
            try? await queue.release(claim)
        }
    }

    /// The `run` variable of templates.
    static func runInfo(run: UUID, tenant: UUID, workflow: String) -> JSONValue {
        ["id": .string(run.uuidString.lowercased()), "tenant": .string(tenant.uuidString.lowercased()), "workflow": .string(workflow)]
    }

    /// Renews the leases of running steps until cancelled.
    private func renewLeases() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.effectiveHeartbeat)
                let steps = running.withLock { Array($0.values) }
                try await queue.heartbeat(steps, lease: configuration.lease)
            } catch is CancellationError {
                return
            } catch {
                logger.warning("lease heartbeat failed", metadata: ["error": "\(Database.describe(error))"])
            }
        }
    }

    /// Periodic timers: expired leases, expired waits, overdue runs.
    private func maintain() async {
        var lastAnnouncement = ContinuousClock.now
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.maintenanceInterval)
                if ContinuousClock.now - lastAnnouncement >= DeltaHub.announceInterval {
                    lastAnnouncement = .now
                    await deltas.announceFollowedRuns()
                }
                let reclaimed = try await queue.reclaimExpiredLeases()
                let woken = try await queue.wakeExpiredWaits()
                for stalled in try await queue.runsAwaitingEnd() {
                    let workflow = try await workflows.workflow(tenant: stalled.tenant, name: stalled.workflow, version: stalled.version)
                    let runInfo = Self.runInfo(run: stalled.run, tenant: stalled.tenant, workflow: stalled.workflow)
                    _ = try await queue.endRun(stalled.run, tenant: stalled.tenant) { finished in
                        workflow.finalize(input: stalled.input, run: runInfo, finished: finished)
                    }
                }
                try await runs.cancelOrphans()
                try await metering.settleAbandonedReservations()
                for overdue in try await queue.overdueRuns() {
                    _ = try await runs.finish(
                        overdue.run, tenant: overdue.tenant, status: .failed,
                        error: ErrorRecord(code: "run_timeout", message: "the run did not finish before its timeout"))
                }
                if reclaimed > 0 || woken > 0 {
                    logger.info("timers fired", metadata: ["reclaimed_leases": "\(reclaimed)", "woken_waits": "\(woken)"])
                    wakeup.signal()
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("maintenance failed", metadata: ["error": "\(Database.describe(error))"])
            }
        }
    }

    /// Listens for `work` (wake the dispatcher) and `cancel` (stop a run's steps) on a
    /// dedicated connection, reconnecting after errors.
    private func listen() async {
        while !Task.isCancelled {
            do {
                try await database.client.withConnection { connection in
                    let work = try await connection.listen(NotificationChannel.work)
                    let cancel = try await connection.listen(NotificationChannel.cancel)
                    let watches = try await connection.listen(DeltaHub.watchChannel)
                    let deltas = try await connection.listen(DeltaHub.deltaChannel)
                    try await withThrowingDiscardingTaskGroup { group in
                        group.addTask {
                            for try await notification in watches { self.deltas.noteRemoteWatch(notification.payload) }
                        }
                        group.addTask {
                            for try await notification in deltas { self.deltas.receive(notification.payload) }
                        }
                        group.addTask {
                            for try await _ in work { self.wakeup.signal() }
                        }
                        group.addTask {
                            for try await notification in cancel {
                                if let run = UUID(uuidString: notification.payload) { self.cancellations.cancel(run) }
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("listening for notifications failed; retrying", metadata: ["error": "\(Database.describe(error))"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
