import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
/// Protocol: the caller writes `job`, then opens the region by storing `parts << 32` into
/// `claims` (releasing) and bumps `generation`. Everyone claims with `claims.add(1)`: the
/// old value's low half is the part index, its high half the region's part count, so a
/// claim is accepted exactly when index < count, judged from one atomic value — a thread
/// delayed between regions can never take a part of one region under another's count.
/// Finished parts are counted in `completed`; the caller waits for all of them, then closes
/// the region by storing 0 (count 0: every later claim is refused).
///
/// `@unchecked Sendable`: `job` is written by the caller only while no region is open, and
/// read by a worker only after an accepted claim (which acquires what the opening store
/// released); the caller does not touch it again until every accepted part has been counted
/// in `completed` (released by the worker). Everything else is atomics or guarded by `mutex`.
final class WorkerPool: @unchecked Sendable {
    private let generation = Atomic<Int>(0)
    /// `parts << 32 | next index` of the open region; 0 when closed.
    private let claims = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var handles: [pthread_t] = []
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
            #if canImport(Darwin)
            var handle: pthread_t?
            let created =
                pthread_create(
                    &handle, nil,
                    { raw in
                        Unmanaged<WorkerStart>.fromOpaque(raw).takeRetainedValue().pool.workerLoop()
                        return nil
                    }, start) == 0 ? handle : nil
            #else
            var handle = pthread_t()
            let created: pthread_t? =
                pthread_create(
                    &handle, nil,
                    { raw in
                        guard let raw else { return nil }
                        Unmanaged<WorkerStart>.fromOpaque(raw).takeRetainedValue().pool.workerLoop()
                        return nil
                    }, start) == 0 ? handle : nil
            #endif
            if let created {
                handles.append(created)
            } else {
                // The caller runs every part the missing worker would have claimed.
                Unmanaged<WorkerStart>.fromOpaque(start).release()
            }
        }
    }

    /// Runs `job(p)` for every p in 0..<parts, on the calling thread and the workers.
    func run(parts: Int, _ job: @escaping (Int) -> Void) {
        self.job = job
        completed.store(0, ordering: .relaxed)
        claims.store(parts << 32, ordering: .releasing)
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
        claims.store(0, ordering: .relaxed)
        self.job = nil
    }

    /// Claims and runs parts of the open region until none is left.
    private func runClaimedParts() {
        while true {
            let claim = claims.add(1, ordering: .acquiringAndReleasing).oldValue
            let index = claim & 0xFFFF_FFFF
            guard index < claim >> 32 else { return }
            runPart(index)
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
