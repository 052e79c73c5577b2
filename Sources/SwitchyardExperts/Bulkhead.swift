import Synchronization

/// A concurrency cap for one expert: at most `limit` calls in flight, the rest wait
/// in arrival order for at most a queue timeout.
///
/// Providers cap concurrent requests per account (DeepSeek answers 429 beyond it) and
/// a saturated endpoint only gets slower: keeping excess calls here, bounded, turns
/// overload into a clear, early error instead of a pile of timeouts. Waiting is
/// cancellation-safe: a cancelled waiter leaves the queue and never holds a slot.
public final class Bulkhead: Sendable {
    /// How a wait ended.
    public enum Outcome: Sendable, Hashable {
        case acquired
        case timedOut
        case cancelled
    }

    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Outcome, Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var inFlight = 0
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
        /// Waiters whose cancellation arrived before they queued.
        var cancelledEarly: Set<UInt64> = []
    }

    public let limit: Int
    private let state = Mutex(State())

    public init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Calls in flight and calls waiting, for reports and tests.
    public var load: (inFlight: Int, waiting: Int) {
        state.withLock { ($0.inFlight, $0.waiters.count) }
    }

    /// Waits for a slot for at most `timeout`. After `.acquired` the caller must
    /// `release()` exactly once; after anything else it holds nothing.
    public func acquire(timeout: Duration) async -> Outcome {
        let id = state.withLock { state -> UInt64 in
            state.nextID &+= 1
            return state.nextID
        }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let immediate = state.withLock { state -> Outcome? in
                    if state.cancelledEarly.remove(id) != nil { return .cancelled }
                    if state.inFlight < limit, state.waiters.isEmpty {
                        state.inFlight += 1
                        return .acquired
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation, timer: nil))
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                    return
                }
                let timer = Task { [weak self] in
                    do {
                        try await Task.sleep(for: timeout)
                    } catch {
                        return
                    }
                    self?.resumeWaiter(id, with: .timedOut)
                }
                let stillWaiting = state.withLock { state -> Bool in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return false }
                    state.waiters[index].timer = timer
                    return true
                }
                if !stillWaiting { timer.cancel() }
            }
        } onCancel: {
            let queued = state.withLock { state -> Bool in
                if state.waiters.contains(where: { $0.id == id }) { return true }
                state.cancelledEarly.insert(id)
                return false
            }
            if queued { resumeWaiter(id, with: .cancelled) }
        }
        // A cancellation that arrived after the wait ended left a marker behind.
        state.withLock { _ = $0.cancelledEarly.remove(id) }
        return outcome
    }

    /// Frees a slot, handing it straight to the longest waiter if there is one.
    public func release() {
        let next = state.withLock { state -> Waiter? in
            if state.waiters.isEmpty {
                state.inFlight = max(0, state.inFlight - 1)
                return nil
            }
            return state.waiters.removeFirst()
        }
        if let next {
            next.timer?.cancel()
            next.continuation.resume(returning: .acquired)
        }
    }

    /// Ends one waiter's wait without a slot, if it is still waiting.
    private func resumeWaiter(_ id: UInt64, with outcome: Outcome) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        guard let waiter else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(returning: outcome)
    }
}
