import Synchronization
import Testing

@testable import LocalInference

/// The worker pool behind every parallel region of a forward pass.
@Suite struct ParallelRunnerTests {
    /// Regions of different sizes one after another (as a forward pass alternates matrix
    /// products, attention and per-token work): every element of every region is visited
    /// exactly once, by ranges that respect the granularity, and the region is over when
    /// `forRanges` returns.
    @Test(arguments: [2, 3])
    func everyRegionCoversItsRangeExactlyOnce(threads: Int) {
        let runner = ParallelRunner(threads: threads)
        let capacity = 700
        let visits = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
        defer { visits.deallocate() }
        let misaligned = Atomic<Int>(0)
        let sizes = [2, 640, 4, 3, 1, 17, 256, 5, 700, 8]
        for round in 0..<4_000 {
            let count = sizes[round % sizes.count]
            let granularity = round % 3 == 0 ? 16 : 1
            visits.initialize(repeating: 0, count: capacity)
            runner.forRanges(count, granularity: granularity, partsPerThread: 1 + round % 4) { start, end in
                if start % granularity != 0 { misaligned.add(1, ordering: .relaxed) }
                for i in start..<end { visits[i] += 1 }
            }
            let wrong = (0..<count).filter { visits[$0] != 1 }
            #expect(wrong.isEmpty, "round \(round): \(count) elements, visited ≠ once at \(wrong.prefix(5))")
            if !wrong.isEmpty { break }
        }
        #expect(misaligned.load(ordering: .relaxed) == 0)
    }

    /// A runner with one thread runs the body inline, once, over the whole range.
    @Test func oneThreadRunsInline() {
        let runner = ParallelRunner(threads: 1)
        var calls: [(Int, Int)] = []
        runner.forRanges(100, granularity: 16) { calls.append(($0, $1)) }
        #expect(calls.count == 1 && calls[0] == (0, 100))
    }
}
