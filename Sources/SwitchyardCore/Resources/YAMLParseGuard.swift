import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs parses of untrusted YAML with a bound on the time a caller waits and on the
/// CPU they can take from everything else, whatever the YAML library does.
///
/// Why: the YAML library's composition cannot be interrupted, and the pre-scan only
/// refuses the hostile shapes we know of. So a parse runs on one of `slots` dedicated
/// threads (never on Swift's cooperative pool or a NIO event loop, which would stall
/// every other request), at the lowest CPU priority, and its caller is answered at the
/// deadline whether or not the parse has finished. A parse past its deadline keeps its
/// thread until the library returns (nothing can stop it), so at most `slots` runaway
/// parses exist server-wide; while every slot holds one, new parses are refused at once
/// with ``Refusal/busy(slots:)`` instead of queueing behind them.
public final class YAMLParseGuard: Sendable {
    /// Why a parse was not answered with its result.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// The parse did not finish within the deadline (it may still be running).
        case timedOut(deadline: Duration)
        /// Every parse slot is taken by a parse past its deadline, or none freed up in time.
        case busy(slots: Int)

        public var description: String {
            switch self {
            case .timedOut(let deadline):
                "reading the YAML took longer than \(Self.seconds(deadline)) s; simplify or split the file"
            case .busy(let slots):
                "all \(slots) YAML parse slots of this server are busy with slow documents; retry later"
            }
        }

        static func seconds(_ duration: Duration) -> String {
            let ms = duration.inMilliseconds
            return ms % 1000 == 0 ? "\(ms / 1000)" : String(format: "%.3g", Double(ms) / 1000)
        }
    }

    private static let timers = DispatchQueue(label: "yaml-parse-deadlines")

    /// The guard every server route shares, so the bound holds server-wide.
    public static let shared = YAMLParseGuard()

    public let slots: Int
    public let deadline: Duration

    private let state: Mutex<State>
    /// Counts queued jobs; a worker waits on it (workers are plain threads, so blocking is fine).
    private let available = DispatchSemaphore(value: 0)

    private struct State {
        var queue: [Job] = []
        var started = false
        /// The deadline of the job each worker is running, nil while it is idle.
        var running: [ContinuousClock.Instant?]
    }

    /// - Parameters:
    ///   - slots: parses that may run at once (threads created on first use).
    ///   - deadline: how long a caller waits for its parse, queueing included.
    public init(slots: Int = 2, deadline: Duration = .seconds(5)) {
        self.slots = max(1, slots)
        self.deadline = deadline
        self.state = Mutex(State(running: Array(repeating: nil, count: max(1, slots))))
    }

    /// Runs `work` on a parse thread and returns its result, or throws at the deadline.
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws(Refusal) -> T {
        let reply = Reply<T>()
        let job = Job(deadline: ContinuousClock.now + self.deadline) { reply.resume(.success(work())) }
        let refusedNow: Bool = state.withLock { state in
            let now = ContinuousClock.now
            if state.running.allSatisfy({ $0.map { $0 < now } ?? false }) { return true }
            state.queue.append(job)
            return false
        }
        if refusedNow { throw .busy(slots: slots) }
        startWorkersOnce()
        available.signal()
        let slots = self.slots
        let limit = self.deadline
        // The deadline fires on a Dispatch timer, not a task: when the cooperative pool
        // is saturated the refusal is still decided on time, and the late result dropped.
        let timer = DispatchSource.makeTimerSource(queue: Self.timers)
        timer.schedule(deadline: .now() + .nanoseconds(Int(limit.inNanoseconds)))
        timer.setEventHandler {
            // A job still queued is dropped (its worker will skip it); one running
            // goes on, but its caller is answered now.
            switch job.expire() {
            case .queued: reply.resume(.failure(.busy(slots: slots)))
            case .running: reply.resume(.failure(.timedOut(deadline: limit)))
            case .finished, .expired: break
            }
        }
        timer.activate()
        let result = await reply.value()
        timer.cancel()
        return try result.get()
    }

    private func startWorkersOnce() {
        let start = state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        guard start else { return }
        for index in 0..<slots {
            let thread = Thread { [self] in work(index) }
            thread.name = "yaml-parse-\(index)"
            // The YAML library composes recursively; the pre-scan bounds depth, and a
            // large stack keeps a deep but legal document far from the guard page.
            thread.stackSize = 16 << 20
            thread.start()
        }
    }

    private func work(_ index: Int) {
        #if os(Linux)
        // On Linux a thread's nice value is its own (NPTL), and `who = 0` names the
        // calling thread: parses yield the CPU to everything else the server does.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        #else
        Thread.current.qualityOfService = .background
        #endif
        while true {
            available.wait()
            let job: Job? = state.withLock { state in
                guard !state.queue.isEmpty else { return nil }
                let job = state.queue.removeFirst()
                state.running[index] = job.deadline
                return job
            }
            guard let job else { continue }
            if job.start() { job.body() }
            job.finish()
            state.withLock { $0.running[index] = nil }
        }
    }
}

/// One parse: its body, its deadline, and where it is in its life.
private final class Job: Sendable {
    enum Phase: Sendable { case queued, running, finished, expired }

    let deadline: ContinuousClock.Instant
    let body: @Sendable () -> Void
    private let phase = Mutex(Phase.queued)

    init(deadline: ContinuousClock.Instant, body: @escaping @Sendable () -> Void) {
        self.deadline = deadline
        self.body = body
    }

    /// True when the job should run (it did not expire while queued).
    func start() -> Bool {
        phase.withLock { phase in
            guard phase == .queued else { return false }
            phase = .running
            return true
        }
    }

    func finish() {
        phase.withLock { if $0 == .running { $0 = .finished } }
    }

    /// Marks the job expired and says what it was doing then.
    func expire() -> Phase {
        phase.withLock { phase in
            let was = phase
            if phase == .queued { phase = .expired }
            return was
        }
    }
}

/// A result delivered once to one waiter, whichever comes first: the result or the wait.
private final class Reply<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, YAMLParseGuard.Refusal>?
        var waiter: CheckedContinuation<Result<T, YAMLParseGuard.Refusal>, Never>?
        var delivered = false
    }

    private let state = Mutex(State())

    func resume(_ result: Result<T, YAMLParseGuard.Refusal>) {
        let waiter: CheckedContinuation<Result<T, YAMLParseGuard.Refusal>, Never>? = state.withLock { state in
            guard !state.delivered, state.result == nil else { return nil }
            guard let waiter = state.waiter else {
                state.result = result
                return nil
            }
            state.delivered = true
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: result)
    }

    func value() async -> Result<T, YAMLParseGuard.Refusal> {
        await withCheckedContinuation { continuation in
            let ready: Result<T, YAMLParseGuard.Refusal>? = state.withLock { state in
                if let result = state.result {
                    state.delivered = true
                    return result
                }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
