#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// DeepSeek-V2/V3 ("deepseek2" in GGUF), following llama.cpp's `llm_build_deepseek2`
// (llama-cpp-python 0.3.36):
//
//   x = token_embd[id]                                   (no embedding scale)
//   per layer:
//     h  = rms(x) · attn_norm
//     q  = q_b(rms(q_a(h)) · q_a_norm)  or  q(h)          [n_head × (nope + rope)]
//     ckv = kv_a_mqa(h) = [c (kv_lora) | k_pe (rope)]
//     c  = rms(c) · kv_a_norm;  k_pe, q_pe = RoPE (NORM: adjacent pairs) at the position
//     Multi-head Latent Attention, absorbed form (what llama.cpp runs for MLA GGUFs):
//       q_abs_h = W_kb,hᵀ q_nope_h                        [kv_lora]
//       score   = (q_abs_h · c_p + q_pe_h · k_pe_p) / sqrt(nope + rope)
//       o_h     = W_vb,h · Σ_p softmax(score)_p c_p       [v_dim]
//     x += attn_output([o_1 … o_H])
//     h = rms(x) · ffn_norm
//     x += dense SwiGLU (first `leading_dense_block_count` layers) or MoE + shared experts
//   logits = output(rms(x) · output_norm)
//
// The cache holds only c and k_pe per position (kv_lora + rope floats per layer), MLA's point.
// YaRN (rope.scaling.type = yarn, DeepSeek's long-context files) changes the rope angles
// and magnitudes and the attention scale, as llama.cpp does (YaRN.swift).
// Both GGUF layouts load: the split attn_k_b / attn_v_b of current converters (key_length_mla
// present) and the legacy unsplit attn_kv_b (decompressed per head at load time).

/// Hyper-parameters of a DeepSeek-2 model, read from the GGUF metadata.
public struct DeepSeek2Config: Sendable, Equatable {
    public var vocabularySize: Int
    public var embeddingLength: Int
    public var layerCount: Int
    public var denseLeadingLayers: Int
    /// Hidden size of the dense (leading) layers' FFN.
    public var feedForwardLength: Int
    public var headCount: Int
    /// 0: plain attn_q (DeepSeek-V2-Lite); otherwise the q-LoRA rank.
    public var qLoraRank: Int
    public var kvLoraRank: Int
    public var qkNopeDim: Int
    public var qkRopeDim: Int
    public var valueDim: Int
    /// attn_k_b / attn_v_b (true) or the legacy attn_kv_b (false).
    public var splitMLA: Bool
    public var rmsEps: Float
    public var ropeBase: Float
    public var expertFeedForwardLength: Int
    public var sharedExpertCount: Int
    public var routing: MoERouting
    public var contextLength: Int
    /// YaRN context extension (`rope.scaling.type = yarn`), nil for plain RoPE.
    public var yarn: YaRNScaling?

    public var queryHeadDim: Int { qkNopeDim + qkRopeDim }
    /// Floats cached per position and layer: the latent c and the shared rope key.
    public var cacheRowLength: Int { kvLoraRank + qkRopeDim }
    /// Attention scale: 1/sqrt(nope + rope), times YaRN's mscale² when YaRN is on.
    public var attentionScale: Float {
        guard let yarn else { return 1 / Float(queryHeadDim).squareRoot() }
        return yarn.attentionMScale * yarn.attentionMScale / Float(queryHeadDim).squareRoot()
    }

    public init(gguf: GGUFFile) throws(LocalInferenceError) {
        let arch = try gguf.string("general.architecture")
        guard arch == "deepseek2" else { throw .unsupportedArchitecture(arch) }
        let a = "deepseek2."
        func int(_ key: String, _ why: String) throws(LocalInferenceError) -> Int {
            guard let v = gguf.metadata[a + key]?.intValue else {
                throw .missingMetadata(key: a + key, expected: "an integer (\(why))")
            }
            return v
        }
        func optInt(_ key: String) throws(LocalInferenceError) -> Int? {
            guard let v = gguf.metadata[a + key] else { return nil }
            guard let i = v.intValue else { throw .missingMetadata(key: a + key, expected: "an integer") }
            return i
        }
        func optFloat(_ key: String) throws(LocalInferenceError) -> Float? {
            guard let v = gguf.metadata[a + key] else { return nil }
            guard let f = v.floatValue else { throw .missingMetadata(key: a + key, expected: "a number") }
            return f
        }
        embeddingLength = try int("embedding_length", "hidden size")
        layerCount = try int("block_count", "number of layers")
        headCount = try int("attention.head_count", "query heads")
        guard let eps = try optFloat("attention.layer_norm_rms_epsilon") else {
            throw .missingMetadata(key: a + "attention.layer_norm_rms_epsilon", expected: "a number (RMSNorm epsilon)")
        }
        rmsEps = eps
        denseLeadingLayers = try optInt("leading_dense_block_count") ?? 0
        feedForwardLength = denseLeadingLayers > 0 ? try int("feed_forward_length", "dense FFN size") : (try optInt("feed_forward_length") ?? 0)
        qLoraRank = try optInt("attention.q_lora_rank") ?? 0
        kvLoraRank = try int("attention.kv_lora_rank", "MLA latent size")
        qkRopeDim = try int("rope.dimension_count", "decoupled RoPE dimensions per head")
        if let kMLA = try optInt("attention.key_length_mla"), let vMLA = try optInt("attention.value_length_mla") {
            splitMLA = true
            qkNopeDim = kMLA - qkRopeDim
            valueDim = vMLA
        } else {
            splitMLA = false
            qkNopeDim = try int("attention.key_length", "query/key head size, nope + rope") - qkRopeDim
            valueDim = try int("attention.value_length", "value head size")
        }
        ropeBase = try optFloat("rope.freq_base") ?? 10_000
        contextLength = try optInt("context_length") ?? 4096
        // As llama.cpp: the type defaults to linear, a factor of 0 (or none) means unscaled.
        let scalingType = gguf.metadata[a + "rope.scaling.type"]?.stringValue ?? "linear"
        let scalingFactor = try optFloat("rope.scaling.factor") ?? 0
        yarn = nil
        if scalingType != "none", scalingFactor != 0, scalingFactor != 1 {
            guard scalingType == "yarn" else {
                throw .unsupportedFeature(architecture: "deepseek2", feature: "\(scalingType) RoPE scaling (factor \(scalingFactor))")
            }
            guard scalingFactor > 0 else { throw .corrupt("deepseek2.rope.scaling.factor is \(scalingFactor), not positive") }
            let original = try optInt("rope.scaling.original_context_length") ?? contextLength
            guard original > 0 else { throw .corrupt("deepseek2.rope.scaling.original_context_length is \(original)") }
            yarn = YaRNScaling(
                factor: scalingFactor, originalContextLength: original, ropeDimensions: qkRopeDim, ropeBase: ropeBase,
                logMultiplierMetadata: try optFloat("rope.scaling.yarn_log_multiplier") ?? 0,
                attentionFactor: try optFloat("rope.scaling.attn_factor") ?? 1)
        }
        if let t = try optFloat("attention.temperature_scale"), t != 0 {
            throw .unsupportedFeature(architecture: "deepseek2", feature: "attention temperature scaling")
        }
        expertFeedForwardLength = try int("expert_feed_forward_length", "hidden size of one expert")
        sharedExpertCount = try int("expert_shared_count", "shared experts")
        let gatingCode = try optInt("expert_gating_func") ?? 0
        let gating: ExpertGating
        switch gatingCode {
        case 0, 1: gating = .softmax  // 0 (absent): llama.cpp's default for DeepSeek V2 GGUFs
        case 2: gating = .sigmoid
        default: throw .unsupportedFeature(architecture: "deepseek2", feature: "expert_gating_func \(gatingCode)")
        }
        routing = MoERouting(
            expertCount: try int("expert_count", "routed experts"),
            expertsUsed: try int("expert_used_count", "experts per token"),
            gating: gating,
            groupCount: try optInt("expert_group_count") ?? 0,
            groupsUsed: try optInt("expert_group_used_count") ?? 0,
            normalizeWeights: gguf.metadata[a + "expert_weights_norm"]?.boolValue ?? false,
            weightsScale: try optFloat("expert_weights_scale") ?? 0)
        guard let tokenCount = gguf.metadata["tokenizer.ggml.tokens"]?.arrayCount else {
            throw .missingMetadata(key: "tokenizer.ggml.tokens", expected: "an array of strings")
        }
        vocabularySize = tokenCount
        guard embeddingLength > 0, layerCount > 0, headCount > 0, kvLoraRank > 0, qkRopeDim > 0, qkRopeDim % 2 == 0,
            qkNopeDim > 0, valueDim > 0, qLoraRank >= 0, expertFeedForwardLength > 0, sharedExpertCount >= 0,
            denseLeadingLayers >= 0, denseLeadingLayers <= layerCount
        else {
            throw .corrupt("inconsistent deepseek2 hyper-parameters")
        }
        if denseLeadingLayers < layerCount { try routing.validate() }
    }
}

/// Owned float storage that outlives the `WeightMatrix` views made on it.
///
/// `@unchecked Sendable` is sound: the buffer is filled once while the model loads,
/// before any view of it is shared, and only read afterwards; it is freed only when the
/// last model holding it goes away.
final class FloatStorage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(count: Int) {
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }
    deinit { pointer.deallocate() }
}

struct DeepSeek2Layer: Sendable {
    let attnNorm: [Float]
    let qA: WeightMatrix?, qANorm: [Float], qB: WeightMatrix?
    let q: WeightMatrix?
    let kvA: WeightMatrix
    let kvANorm: [Float]
    /// Per head: [kv_lora × nope], so q_abs = kAbsorb · q_nope.
    let kAbsorb: [WeightMatrix]
    /// Per head: [v_dim × kv_lora], so o = vUp · latent.
    let vUp: [WeightMatrix]
    let o: WeightMatrix
    let ffnNorm: [Float]
    let dense: SwiGLUWeights?
    let moe: MoEWeights?
    let storage: FloatStorage?
}

/// A loaded DeepSeek-2 model. Immutable; shared by every sequence and thread.
public final class DeepSeek2Model: Sendable {
    public let config: DeepSeek2Config
    public let tokenizer: SentencePieceTokenizer
    /// The mapping the weight matrices point into; kept alive with the model. (The parsed
    /// metadata is not kept: its 262k-entry vocabulary arrays alone are tens of MB.)
    let file: MappedFile
    let tokenEmbedding: WeightMatrix
    let output: WeightMatrix
    let outputNorm: [Float]
    let layers: [DeepSeek2Layer]

    public convenience init(path: String) throws(LocalInferenceError) {
        try self.init(gguf: try GGUFFile(path: path))
    }

    public init(gguf: GGUFFile) throws(LocalInferenceError) {
        let c = try DeepSeek2Config(gguf: gguf)
        config = c
        self.file = gguf.file
        tokenizer = try SentencePieceTokenizer(gguf: gguf)
        let e = c.embeddingLength
        let h = c.headCount
        let nope = c.qkNopeDim
        let kvl = c.kvLoraRank
        let vd = c.valueDim
        tokenEmbedding = try gguf.weightMatrix("token_embd.weight", cols: e, rows: c.vocabularySize)
        output =
            gguf.tensor("output.weight") != nil
            ? try gguf.weightMatrix("output.weight", cols: e, rows: c.vocabularySize) : tokenEmbedding
        outputNorm = try gguf.floatVector("output_norm.weight", e)
        var layers: [DeepSeek2Layer] = []
        for il in 0..<c.layerCount {
            let p = "blk.\(il)."
            var qA: WeightMatrix?
            var qB: WeightMatrix?
            var q: WeightMatrix?
            var qANorm: [Float] = []
            if c.qLoraRank > 0 {
                qA = try gguf.weightMatrix(p + "attn_q_a.weight", cols: e, rows: c.qLoraRank)
                qANorm = try gguf.floatVector(p + "attn_q_a_norm.weight", c.qLoraRank)
                qB = try gguf.weightMatrix(p + "attn_q_b.weight", cols: c.qLoraRank, rows: h * c.queryHeadDim)
            } else {
                q = try gguf.weightMatrix(p + "attn_q.weight", cols: e, rows: h * c.queryHeadDim)
            }
            var kAbsorb: [WeightMatrix]
            var vUp: [WeightMatrix]
            var storage: FloatStorage?
            if c.splitMLA {
                kAbsorb = try gguf.weightMatrices(p + "attn_k_b.weight", cols: nope, rows: kvl, count: h)
                vUp = try gguf.weightMatrices(p + "attn_v_b.weight", cols: kvl, rows: vd, count: h)
                storage = nil
            } else {
                // Legacy attn_kv_b: per head, nope rows of K then v_dim rows of V (each kv_lora
                // long). V rows are used in place; K is transposed into owned floats.
                let name = p + "attn_kv_b.weight"
                let kvb = try gguf.weightMatrix(name, cols: kvl, rows: h * (nope + vd))
                let rowBytes = kvl / kvb.type.blockSize * kvb.type.bytesPerBlock
                vUp = (0..<h).map { hh in
                    WeightMatrix(
                        name: "\(name)[v\(hh)]", type: kvb.type, data: kvb.data + (hh * (nope + vd) + nope) * rowBytes,
                        rows: vd, cols: kvl)
                }
                let store = FloatStorage(count: h * kvl * nope)
                var row = [Float](repeating: 0, count: kvl)
                for hh in 0..<h {
                    for j in 0..<nope {
                        row.withUnsafeMutableBufferPointer { buffer in
                            guard let base = buffer.baseAddress else { return }
                            kvb.dequantizeRow(hh * (nope + vd) + j, into: base)
                        }
                        for r in 0..<kvl { store.pointer[(hh * kvl + r) * nope + j] = row[r] }
                    }
                }
                kAbsorb = (0..<h).map { hh in
                    WeightMatrix(
                        name: "\(name)[k\(hh)]ᵀ", type: .f32, data: UnsafeRawPointer(store.pointer + hh * kvl * nope),
                        rows: kvl, cols: nope)
                }
                storage = store
            }
            var dense: SwiGLUWeights?
            var moe: MoEWeights?
            if il < c.denseLeadingLayers {
                dense = SwiGLUWeights(
                    gate: try gguf.weightMatrix(p + "ffn_gate.weight", cols: e, rows: c.feedForwardLength),
                    up: try gguf.weightMatrix(p + "ffn_up.weight", cols: e, rows: c.feedForwardLength),
                    down: try gguf.weightMatrix(p + "ffn_down.weight", cols: c.feedForwardLength, rows: e))
            } else {
                let ne = c.routing.expertCount
                let f = c.expertFeedForwardLength
                let gates = try gguf.weightMatrices(p + "ffn_gate_exps.weight", cols: e, rows: f, count: ne)
                let ups = try gguf.weightMatrices(p + "ffn_up_exps.weight", cols: e, rows: f, count: ne)
                let downs = try gguf.weightMatrices(p + "ffn_down_exps.weight", cols: f, rows: e, count: ne)
                var shared: SwiGLUWeights?
                if c.sharedExpertCount > 0 {
                    let fs = f * c.sharedExpertCount
                    shared = SwiGLUWeights(
                        gate: try gguf.weightMatrix(p + "ffn_gate_shexp.weight", cols: e, rows: fs),
                        up: try gguf.weightMatrix(p + "ffn_up_shexp.weight", cols: e, rows: fs),
                        down: try gguf.weightMatrix(p + "ffn_down_shexp.weight", cols: fs, rows: e))
                }
                moe = MoEWeights(
                    routing: c.routing,
                    router: try gguf.weightMatrix(p + "ffn_gate_inp.weight", cols: e, rows: ne),
                    selectionBias: gguf.tensor(p + "exp_probs_b.bias") != nil ? try gguf.floatVector(p + "exp_probs_b.bias", ne) : nil,
                    experts: (0..<ne).map { SwiGLUWeights(gate: gates[$0], up: ups[$0], down: downs[$0]) },
                    shared: shared)
            }
            layers.append(
                DeepSeek2Layer(
                    attnNorm: try gguf.floatVector(p + "attn_norm.weight", e),
                    qA: qA, qANorm: qANorm, qB: qB, q: q,
                    kvA: try gguf.weightMatrix(p + "attn_kv_a_mqa.weight", cols: e, rows: c.cacheRowLength),
                    kvANorm: try gguf.floatVector(p + "attn_kv_a_norm.weight", kvl),
                    kAbsorb: kAbsorb, vUp: vUp,
                    o: try gguf.weightMatrix(p + "attn_output.weight", cols: h * vd, rows: e),
                    ffnNorm: try gguf.floatVector(p + "ffn_norm.weight", e),
                    dense: dense, moe: moe, storage: storage))
        }
        self.layers = layers
    }
}

/// The MLA cache of one sequence: per layer and position, the normed latent c (kv_lora) and
/// the roped shared key k_pe (rope dims), in fp32.
public final class DeepSeek2Cache {
    public let capacity: Int
    let rowLength: Int
    let data: UnsafeMutablePointer<Float>
    public internal(set) var count = 0

    public init(config: DeepSeek2Config, capacity: Int) {
        self.capacity = capacity
        rowLength = config.cacheRowLength
        data = .allocate(capacity: config.layerCount * capacity * rowLength)
    }

    deinit { data.deallocate() }

    public func truncate(to position: Int) { count = min(count, max(0, position)) }

    @inline(__always) func row(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float> {
        data + (layer * capacity + pos) * rowLength
    }
}

/// A token for `DeepSeek2Context`.
public typealias DeepSeek2BatchToken = ForwardToken<DeepSeek2Cache>

/// Runs the DeepSeek-2 forward pass over batches of tokens from one or several sequences.
/// Owns scratch buffers, so one caller at a time; the model is shared.
public final class DeepSeek2Context {
    public let model: DeepSeek2Model
    public let maxBatch: Int
    let cfg: DeepSeek2Config
    let runner: ParallelRunner
    let ffn: FeedForwardWorkspace

    let x: UnsafeMutablePointer<Float>
    let qa: UnsafeMutablePointer<Float>
    let q: UnsafeMutablePointer<Float>
    let kva: UnsafeMutablePointer<Float>
    let attn: UnsafeMutablePointer<Float>
    let proj: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    /// Per (token, head): q_abs (kv_lora) then scores (span).
    var scratch: UnsafeMutablePointer<Float>
    var scratchStride: Int
    let actE: [ActivationBuffer]
    let actQA: [ActivationBuffer]
    let actO: [ActivationBuffer]
    /// Per (token, head): q_nope and the attended latent.
    let actNope: [ActivationBuffer]
    let actLatent: [ActivationBuffer]

    /// Routing of the last forward's tokens, per MoE layer (for tests and diagnostics).
    public private(set) var lastRoutes: [Int: [[ExpertChoice]]] = [:]

    public init(model: DeepSeek2Model, maxBatch: Int = 32, threads: Int? = nil) {
        self.model = model
        cfg = model.config
        self.maxBatch = max(1, maxBatch)
        runner = ParallelRunner(threads: threads)
        let b = self.maxBatch
        let e = cfg.embeddingLength
        let h = cfg.headCount
        ffn = FeedForwardWorkspace(
            runner: runner, maxBatch: b, embd: e,
            hiddenSizes: [
                cfg.feedForwardLength, cfg.expertFeedForwardLength,
                cfg.expertFeedForwardLength * cfg.sharedExpertCount,
            ].filter { $0 > 0 },
            maxExperts: cfg.routing.expertCount)
        x = .allocate(capacity: b * e)
        qa = .allocate(capacity: b * max(1, cfg.qLoraRank))
        q = .allocate(capacity: b * h * cfg.queryHeadDim)
        kva = .allocate(capacity: b * cfg.cacheRowLength)
        attn = .allocate(capacity: b * h * cfg.valueDim)
        proj = .allocate(capacity: b * e)
        logits = .allocate(capacity: b * cfg.vocabularySize)
        scratchStride = cfg.kvLoraRank + 256
        scratch = .allocate(capacity: b * h * scratchStride)
        actE = (0..<b).map { _ in ActivationBuffer(n: e) }
        let c = model.config
        actQA = (0..<b).map { _ in ActivationBuffer(n: max(1, c.qLoraRank)) }
        actO = (0..<b).map { _ in ActivationBuffer(n: h * c.valueDim) }
        actNope = (0..<(b * h)).map { _ in ActivationBuffer(n: c.qkNopeDim) }
        actLatent = (0..<(b * h)).map { _ in ActivationBuffer(n: c.kvLoraRank) }
    }

    deinit {
        for p in [x, qa, q, kva, attn, proj, logits, scratch] { p.deallocate() }
        for a in actE + actQA + actO + actNope + actLatent { a.deallocate() }
    }

    public func makeCache(capacity: Int) -> DeepSeek2Cache {
        DeepSeek2Cache(config: cfg, capacity: max(1, min(capacity, cfg.contextLength)))
    }

    /// Runs the batch (in chunks of `maxBatch`) and returns the logits of the tokens that
    /// asked for them, in batch order.
    public func forward(_ batch: [DeepSeek2BatchToken]) throws(LocalInferenceError) -> [[Float]] {
        for t in batch {
            guard t.token >= 0, Int(t.token) < cfg.vocabularySize else { throw .invalidToken(t.token) }
            guard t.position >= 0, t.position < t.cache.capacity else { throw .contextFull(limit: t.cache.capacity) }
        }
        var results: [[Float]] = []
        var start = 0
        while start < batch.count {
            let chunk = Array(batch[start..<min(batch.count, start + maxBatch)])
            results += forwardChunk(chunk)
            start += chunk.count
        }
        return results
    }

    /// Greedy decoding: feeds `prompt` to a fresh sequence, then appends the argmax token
    /// up to `maxTokens` times (stopping after EOS). Returns the continuation.
    public func greedy(prompt: [Int32], maxTokens: Int) throws(LocalInferenceError) -> [Int32] {
        guard !prompt.isEmpty else { throw .invalidArgument("the prompt has no tokens") }
        let cache = makeCache(capacity: prompt.count + maxTokens)
        let batch = prompt.enumerated().map { i, t in
            DeepSeek2BatchToken(cache: cache, token: t, position: i, wantsLogits: i == prompt.count - 1)
        }
        var logits = try forward(batch)[0]
        var out: [Int32] = []
        while out.count < maxTokens {
            let next = Sampler.argmax(logits)
            out.append(next)
            if next == model.tokenizer.eos || out.count == maxTokens { break }
            logits = try forward([DeepSeek2BatchToken(cache: cache, token: next, position: cache.count, wantsLogits: true)])[0]
        }
        return out
    }

    private func forwardChunk(_ batch: [DeepSeek2BatchToken]) -> [[Float]] {
        let n = batch.count
        let e = cfg.embeddingLength
        let h = cfg.headCount
        let qd = cfg.queryHeadDim
        let nope = cfg.qkNopeDim
        let rd = cfg.qkRopeDim
        let kvl = cfg.kvLoraRank
        let row = cfg.cacheRowLength
        let vd = cfg.valueDim
        for (t, item) in batch.enumerated() {
            model.tokenEmbedding.dequantizeRow(Int(item.token), into: x + t * e)
        }
        let maxSpan = batch.map { $0.position + 1 }.max() ?? 1
        if kvl + maxSpan > scratchStride {
            scratch.deallocate()
            scratchStride = kvl + max(maxSpan, 2 * (scratchStride - kvl))
            scratch = .allocate(capacity: maxBatch * h * scratchStride)
        }
        let acts = Array(actE[0..<n])
        var routes: [Int: [[ExpertChoice]]] = [:]

        for (il, layer) in model.layers.enumerated() {
            // Projections: q (through the q-LoRA when present) and the compressed kv.
            for t in 0..<n { rmsNorm(x + t * e, layer.attnNorm, actE[t].f32, e) }
            if let qA = layer.qA, let qB = layer.qB {
                prepareActivations(acts, activationKinds([qA, layer.kvA]))
                parallelMatmul(runner, [(qA, qa, cfg.qLoraRank), (layer.kvA, kva, row)], acts)
                let qActs = Array(actQA[0..<n])
                for t in 0..<n { rmsNorm(qa + t * cfg.qLoraRank, layer.qANorm, actQA[t].f32, cfg.qLoraRank) }
                prepareActivations(qActs, [qB.activationKind])
                parallelMatmul(runner, [(qB, q, h * qd)], qActs)
            } else if let wq = layer.q {
                prepareActivations(acts, activationKinds([wq, layer.kvA]))
                parallelMatmul(runner, [(wq, q, h * qd), (layer.kvA, kva, row)], acts)
            }
            // Cache c (normed) and k_pe (roped); rope q_pe.
            for (t, item) in batch.enumerated() {
                let dst = item.cache.row(il, item.position)
                let src = kva + t * row
                rmsNorm(src, layer.kvANorm, dst, kvl)
                for i in 0..<rd { dst[kvl + i] = src[kvl + i] }
                rope(dst + kvl, rd, item.position)
                for hh in 0..<h { rope(q + t * h * qd + hh * qd + nope, rd, item.position) }
            }
            attention(batch, layer: layer, il: il)
            let oActs = Array(actO[0..<n])
            for t in 0..<n { actO[t].f32.update(from: attn + t * h * vd, count: h * vd) }
            prepareActivations(oActs, [layer.o.activationKind])
            parallelMatmul(runner, [(layer.o, proj, e)], oActs)
            for i in 0..<(n * e) { x[i] += proj[i] }

            // Feed-forward: dense SwiGLU or MoE with shared experts.
            for t in 0..<n { rmsNorm(x + t * e, layer.ffnNorm, actE[t].f32, e) }
            if let moe = layer.moe {
                routes[il] = ffn.moe(moe, acts, into: proj)
            } else if let dense = layer.dense {
                prepareActivations(acts, activationKinds([dense.gate, dense.up]))
                ffn.swiglu(dense, acts, into: proj, rows: Array(0..<n), accumulate: false)
            }
            for i in 0..<(n * e) { x[i] += proj[i] }
        }
        lastRoutes = routes
        for item in batch { item.cache.count = max(item.cache.count, item.position + 1) }

        let wanted = batch.indices.filter { batch[$0].wantsLogits }
        guard !wanted.isEmpty else { return [] }
        for (j, t) in wanted.enumerated() { rmsNorm(x + t * e, model.outputNorm, actE[j].f32, e) }
        let outActs = Array(actE[0..<wanted.count])
        prepareActivations(outActs, [model.output.activationKind])
        let vocab = cfg.vocabularySize
        parallelMatmul(runner, [(model.output, logits, vocab)], outActs)
        return (0..<wanted.count).map { j in Array(UnsafeBufferPointer(start: logits + j * vocab, count: vocab)) }
    }

    /// Absorbed MLA for every (token, head): scores against the cached latents and rope keys,
    /// softmax, weighted latent, then up-projection to the head's value.
    private func attention(_ batch: [DeepSeek2BatchToken], layer: DeepSeek2Layer, il: Int) {
        let h = cfg.headCount
        let qd = cfg.queryHeadDim
        let nope = cfg.qkNopeDim
        let rd = cfg.qkRopeDim
        let kvl = cfg.kvLoraRank
        let vd = cfg.valueDim
        let scale = cfg.attentionScale
        let stride = scratchStride
        let scratch = self.scratch
        runner.forRanges(batch.count * h) { start, end in
            for item in start..<end {
                let t = item / h
                let hh = item % h
                let tok = batch[t]
                let qh = q + t * h * qd + hh * qd
                let nopeAct = actNope[item]
                nopeAct.f32.update(from: qh, count: nope)
                let kA = layer.kAbsorb[hh]
                if kA.activationKind == .q8_0 { nopeAct.quantizeQ8_0() }
                if kA.activationKind == .q8_K { nopeAct.quantizeQ8_K() }
                let qAbs = scratch + item * stride
                for r in 0..<kvl { qAbs[r] = kA.dot(row: r, nopeAct) }
                let scores = qAbs + kvl
                var m = -Float.infinity
                for p in 0...tok.position {
                    let c = tok.cache.row(il, p)
                    var s: Float = 0
                    for i in 0..<kvl { s = s.addingProduct(qAbs[i], c[i]) }
                    for i in 0..<rd { s = s.addingProduct(qh[nope + i], c[kvl + i]) }
                    s *= scale
                    scores[p] = s
                    m = max(m, s)
                }
                var sum: Float = 0
                for p in 0...tok.position {
                    scores[p] = expf(scores[p] - m)
                    sum += scores[p]
                }
                let latent = actLatent[item]
                let lat = latent.f32
                for i in 0..<kvl { lat[i] = 0 }
                for p in 0...tok.position {
                    let w = scores[p] / sum
                    let c = tok.cache.row(il, p)
                    for i in 0..<kvl { lat[i] = lat[i].addingProduct(w, c[i]) }
                }
                let vU = layer.vUp[hh]
                if vU.activationKind == .q8_0 { latent.quantizeQ8_0() }
                if vU.activationKind == .q8_K { latent.quantizeQ8_K() }
                let out = attn + t * h * vd + hh * vd
                for i in 0..<vd { out[i] = vU.dot(row: i, latent) }
            }
        }
    }

    /// y = x / sqrt(mean(x²) + eps) * w.
    @inline(__always)
    private func rmsNorm(_ xp: UnsafePointer<Float>, _ w: [Float], _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var sum: Double = 0
        for i in 0..<n { sum += Double(xp[i] * xp[i]) }
        let s = 1 / (Float(sum / Double(n)) + cfg.rmsEps).squareRoot()
        w.withUnsafeBufferPointer { wp in
            for i in 0..<n { y[i] = xp[i] * s * wp[i] }
        }
    }

    /// NORM-style RoPE (ggml's default mode): element 2i pairs with 2i+1, theta = pos ·
    /// base^(-2i/n), computed as ggml does (multiplied step by step in fp32); YaRN's angles
    /// and magnitude when the model uses it.
    @inline(__always)
    private func rope(_ xp: UnsafeMutablePointer<Float>, _ n: Int, _ pos: Int) {
        if let yarn = cfg.yarn {
            yarn.rotate(xp, n, pos, base: cfg.ropeBase)
            return
        }
        let thetaScale = powf(cfg.ropeBase, -2 / Float(n))
        var theta = Float(pos)
        for i in 0..<(n / 2) {
            let c = cosf(theta)
            let s = sinf(theta)
            let x0 = xp[2 * i]
            let x1 = xp[2 * i + 1]
            xp[2 * i] = x0 * c - x1 * s
            xp[2 * i + 1] = x0 * s + x1 * c
            theta *= thetaScale
        }
    }
}
