#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the next token is chosen. Temperature 0 means greedy (argmax).
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float
    /// Keep only the k most likely tokens (0 = no limit).
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = no limit).
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 40, topP: Float = 0.95, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingParameters()
}

/// Deterministic PRNG (xoshiro256**, seeded by SplitMix64): the same seed gives the same
/// samples on every platform, which `Random` does not promise.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func next() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (next(), next(), next(), next())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }
}

public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: Xoshiro256

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = Xoshiro256(seed: parameters.seed)
    }

    public mutating func sample(_ logits: [Float]) -> Int32 {
        if parameters.temperature <= 0 { return Self.argmax(logits) }
        let k = parameters.topK > 0 ? min(parameters.topK, logits.count) : logits.count
        var candidates = Self.topK(logits, k)  // sorted by logit, descending
        let invT = 1 / parameters.temperature
        let mx = candidates[0].1
        var probs = candidates.map { expf(($0.1 - mx) * invT) }
        var total = probs.reduce(0, +)
        if parameters.topP < 1 {
            var cum: Float = 0
            var keep = probs.count
            for (i, p) in probs.enumerated() {
                cum += p / total
                if cum >= parameters.topP {
                    keep = i + 1
                    break
                }
            }
            candidates.removeLast(candidates.count - keep)
            probs.removeLast(probs.count - keep)
            total = probs.reduce(0, +)
        }
        let u = Float(Double(rng.next() >> 11) * 0x1.0p-53) * total
        var cum: Float = 0
        for (i, p) in probs.enumerated() {
            cum += p
            if u < cum { return candidates[i].0 }
        }
        return candidates[candidates.count - 1].0
    }

    /// Index of the largest logit (the first on ties, as std::max_element): one pass, no sort.
    public static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        var bestValue = -Float.infinity
        for (i, v) in logits.enumerated() where v > bestValue {
            best = i
            bestValue = v
        }
        return Int32(best)
    }

    /// The k largest (id, logit) pairs, largest first, by partial selection with a min-heap
    /// of size k (O(n log k), not a sort of the whole vocabulary).
    public static func topK(_ logits: [Float], _ k: Int) -> [(Int32, Float)] {
        guard k > 0 else { return [] }
        var heap: [(Int32, Float)] = []
        heap.reserveCapacity(k)
        func less(_ a: (Int32, Float), _ b: (Int32, Float)) -> Bool { a.1 < b.1 || (a.1 == b.1 && a.0 > b.0) }
        func siftDown(_ i0: Int) {
            var i = i0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for (i, v) in logits.enumerated() {
            let item = (Int32(i), v)
            if heap.count < k {
                heap.append(item)
                var c = heap.count - 1
                while c > 0 {
                    let p = (c - 1) / 2
                    guard less(heap[c], heap[p]) else { break }
                    heap.swapAt(c, p)
                    c = p
                }
            } else if less(heap[0], item) {
                heap[0] = item
                siftDown(0)
            }
        }
        return heap.sorted { less($1, $0) }
    }
}
