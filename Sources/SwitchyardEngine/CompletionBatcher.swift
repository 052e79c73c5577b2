import SwitchyardStore
import Synchronization

/// Group commit of step completions: the steps that finish while one batch is being
/// written are written together as the next, in one statement
/// (``StepQueue/complete(_:notifyOthers:)``). An idle engine writes a lone step at
/// once; a busy one writes many per round trip, transaction and WAL flush, which is
/// what lets PostgreSQL keep up with thousands of steps a second.
///
/// Each step's task waits for its own outcome, so nothing about the step's guarantees
/// changes: it is fenced, committed with its event, or rejected, exactly as alone.
final class CompletionBatcher: Sendable {
    private struct Pending {
        var completion: StepCompletion
        var notifyOthers: Bool
        var waiter: CheckedContinuation<CompletionOutcome, any Error>
    }

    private struct State {
        var pending: [Pending] = []
        var stopped = false
    }

    private let queue: StepQueue
    /// The most completions one statement carries: bounds the statement's size and
    /// the time its row locks are held.
    private let maxBatch: Int
    private let state = Mutex(State())
    private let arrivals = Wakeup()

    init(queue: StepQueue, maxBatch: Int = 256) {
        self.queue = queue
        self.maxBatch = maxBatch
    }

    /// Commits `completion` with the next batch and returns what committing it did;
    /// throws what writing its batch threw (the caller retries as for a lone write).
    func commit(_ completion: StepCompletion, notifyOthers: Bool) async throws -> CompletionOutcome {
        try await withCheckedThrowingContinuation { waiter in
            let accepted = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.pending.append(Pending(completion: completion, notifyOthers: notifyOthers, waiter: waiter))
                return true
            }
            if accepted {
                arrivals.signal()
            } else {
                waiter.resume(throwing: CancellationError())
            }
        }
    }

    /// Writes batches until cancelled; then fails whatever still waits, so that no
    /// step's task waits forever (their leases lapse and the steps run again).
    func run() async {
        while !Task.isCancelled {
            let batch = state.withLock { state -> [Pending] in
                let count = min(state.pending.count, maxBatch)
                defer { state.pending.removeFirst(count) }
                return Array(state.pending.prefix(count))
            }
            if batch.isEmpty {
                await arrivals.wait(upTo: .seconds(1))
                continue
            }
            await write(batch)
        }
        let left = state.withLock { state -> [Pending] in
            state.stopped = true
            defer { state.pending = [] }
            return state.pending
        }
        for pending in left { pending.waiter.resume(throwing: CancellationError()) }
    }

    private func write(_ batch: [Pending]) async {
        do {
            let outcomes = try await queue.complete(batch.map(\.completion), notifyOthers: batch.contains { $0.notifyOthers })
            for (pending, outcome) in zip(batch, outcomes) { pending.waiter.resume(returning: outcome) }
        } catch  where batch.count > 1 && !Database.isUnavailable(error) && !(error is CancellationError) {
            // The database refused the statement: a value one completion carries (it
            // cannot store it) must fail that step alone, not its neighbours.
            for pending in batch {
                do {
                    let outcome = try await queue.complete([pending.completion], notifyOthers: pending.notifyOthers)
                    pending.waiter.resume(returning: outcome[0])
                } catch {
                    pending.waiter.resume(throwing: error)
                }
            }
        } catch {
            for pending in batch { pending.waiter.resume(throwing: error) }
        }
    }
}
