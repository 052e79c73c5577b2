import Foundation
import Synchronization

/// A level-triggered wake-up for the dispatcher: `signal()` before `wait` is not lost,
/// and many signals while nobody waits collapse into one.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        /// Counts waits, so that a timer knows whether its wait is still the current one.
        var generation = 0
        /// The current wait's timer ran out before the wait stored its continuation.
        var expired = false
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next signal, after `timeout`, or when the task is cancelled.
    func wait(upTo timeout: Duration) async {
        let generation = state.withLock { state -> Int in
            state.generation += 1
            state.expired = false
            return state.generation
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Only a timer that ran out wakes the waiter: a timer cancelled because
                // a signal came first must not leave a stale signal for the next wait,
                // which would return at once and make the dispatcher spin.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                self.expire(generation)
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.pending || state.expired || Task.isCancelled {
                            state.pending = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                self.expire(generation)
            }
            group.cancelAll()
        }
    }

    /// Ends wait number `generation`: resumes it if it is waiting, or marks it so that
    /// it returns as soon as it would start waiting. An older wait's timer does nothing.
    private func expire(_ generation: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.generation == generation else { return nil }
            guard let waiter = state.waiter else {
                state.expired = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }
}

/// Lets the steps of a run that is cancelled elsewhere stop: executors wait on their
/// run's id, and a `cancel` notification resumes them.
final class RunCancellations: Sendable {
    private struct State {
        var cancelled: Set<UUID> = []
        var waiters: [UUID: [Int: CheckedContinuation<Void, Never>]] = [:]
        var nextToken = 0
    }

    private let state = Mutex(State())

    func cancel(_ run: UUID) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            // Every process hears of every cancelled run; the set only has to bridge the
            // moment between a step's claim and its wait, so an old backlog can go
            // (the database fence still stops any late completion).
            if state.cancelled.count >= 10_000 { state.cancelled.removeAll(keepingCapacity: true) }
            state.cancelled.insert(run)
            return Array(state.waiters.removeValue(forKey: run)?.values ?? [:].values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Forgets a run once none of its steps runs here any more.
    func forget(_ run: UUID) {
        state.withLock { _ = $0.cancelled.remove(run) }
    }

    /// Returns when the run is cancelled, or when the calling task is cancelled.
    func waitForCancellation(of run: UUID) async {
        let token = state.withLock { state -> Int in
            state.nextToken += 1
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.cancelled.contains(run) || Task.isCancelled { return true }
                    state.waiters[run, default: [:]][token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in state.waiters[run]?.removeValue(forKey: token) }
            waiter?.resume()
        }
    }
}
