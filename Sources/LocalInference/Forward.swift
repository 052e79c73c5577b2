#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One token of a forward batch: which sequence (its cache), which token, at which position,
/// and whether its logits are wanted (the last prompt token, every decoded token). Generic
/// over the cache type, so each architecture's context takes its own caches
/// (`BatchToken`, `DeepSeek2BatchToken`) and `LanguageModelContext` any of them
/// (`SequenceToken`).
public struct ForwardToken<Cache> {
    public let cache: Cache
    public let token: Int32
    public let position: Int
    public let wantsLogits: Bool

    public init(cache: Cache, token: Int32, position: Int, wantsLogits: Bool) {
        self.cache = cache
        self.token = token
        self.position = position
        self.wantsLogits = wantsLogits
    }
}

/// A token for Gemma 3's `InferenceContext`.
public typealias BatchToken = ForwardToken<KVCache>

/// Runs the Gemma 3 forward pass over batches of tokens, from one or several sequences.
///
/// Owns scratch buffers sized for `maxBatch` tokens, so it is used by one caller at a time
/// (it is not Sendable); the model it reads is shared. A batch may mix sequences: every
/// weight matrix is read once per batch, which is what makes batched decoding cheaper than
/// decoding the sequences one after another.
public final class InferenceContext {
    public let model: Gemma3Model
    public let maxBatch: Int
    let runner: ParallelRunner
    let cfg: Gemma3Config

    // Per-token scratch, [maxBatch × dim].
    let x: UnsafeMutablePointer<Float>
    let q: UnsafeMutablePointer<Float>
    let k: UnsafeMutablePointer<Float>
    let v: UnsafeMutablePointer<Float>
    let attn: UnsafeMutablePointer<Float>
    let proj: UnsafeMutablePointer<Float>
    let gate: UnsafeMutablePointer<Float>
    let up: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>
    /// Per (token, head) work item of the attention: the query rounded to fp16, `headDim` floats.
    let queries: UnsafeMutablePointer<Float>
    let actE: [ActivationBuffer]
    let actQ: [ActivationBuffer]
    let actF: [ActivationBuffer]

    public init(model: Gemma3Model, maxBatch: Int = 64, threads: Int? = nil) {
        self.model = model
        self.maxBatch = max(1, maxBatch)
        self.cfg = model.config
        self.runner = ParallelRunner(threads: threads)
        let b = self.maxBatch
        let e = cfg.embeddingLength
        let qd = cfg.headCount * cfg.headDim
        let kvd = cfg.kvHeadCount * cfg.headDim
        let ff = cfg.feedForwardLength
        x = .allocate(capacity: b * e)
        q = .allocate(capacity: b * qd)
        k = .allocate(capacity: b * kvd)
        v = .allocate(capacity: b * kvd)
        attn = .allocate(capacity: b * qd)
        proj = .allocate(capacity: b * e)
        gate = .allocate(capacity: b * ff)
        up = .allocate(capacity: b * ff)
        logits = .allocate(capacity: b * cfg.vocabularySize)
        queries = .allocate(capacity: b * cfg.headCount * cfg.headDim)
        actE = (0..<b).map { _ in ActivationBuffer(n: e) }
        actQ = (0..<b).map { _ in ActivationBuffer(n: qd) }
        actF = (0..<b).map { _ in ActivationBuffer(n: ff) }
    }

    deinit {
        for p in [x, q, k, v, attn, proj, gate, up, logits, queries] { p.deallocate() }
        for a in actE + actQ + actF { a.deallocate() }
    }

    /// A fresh cache for one sequence of up to `capacity` tokens.
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(
            owner: ObjectIdentifier(model), layers: model.layers, config: cfg,
            capacity: max(1, min(capacity, cfg.contextLength)), batchLimit: maxBatch)
    }

    /// Runs the batch (split into chunks of `maxBatch`) and returns the logits of the tokens
    /// that asked for them, in batch order. Each cache's `count` advances past its tokens.
    ///
    /// A sequence's tokens must continue it: positions `count, count + 1, …` of its cache, in
    /// batch order (the sliding-window ring only keeps the positions those tokens can see).
    public func forward(_ batch: [BatchToken]) throws(LocalInferenceError) -> [[Float]] {
        var next: [ObjectIdentifier: Int] = [:]
        for t in batch {
            guard t.token >= 0, Int(t.token) < cfg.vocabularySize else { throw .invalidToken(t.token) }
            guard t.position >= 0, t.position < t.cache.capacity else { throw .contextFull(limit: t.cache.capacity) }
            guard t.cache.owner == ObjectIdentifier(model) else {
                throw .invalidArgument("a cache made for another model was passed to this model's context; make it with this context's makeCache")
            }
            guard t.cache.batchLimit >= maxBatch else {
                throw .invalidArgument(
                    "a cache made for batches of \(t.cache.batchLimit) tokens cannot take batches of \(maxBatch); make it with this context's makeCache"
                )
            }
            let sequence = ObjectIdentifier(t.cache)
            let expected = next[sequence] ?? t.cache.count
            guard t.position == expected else {
                throw .invalidArgument("a sequence's tokens must continue it: expected position \(expected), got \(t.position)")
            }
            next[sequence] = expected + 1
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

    private func forwardChunk(_ batch: [BatchToken]) -> [[Float]] {
        let n = batch.count
        let e = cfg.embeddingLength
        let hd = cfg.headDim
        let qd = cfg.headCount * hd
        let kvd = cfg.kvHeadCount * hd
        let ff = cfg.feedForwardLength
        let scale = Float(e).squareRoot()

        for (t, item) in batch.enumerated() {
            let row = x + t * e
            model.tokenEmbedding.dequantizeRow(Int(item.token), into: row)
            for i in 0..<e { row[i] *= scale }
        }

        for (il, layer) in model.layers.enumerated() {
            // Attention block: h = x + post_attention_norm(attn(attn_norm(x)))
            let qkvKinds = [layer.q.activationKind, layer.k.activationKind, layer.v.activationKind]
            perToken(n) { t in
                rmsNorm(x + t * e, layer.attnNorm, actE[t].f32, e)
                actE[t].quantize(for: qkvKinds)
            }
            matmul([(layer.q, q, qd), (layer.k, k, kvd), (layer.v, v, kvd)], actE, n)

            perToken(n) { t in
                let item = batch[t]
                let base = layer.isGlobal ? cfg.ropeBaseGlobal : cfg.ropeBaseLocal
                for h in 0..<cfg.headCount {
                    let qh = q + t * qd + h * hd
                    rmsNorm(qh, layer.qNorm, qh, hd)
                    rope(qh, hd, item.position, base)
                    for i in 0..<hd { qh[i] *= cfg.attentionScale }
                }
                let kRow = item.cache.kRow(il, item.position)
                let vRow = item.cache.vRow(il, item.position)
                for h in 0..<cfg.kvHeadCount {
                    let kh = k + t * kvd + h * hd
                    rmsNorm(kh, layer.kNorm, kh, hd)
                    rope(kh, hd, item.position, base)
                }
                for i in 0..<kvd {
                    kRow[i] = Float16(k[t * kvd + i])
                    vRow[i] = Float16(v[t * kvd + i])
                }
            }
            attention(batch, layer: il, global: layer.isGlobal)
            perToken(n) { t in
                actQ[t].f32.update(from: attn + t * qd, count: qd)
                actQ[t].quantize(for: [layer.o.activationKind])
            }
            matmul([(layer.o, proj, e)], actQ, n)

            // Feed-forward block: out = h + post_ffw_norm(down(gelu(gate(ffn_norm(h))) * up(…)))
            let gateUpKinds = [layer.gate.activationKind, layer.up.activationKind]
            perToken(n) { t in
                let p = proj + t * e
                rmsNorm(p, layer.postAttnNorm, p, e)
                let xr = x + t * e
                for i in 0..<e { xr[i] += p[i] }
                rmsNorm(xr, layer.ffnNorm, actE[t].f32, e)
                actE[t].quantize(for: gateUpKinds)
            }
            matmul([(layer.gate, gate, ff), (layer.up, up, ff)], actE, n)
            let table = model.geluTable
            table.withUnsafeBufferPointer { gelu in
                perToken(n) { t in
                    let g = gate + t * ff
                    let u = up + t * ff
                    let out = actF[t].f32
                    for i in 0..<ff {
                        let xv = g[i]
                        if xv <= -10 {
                            out[i] = 0
                        } else if xv >= 10 {
                            out[i] = xv * u[i]
                        } else {
                            out[i] = gelu[Int(Float16(xv).bitPattern)] * u[i]
                        }
                    }
                    actF[t].quantize(for: [layer.down.activationKind])
                }
            }
            matmul([(layer.down, proj, e)], actF, n)
            perToken(n) { t in
                let p = proj + t * e
                rmsNorm(p, layer.postFfwNorm, p, e)
                let xr = x + t * e
                for i in 0..<e { xr[i] += p[i] }
            }
        }

        for item in batch {
            item.cache.count = item.position + 1
        }

        // Output: logits only for the tokens that want them.
        let wanted = batch.indices.filter { batch[$0].wantsLogits }
        guard !wanted.isEmpty else { return [] }
        perToken(wanted.count) { j in
            rmsNorm(x + wanted[j] * e, model.outputNorm, actE[j].f32, e)
            actE[j].quantize(for: [model.output.activationKind])
        }
        let vocab = cfg.vocabularySize
        matmul([(model.output, logits, vocab)], actE, wanted.count)
        return (0..<wanted.count).map { j in Array(UnsafeBufferPointer(start: logits + j * vocab, count: vocab)) }
    }

    // MARK: pieces

    /// Runs `body(t)` for every token of the batch, tokens spread over the threads (one
    /// token runs inline: a single decoded token does not pay for a parallel region).
    private func perToken(_ n: Int, _ body: (Int) -> Void) {
        runner.forRanges(n) { start, end in
            for t in start..<end { body(t) }
        }
    }

    /// out_j[t, r] = W_j[r] · act[t] for every job j and the first `n` activations.
    private func matmul(_ jobs: [(WeightMatrix, UnsafeMutablePointer<Float>, Int)], _ acts: [ActivationBuffer], _ n: Int) {
        parallelMatmul(runner, jobs, acts, count: n)
    }

    /// Causal attention of every (token, head) over its sequence's cache. Sliding layers hide
    /// keys at distance ≥ the window.
    ///
    /// This follows llama.cpp's default CPU path (flash attention) step for step, because the
    /// golden logits come from it: Q rounded to fp16, scores accumulated in fp32, an online
    /// softmax over keys in position order, and the weighted sum of V kept in an fp16
    /// accumulator (rounded after every update). Plain fp32 attention moves logits of this
    /// model by up to ~0.5 — as much as switching llama.cpp's own flash attention off does.
    private func attention(_ batch: [BatchToken], layer il: Int, global: Bool) {
        let hd = cfg.headDim
        let heads = cfg.headCount
        let group = cfg.headCount / cfg.kvHeadCount
        let qd = heads * hd
        let window = cfg.slidingWindow
        runner.forRanges(batch.count * heads) { start, end in
            for item in start..<end {
                let t = item / heads
                let h = item % heads
                let tok = batch[t]
                let kvh = h / group
                let lo = global ? 0 : max(0, tok.position - window + 1)
                let hi = tok.position
                // Q as fp16-rounded floats; the fp16 V accumulator (as floats) is the output row.
                let qh = queries + item * hd
                let src = q + t * qd + h * hd
                for i in 0..<hd { qh[i] = Float(Float16(src[i])) }
                let acc = attn + t * qd + h * hd
                for i in 0..<hd { acc[i] = 0 }
                var m = -Float.infinity
                var sum: Float = 0
                // Rows of positions lo...hi, walked without a division per key.
                let cache = tok.cache
                let slots = cache.slots[il]
                let first = cache.offsets[il]
                var slot = lo % slots
                for _ in lo...hi {
                    let row = (first + slot) * cache.kvDim + kvh * hd
                    slot += 1
                    if slot == slots { slot = 0 }
                    let kr = cache.k + row
                    let s = score(qh, kr, hd)
                    var ms: Float = 1
                    var vs: Float = 1
                    if s > m {
                        let old = m
                        m = s
                        ms = expf(old - m)
                        if ms != 1 {
                            for i in 0..<hd { acc[i] = Float(Float16(acc[i] * ms)) }
                        }
                    } else {
                        vs = expf(s - m)
                    }
                    let vr = cache.v + row
                    for i in 0..<hd { acc[i] = Float(Float16(acc[i].addingProduct(Float(vr[i]), vs))) }
                    sum = sum * ms + vs
                }
                let inv = 1 / sum
                for i in 0..<hd { acc[i] *= inv }
            }
        }
    }

    /// q · k in the order llama.cpp's flash attention sums it (see `attentionScore`).
    @inline(__always)
    private func score(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float16>, _ n: Int) -> Float {
        #if arch(x86_64)
        if n % 32 == 0 { return attentionScore(q, k, n) }
        #endif
        var s: Float = 0
        for i in 0..<n { s = s.addingProduct(q[i], Float(k[i])) }
        return s
    }

    /// y = x / sqrt(mean(x²) + eps) * w (the sum of squares in double, as ggml does).
    @inline(__always)
    private func rmsNorm(_ xp: UnsafePointer<Float>, _ w: [Float], _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var sum: Double = 0
        for i in 0..<n { sum += Double(xp[i] * xp[i]) }
        let scale = 1 / (Float(sum / Double(n)) + cfg.rmsEps).squareRoot()
        w.withUnsafeBufferPointer { wp in
            for i in 0..<n { y[i] = xp[i] * scale * wp[i] }
        }
    }

    /// NEOX rotary embedding: element i pairs with i + n/2; angles as ggml computes them
    /// (theta multiplied by base^(-2/n) step by step, in fp32).
    @inline(__always)
    private func rope(_ xp: UnsafeMutablePointer<Float>, _ n: Int, _ pos: Int, _ base: Float) {
        let half = n / 2
        let thetaScale = powf(base, -2 / Float(n))
        var theta = Float(pos)
        for i in 0..<half {
            let c = cosf(theta)
            let s = sinf(theta)
            let x0 = xp[i]
            let x1 = xp[i + half]
            xp[i] = x0 * c - x1 * s
            xp[i + half] = x0 * s + x1 * c
            theta *= thetaScale
        }
    }
}
