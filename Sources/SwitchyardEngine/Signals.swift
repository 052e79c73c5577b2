import Foundation
import Synchronization

/// A level-triggered wake-up for the dispatcher: `signal()` before `wait` is not lost,
/// and many signals while nobody waits collapse into one.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
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
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Only a timer that ran out wakes the waiter: a timer cancelled because
                // a signal came first must not leave a stale signal for the next wait,
                // which would return at once and make the dispatcher spin.
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                self.resumeWaiter()
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.pending || Task.isCancelled {
                            state.pending = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                self.resumeWaiter()
            }
            group.cancelAll()
        }
    }

    /// Resumes the current waiter, if any, without leaving a pending signal.
    private func resumeWaiter() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            defer { state.waiter = nil }
            return state.waiter
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
