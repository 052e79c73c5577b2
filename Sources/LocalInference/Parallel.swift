#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Spreads independent work items over the machine's cores with a persistent pool of
/// spinning worker threads.
///
/// A forward pass asks for ~110 parallel regions per decoded token (every matrix product and
/// the attention of 18 layers), each only tens of microseconds long. Waking threads through
/// the kernel for each (as `DispatchQueue.concurrentPerform` does) cost more than the second
/// core gave back; here the workers poll a generation counter between regions, and park on a
/// condition variable only after `spinLimit` idle polls, so an idle model costs no CPU.
///
/// A region is cut into parts (by default four per thread) that the caller and the workers
/// claim from a shared counter: when a worker is descheduled (another process wants the
/// core), the others run the parts it has not claimed instead of waiting for it.
///
/// Used by one caller at a time (the inference context that owns it).
public final class ParallelRunner {
    public let threads: Int
    private let pool: WorkerPool?

    public init(threads: Int? = nil) {
        let cores = ProcessInfoCores.activeCount
        self.threads = max(1, min(threads ?? cores, 64))
        pool = self.threads > 1 ? WorkerPool(workers: self.threads - 1) : nil
    }

    deinit { pool?.shutDown() }

    /// Calls `body(start, end)` on disjoint ranges covering `0..<count`, in parallel, with
    /// range boundaries multiples of `granularity` (except the last). Returns when all are done.
    ///
    /// `partsPerThread` trades balance for streaming: one long range per thread reads memory
    /// in the longest ascending runs (best for memory-bound single-token decoding); several
    /// shorter ones let the threads that are running take over from one that was descheduled
    /// (best for compute-bound batches).
    public func forRanges(_ count: Int, granularity: Int = 1, partsPerThread: Int = 4, _ body: (Int, Int) -> Void) {
        let units = (count + granularity - 1) / granularity
        let parts = min(threads * max(1, partsPerThread), units)
        guard parts > 1, let pool else {
            body(0, count)
            return
        }
        withoutActuallyEscaping(body) { body in
            pool.run(parts: parts) { p in
                let start = units * p / parts * granularity
                let end = min(count, units * (p + 1) / parts * granularity)
                if start < end { body(start, end) }
            }
        }
    }
}

/// The worker threads of a `ParallelRunner` and the state they share with its caller.
///
/// Protocol: the caller writes `job` and `parts`, opens the region by storing 0 into
/// `nextPart` (releasing) and bumps `generation`; everyone claims part indices with
/// `nextPart.add(1)` until they run past `parts`, and counts finished parts in `completed`.
/// The caller waits for `completed == parts`, then closes the region by storing `closed`
/// into `nextPart`, so a worker that arrives late claims nothing, and never a part of the
/// next region under the old region's count.
///
/// `@unchecked Sendable`: `job` is written by the caller only while the region is closed,
/// and read by a worker only after its claim succeeded on an open region (the claim
/// acquires what the opening store released); the caller does not touch them again
/// until every claimed part has been counted in `completed` (released by the worker).
/// Everything else is atomics or guarded by `mutex`.
final class WorkerPool: @unchecked Sendable {
    private let generation = Atomic<Int>(0)
    private let nextPart = Atomic<Int>(WorkerPool.closed)
    private let completed = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private let parts = Atomic<Int>(0)
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var handles: [pthread_t] = []
    private static let closed = Int.max / 2
    /// Idle polls before a worker parks: ~0.2 ms at about a nanosecond per poll, longer than
    /// the serial work between two regions of a forward pass and between decoded tokens.
    private let spinLimit = 200_000
    /// Polls between `sched_yield` calls while spinning, so that a spinning thread hands its
    /// core to a descheduled one (another worker, the caller) on a busy machine.
    private let yieldEvery = 1_024

    init(workers: Int) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        for _ in 0..<workers {
            let start = Unmanaged.passRetained(WorkerStart(pool: self)).toOpaque()
            var handle = pthread_t()
            if pthread_create(&handle, nil, { raw in
                guard let raw else { return nil }
                let start = Unmanaged<WorkerStart>.fromOpaque(raw).takeRetainedValue()
                start.pool.workerLoop()
                return nil
            }, start) == 0 {
                handles.append(handle)
            } else {
                Unmanaged<WorkerStart>.fromOpaque(start).release()
            }
        }
    }

    /// Runs `job(p)` for every p in 0..<parts, on the calling thread and the workers.
    func run(parts: Int, _ job: @escaping (Int) -> Void) {
        self.job = job
        self.parts.store(parts, ordering: .relaxed)
        completed.store(0, ordering: .relaxed)
        nextPart.store(0, ordering: .releasing)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
        }
        runClaimedParts()
        var polls = 0
        while completed.load(ordering: .acquiring) < parts {
            polls += 1
            if polls % yieldEvery == 0 { sched_yield() }
        }
        nextPart.store(Self.closed, ordering: .relaxed)
        self.job = nil
    }

    /// Claims and runs parts of the open region until none is left.
    private func runClaimedParts() {
        while true {
            let p = nextPart.add(1, ordering: .acquiringAndReleasing).oldValue
            guard p < parts.load(ordering: .relaxed) else { return }
            runPart(p)
            completed.add(1, ordering: .releasing)
        }
    }

    /// Calls the job in a scope of its own, so this thread's reference to the closure is
    /// dropped before the part is counted: the caller's `withoutActuallyEscaping` checks
    /// that no reference outlives the region.
    @inline(never)
    private func runPart(_ p: Int) {
        job?(p)
    }

    func shutDown() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for handle in handles { pthread_join(handle, nil) }
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        wake.deallocate()
        mutex.deallocate()
    }

    private func workerLoop() {
        var seen = 0
        while true {
            var current = generation.load(ordering: .acquiring)
            var polls = 0
            while current == seen {
                if polls < spinLimit {
                    polls += 1
                    if polls % yieldEvery == 0 { sched_yield() }
                } else {
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    pthread_mutex_lock(mutex)
                    while generation.load(ordering: .sequentiallyConsistent) == seen {
                        pthread_cond_wait(wake, mutex)
                    }
                    pthread_mutex_unlock(mutex)
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            runClaimedParts()
        }
    }
}

/// What a new worker thread needs, passed through `pthread_create`'s context pointer.
private final class WorkerStart {
    let pool: WorkerPool
    init(pool: WorkerPool) { self.pool = pool }
}


enum ProcessInfoCores {
    static var activeCount: Int {
        #if canImport(Glibc)
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, n)
        #else
        return 2
        #endif
    }
}
