import Dispatch

/// Spreads independent work items over the machine's cores.
///
/// Kernels split a matrix's rows into one contiguous range per thread, so each thread streams
/// its own part of the weights (decoding is memory-bound: one read of each weight per token).
public struct ParallelRunner: Sendable {
    public let threads: Int

    public init(threads: Int? = nil) {
        let cores = ProcessInfoCores.activeCount
        self.threads = max(1, min(threads ?? cores, 64))
    }

    /// Calls `body(start, end)` on disjoint ranges covering `0..<count`, in parallel, with
    /// range boundaries multiples of `granularity` (except the last).
    public func forRanges(_ count: Int, granularity: Int = 1, _ body: (Int, Int) -> Void) {
        let units = (count + granularity - 1) / granularity
        let parts = min(threads, units)
        if parts <= 1 {
            body(0, count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let start = units * p / parts * granularity
                let end = min(count, units * (p + 1) / parts * granularity)
                if start < end { box.value(start, end) }
            }
        }
    }
}

/// Carries a non-Sendable closure into `concurrentPerform`.
///
/// `@unchecked Sendable` is sound here because `forRanges` blocks until every iteration has
/// returned, and the closures it carries only write disjoint ranges of their output buffers.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
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

#if canImport(Glibc)
import Glibc
#endif
