import Foundation
import Synchronization

/// One dedicated OS thread that runs a model's blocking work (loading the file, forward
/// passes, sampling), one job at a time, for callers that await the result.
///
/// A forward pass blocks for milliseconds to seconds (a long prompt); run on Swift's
/// cooperative pool it would hold one of its few threads (two on a two-core machine)
/// for that long, stalling HTTP handlers and database I/O. Here the awaiting task is
/// suspended instead and its thread is free; the kernels still spread each matrix over
/// every core (they use `DispatchQueue.concurrentPerform`).
///
/// The thread lives as long as the object: `deinit` tells it to exit after the queued jobs.
final class LocalComputeThread: Sendable {
    /// The job queue shared with the thread. The thread's closure holds only this, never
    /// the `LocalComputeThread`, so that the owner's `deinit` can run and stop it.
    private final class Queue: Sendable {
        /// Every job gets one `signal`; a signal with no job queued means stop.
        let jobs = Mutex<[@Sendable () -> Void]>([])
        let signal = DispatchSemaphore(value: 0)

        func loop() {
            while true {
                signal.wait()
                let next = jobs.withLock { jobs -> (@Sendable () -> Void)? in
                    jobs.isEmpty ? nil : jobs.removeFirst()
                }
                guard let next else { return }  // a wake-up with no job: stop
                next()
            }
        }
    }

    private let queue = Queue()

    init(name: String) {
        let queue = self.queue
        let thread = Thread { queue.loop() }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit {
        // A job is queued only during a `run` call, which keeps this object alive until
        // the job has run: none is queued now, so the thread reads this signal as "stop".
        queue.signal.signal()
    }

    /// Runs `body` on the thread and returns its result; the caller is suspended meanwhile.
    /// Jobs run in submission order. A job is not interrupted by the caller's cancellation:
    /// each is short (one batch) and its result must be accounted for.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            queue.jobs.withLock { jobs in
                jobs.append { continuation.resume(returning: body()) }
            }
            queue.signal.signal()
        }
    }
}

/// Hands a non-Sendable value to exactly one other isolation domain.
///
/// Used to give the compute thread the inference context and the batch's KV caches:
/// `@unchecked Sendable` is sound because the scheduler creates the transfer, submits it
/// to `LocalComputeThread.run` and awaits the job's end before it touches the context or
/// those caches again; only one batch is in flight per scheduler, so the values are used
/// by one thread at a time, and the continuation's resume/await orders the accesses.
struct ExclusiveTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
