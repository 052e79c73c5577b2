#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A Mixture-of-Experts feed-forward block as DeepSeek builds it, following llama.cpp's
// `build_moe_ffn` (llama-cpp-python 0.3.36):
//
//   logits  = W_router · x                                   [n_expert]
//   probs   = softmax(logits) | sigmoid(logits)
//   sel     = probs + selection_bias                         (DeepSeek-V3; choice only)
//   groups  : experts split into G equal groups, a group scores the sum of its two best `sel`,
//             only the best `groups_used` groups stay selectable (the others become -inf)
//   chosen  = top-k(sel)
//   w       = probs[chosen]                                  (unbiased)
//             / sum(w) (clamped ≥ 2^-14)  if normalised
//             * scale                     if scale ∉ {0, 1}
//   out     = Σ w_i · down_i(silu(gate_i(x)) ⊙ up_i(x)) + shared(x)
//
// The routing is a pure function over Floats (`MoE.route`); the expert products use the
// existing quantized kernels, and each expert's weights are read once per batch for all the
// tokens routed to it.

/// How router logits become expert probabilities (`<arch>.expert_gating_func`).
public enum ExpertGating: Int, Sendable {
    case softmax = 1
    case sigmoid = 2
}

/// Routing hyper-parameters of one MoE block.
public struct MoERouting: Sendable, Equatable {
    public var expertCount: Int
    public var expertsUsed: Int
    public var gating: ExpertGating
    /// Number of expert groups; 0 or 1 means no group-limited routing.
    public var groupCount: Int
    /// Groups kept per token when `groupCount > 1`.
    public var groupsUsed: Int
    /// Divide the chosen weights by their sum.
    public var normalizeWeights: Bool
    /// Multiply the chosen weights (DeepSeek's `routed_scaling_factor`); 0 and 1 mean none.
    public var weightsScale: Float

    public init(
        expertCount: Int, expertsUsed: Int, gating: ExpertGating = .softmax, groupCount: Int = 0,
        groupsUsed: Int = 0, normalizeWeights: Bool = false, weightsScale: Float = 1
    ) {
        self.expertCount = expertCount
        self.expertsUsed = expertsUsed
        self.gating = gating
        self.groupCount = groupCount
        self.groupsUsed = groupsUsed
        self.normalizeWeights = normalizeWeights
        self.weightsScale = weightsScale
    }

    /// The checks llama.cpp asserts when it loads a model, as errors.
    public func validate() throws(LocalInferenceError) {
        guard expertCount > 0 else { throw .corrupt("MoE: expert count must be > 0") }
        guard expertsUsed > 0, expertsUsed <= expertCount else {
            throw .corrupt("MoE: experts used (\(expertsUsed)) must be in 1...\(expertCount)")
        }
        if groupCount > 1 {
            guard groupCount < expertCount, expertCount % groupCount == 0 else {
                throw .corrupt("MoE: \(expertCount) experts cannot be split into \(groupCount) groups")
            }
            guard groupsUsed > 0, groupsUsed < groupCount else {
                throw .corrupt("MoE: groups used (\(groupsUsed)) must be in 1..<\(groupCount)")
            }
            guard groupsUsed * (expertCount / groupCount) >= expertsUsed else {
                throw .corrupt("MoE: \(groupsUsed) groups of \(expertCount / groupCount) cannot hold \(expertsUsed) experts")
            }
        }
    }
}

/// One routed expert and the weight its output is multiplied by.
public struct ExpertChoice: Sendable, Equatable, CustomStringConvertible {
    public var expert: Int
    public var weight: Float
    public init(expert: Int, weight: Float) {
        self.expert = expert
        self.weight = weight
    }
    public var description: String { "\(expert):\(weight)" }
}

public enum MoE {
    /// Router probabilities: softmax over all experts, or an independent sigmoid per expert.
    public static func probabilities(_ logits: [Float], _ gating: ExpertGating) -> [Float] {
        switch gating {
        case .softmax:
            let m = logits.max() ?? 0
            var e = logits.map { expf($0 - m) }
            var sum: Double = 0
            for v in e { sum += Double(v) }
            let inv = Float(1 / sum)
            for i in e.indices { e[i] *= inv }
            return e
        case .sigmoid:
            return logits.map { 1 / (1 + expf(-$0)) }
        }
    }

    /// Indices of the `k` largest values, largest first (lower index first on ties).
    public static func topK(_ values: [Float], _ k: Int) -> [Int] {
        var chosen: [Int] = []
        chosen.reserveCapacity(k)
        var taken = [Bool](repeating: false, count: values.count)
        for _ in 0..<min(k, values.count) {
            var best = -1
            for i in values.indices where !taken[i] {
                if best < 0 || values[i] > values[best] { best = i }
            }
            taken[best] = true
            chosen.append(best)
        }
        return chosen
    }

    /// The selection scores after group-limited routing: every expert outside the best
    /// `groupsUsed` groups (scored by the sum of their two best members) becomes -inf.
    public static func maskGroups(_ selection: [Float], groupCount: Int, groupsUsed: Int) -> [Float] {
        guard groupCount > 1 else { return selection }
        let size = selection.count / groupCount
        var groupScores: [Float] = []
        for g in 0..<groupCount {
            let members = Array(selection[(g * size)..<((g + 1) * size)])
            groupScores.append(topK(members, 2).reduce(0) { $0 + members[$1] })
        }
        var keep = [Bool](repeating: false, count: groupCount)
        for g in topK(groupScores, groupsUsed) { keep[g] = true }
        return selection.indices.map { keep[$0 / size] ? selection[$0] : -.infinity }
    }

    /// Which experts a token uses and with what weights, best first.
    ///
    /// `bias` (DeepSeek-V3's `exp_probs_b`) shifts only the choice: the weights are always
    /// taken from the unbiased probabilities.
    public static func route(logits: [Float], bias: [Float]?, routing r: MoERouting) -> [ExpertChoice] {
        precondition(logits.count == r.expertCount, "router logits for \(logits.count) experts, expected \(r.expertCount)")
        let probs = probabilities(logits, r.gating)
        var selection = probs
        if let bias {
            for i in selection.indices { selection[i] += bias[i] }
        }
        selection = maskGroups(selection, groupCount: r.groupCount, groupsUsed: r.groupsUsed)
        let chosen = topK(selection, r.expertsUsed)
        var weights = chosen.map { probs[$0] }
        if r.normalizeWeights {
            let sum = max(weights.reduce(0, +), 6.103515625e-5)
            weights = weights.map { $0 / sum }
        }
        if r.weightsScale != 0, r.weightsScale != 1 {
            weights = weights.map { $0 * r.weightsScale }
        }
        return zip(chosen, weights).map { ExpertChoice(expert: $0, weight: $1) }
    }
}

// MARK: weights

/// A SiLU-gated feed-forward network: down(silu(gate(x)) ⊙ up(x)).
struct SwiGLUWeights: Sendable {
    let gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    var hiddenSize: Int { gate.rows }
}

/// The weights of one MoE block, in place in the mapping.
struct MoEWeights: Sendable {
    let routing: MoERouting
    /// [n_expert × n_embd].
    let router: WeightMatrix
    let selectionBias: [Float]?
    /// One (gate, up, down) per expert: views into the stacked 3-D tensors.
    let experts: [SwiGLUWeights]
    let shared: SwiGLUWeights?
}

extension GGUFFile {
    /// A 2-D weight matrix of `rows` rows of `cols` elements, checked against the file.
    func weightMatrix(_ name: String, cols: Int, rows: Int) throws(LocalInferenceError) -> WeightMatrix {
        guard let t = tensor(name) else { throw .missingTensor(name: name) }
        guard let type = t.type, type.isComputable else { throw .unsupportedTensorType(tensor: name, typeCode: t.typeCode) }
        guard t.dims.count == 2 || (t.dims.count == 3 && t.dims[2] == 1), t.dims[0] == cols, t.dims[1] == rows else {
            throw .badTensorShape(name: name, expected: [cols, rows], actual: t.dims)
        }
        return WeightMatrix(name: name, type: type, data: file.base + t.fileOffset, rows: rows, cols: cols)
    }

    /// A stacked 3-D tensor {cols, rows, count} as `count` matrices of `rows` × `cols`.
    func weightMatrices(_ name: String, cols: Int, rows: Int, count: Int) throws(LocalInferenceError) -> [WeightMatrix] {
        guard let t = tensor(name) else { throw .missingTensor(name: name) }
        guard let type = t.type, type.isComputable else { throw .unsupportedTensorType(tensor: name, typeCode: t.typeCode) }
        guard t.dims == [cols, rows, count] else { throw .badTensorShape(name: name, expected: [cols, rows, count], actual: t.dims) }
        let base = file.base + t.fileOffset
        let bytes = rows * (cols / type.blockSize * type.bytesPerBlock)
        return (0..<count).map { WeightMatrix(name: "\(name)[\($0)]", type: type, data: base + $0 * bytes, rows: rows, cols: cols) }
    }

    /// A vector of `n` values, dequantized to floats.
    func floatVector(_ name: String, _ n: Int) throws(LocalInferenceError) -> [Float] {
        guard let t = tensor(name) else { throw .missingTensor(name: name) }
        guard let type = t.type, type.isComputable else { throw .unsupportedTensorType(tensor: name, typeCode: t.typeCode) }
        guard t.elementCount == n else { throw .badTensorShape(name: name, expected: [n], actual: t.dims) }
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { buf in
            if let p = buf.baseAddress { dequantize(type: type, file.base + t.fileOffset, n, p) }
        }
        return out
    }
}

// MARK: compute

/// Activation forms every matrix in `matrices` needs.
func activationKinds(_ matrices: [WeightMatrix]) -> Set<ActivationKind> {
    Set(matrices.map { $0.activationKind })
}

/// Quantizes the activation buffers into the forms `kinds` asks for (f32 is already there).
func prepareActivations(_ acts: [ActivationBuffer], _ kinds: Set<ActivationKind>) {
    for a in acts { a.quantize(for: kinds) }
}

/// out_j[t * stride_j + r] = W_j[r] · acts[t] for every job j and t < `count` (all of `acts`
/// when nil), the rows of all jobs spread over the threads in ranges of 16.
func parallelMatmul(
    _ runner: ParallelRunner, _ jobs: [(WeightMatrix, UnsafeMutablePointer<Float>, Int)],
    _ acts: [ActivationBuffer], count: Int? = nil
) {
    let n = count ?? acts.count
    precondition(n <= acts.count, "a matrix product over \(n) activations was given \(acts.count) buffers")
    guard n > 0 else { return }
    var offsets: [Int] = [0]
    for j in jobs { offsets.append(offsets[offsets.count - 1] + j.0.rows) }
    let total = offsets[offsets.count - 1]
    acts.withUnsafeBufferPointer { actsBuffer in
        guard let a = actsBuffer.baseAddress else { return }
        // One range per thread for a single activation (memory-bound: longest streams).
        runner.forRanges(total, granularity: 16, partsPerThread: n == 1 ? 1 : 4) { start, end in
            var r = start
            var j = 0
            while r < end {
                while offsets[j + 1] <= r { j += 1 }
                let (w, out, stride) = jobs[j]
                let stop = min(end, offsets[j + 1])
                w.multiply(rows: (r - offsets[j])..<(stop - offsets[j]), a, count: n, into: out, stride: stride)
                r = stop
            }
        }
    }
}

@inline(__always) func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

/// Scratch buffers and the thread pool for SwiGLU and MoE blocks over batches of up to
/// `maxBatch` tokens. Used by one caller at a time.
final class FeedForwardWorkspace {
    let runner: ParallelRunner
    let maxBatch: Int
    let embd: Int
    let gate: UnsafeMutablePointer<Float>
    let up: UnsafeMutablePointer<Float>
    let down: UnsafeMutablePointer<Float>
    let maxHidden: Int
    /// Hidden activations per hidden size.
    var hidden: [Int: [ActivationBuffer]] = [:]
    var logits: UnsafeMutablePointer<Float>
    let maxExperts: Int

    init(runner: ParallelRunner, maxBatch: Int, embd: Int, hiddenSizes: [Int], maxExperts: Int) {
        self.runner = runner
        self.maxBatch = maxBatch
        self.embd = embd
        maxHidden = max(1, hiddenSizes.max() ?? 1)
        self.maxExperts = max(1, maxExperts)
        gate = .allocate(capacity: maxBatch * maxHidden)
        up = .allocate(capacity: maxBatch * maxHidden)
        down = .allocate(capacity: maxBatch * embd)
        logits = .allocate(capacity: maxBatch * self.maxExperts)
        for h in Set(hiddenSizes) { hidden[h] = (0..<maxBatch).map { _ in ActivationBuffer(n: h) } }
    }

    deinit {
        gate.deallocate()
        up.deallocate()
        down.deallocate()
        logits.deallocate()
        for list in hidden.values { for a in list { a.deallocate() } }
    }

    /// For each t: out[t] = (accumulate ? out[t] : 0) + scale[t] · ffn(acts[t]), out rows of
    /// `embd` at `outRows[t]`. The activations must already be prepared for gate and up.
    func swiglu(
        _ f: SwiGLUWeights, _ acts: [ActivationBuffer], into out: UnsafeMutablePointer<Float>,
        rows outRows: [Int], scale: [Float]? = nil, accumulate: Bool
    ) {
        let n = acts.count
        guard n > 0 else { return }
        let h = f.hiddenSize
        guard let hid = hidden[h] else { preconditionFailure("no hidden buffers of size \(h)") }
        parallelMatmul(runner, [(f.gate, gate, h), (f.up, up, h)], acts)
        for t in 0..<n {
            let g = gate + t * h
            let u = up + t * h
            let dst = hid[t].f32
            for i in 0..<h { dst[i] = silu(g[i]) * u[i] }
        }
        let hiddenActs = Array(hid[0..<n])
        prepareActivations(hiddenActs, [f.down.activationKind])
        parallelMatmul(runner, [(f.down, down, embd)], hiddenActs)
        for t in 0..<n {
            let dst = out + outRows[t] * embd
            let src = down + t * embd
            let s = scale?[t] ?? 1
            if accumulate {
                for i in 0..<embd { dst[i] += s * src[i] }
            } else {
                for i in 0..<embd { dst[i] = s * src[i] }
            }
        }
    }

    /// The MoE block for every token in `acts` (f32 filled, normed): writes out[t] (rows of
    /// `embd`) and returns each token's routing.
    @discardableResult
    func moe(_ m: MoEWeights, _ acts: [ActivationBuffer], into out: UnsafeMutablePointer<Float>) -> [[ExpertChoice]] {
        let n = acts.count
        guard n > 0 else { return [] }
        var matrices = [m.router]
        for e in m.experts { matrices += [e.gate, e.up] }
        if let s = m.shared { matrices += [s.gate, s.up] }
        prepareActivations(acts, activationKinds(matrices))

        let ne = m.routing.expertCount
        parallelMatmul(runner, [(m.router, logits, ne)], acts)
        var routes: [[ExpertChoice]] = []
        var byExpert = [[(token: Int, weight: Float)]](repeating: [], count: ne)
        for t in 0..<n {
            let row = Array(UnsafeBufferPointer(start: logits + t * ne, count: ne))
            let choice = MoE.route(logits: row, bias: m.selectionBias, routing: m.routing)
            routes.append(choice)
            for c in choice { byExpert[c.expert].append((t, c.weight)) }
        }
        for i in 0..<(n * embd) { out[i] = 0 }
        // Each expert once per batch, over the tokens routed to it.
        for (e, users) in byExpert.enumerated() where !users.isEmpty {
            swiglu(
                m.experts[e], users.map { acts[$0.token] }, into: out, rows: users.map { $0.token },
                scale: users.map { $0.weight }, accumulate: true)
        }
        if let s = m.shared {
            swiglu(s, acts, into: out, rows: Array(0..<n), accumulate: true)
        }
        return routes
    }
}
