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
/// core gave back; here the workers spin on a generation counter between regions, and only
/// after `spinLimit` idle polls (~0.2 ms) park on a condition variable, so an idle model
/// costs no CPU.
///
/// Used by one caller at a time (the inference context that owns it); the caller's thread
/// takes part 0 of every region itself.
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
    public func forRanges(_ count: Int, granularity: Int = 1, _ body: (Int, Int) -> Void) {
        let units = (count + granularity - 1) / granularity
        let parts = min(threads, units)
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
/// `generation` counts regions in its upper bits and carries the region's part count in its
/// low 8 bits, so a worker reads both in one load and never mixes two regions.
///
/// `@unchecked Sendable`: the job slot (`job`) is written only by the caller, before it
/// publishes a new generation, and read only by the workers taking part in that region
/// (index < parts) after they observe it with an acquiring load; the caller does not touch
/// the slot again until those workers have decremented `pending` (releasing). Everything
/// else is atomics or guarded by `mutex`.
final class WorkerPool: @unchecked Sendable {
    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var job: ((Int) -> Void)?
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var handles: [pthread_t] = []
    private let maxParts = 255
    /// Idle polls before a worker parks: ~0.2 ms at about a nanosecond per poll, longer than
    /// the serial work between two regions of a forward pass and between decoded tokens.
    private let spinLimit = 200_000

    init(workers: Int) {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        for index in 1...workers {
            let start = Unmanaged.passRetained(WorkerStart(pool: self, index: index)).toOpaque()
            var handle = pthread_t()
            if pthread_create(&handle, nil, { raw in
                guard let raw else { return nil }
                let start = Unmanaged<WorkerStart>.fromOpaque(raw).takeRetainedValue()
                start.pool.workerLoop(index: start.index)
                return nil
            }, start) == 0 {
                handles.append(handle)
            } else {
                Unmanaged<WorkerStart>.fromOpaque(start).release()
            }
        }
    }

    /// Runs `job(p)` for p in 0..<parts: part 0 on the calling thread, part p on worker p.
    /// Parts beyond the workers that started (thread creation failed) run on the caller.
    func run(parts requested: Int, _ job: @escaping (Int) -> Void) {
        let parts = min(requested, handles.count + 1, maxParts)
        self.job = job
        pending.store(parts - 1, ordering: .sequentiallyConsistent)
        let next = (generation.load(ordering: .relaxed) >> 8 &+ 1) << 8 | parts
        generation.store(next, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)
        }
        job(0)
        for p in parts..<requested { job(p) }
        while pending.load(ordering: .acquiring) > 0 { spinPause() }
        self.job = nil
    }

    func shutDown() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        generation.add(1 << 8, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for handle in handles { pthread_join(handle, nil) }
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(mutex)
        wake.deallocate()
        mutex.deallocate()
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var current = generation.load(ordering: .acquiring)
            var polls = 0
            while current == seen {
                if polls < spinLimit {
                    spinPause()
                    polls += 1
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
            if index < current & 0xFF {
                job?(index)
                pending.subtract(1, ordering: .releasing)
            }
        }
    }
}

/// What a new worker thread needs, passed through `pthread_create`'s context pointer.
private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) {
        self.pool = pool
        self.index = index
    }
}

/// One idle poll. (`_mm_pause` is a clang library builtin that Swift cannot call, so the
/// loop is a plain re-read; the line stays shared in cache and costs no bus traffic.)
@inline(__always)
private func spinPause() {}

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
