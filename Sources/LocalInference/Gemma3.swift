#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Hyper-parameters of a Gemma 3 model, read from the GGUF metadata.
public struct Gemma3Config: Sendable, Equatable {
    public var vocabularySize: Int
    public var embeddingLength: Int
    public var layerCount: Int
    public var feedForwardLength: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var rmsEps: Float
    /// RoPE base of the global-attention layers (`gemma3.rope.freq_base`).
    public var ropeBaseGlobal: Float
    /// RoPE base of the sliding-window layers (10,000 in every Gemma 3; not in the GGUF).
    public var ropeBaseLocal: Float
    public var slidingWindow: Int
    /// Every `slidingWindowPattern`-th layer (il % pattern == pattern - 1) is global.
    public var slidingWindowPattern: Int
    /// Multiplies Q before attention (1/sqrt(head dim) for every size but 27B).
    public var attentionScale: Float
    public var contextLength: Int

    public func isGlobal(layer: Int) -> Bool { layer % slidingWindowPattern == slidingWindowPattern - 1 }

    init(gguf: GGUFFile) throws(LocalInferenceError) {
        let arch = try gguf.string("general.architecture")
        guard arch == "gemma3" else { throw .unsupportedArchitecture(arch) }
        embeddingLength = try gguf.int("gemma3.embedding_length")
        layerCount = try gguf.int("gemma3.block_count")
        feedForwardLength = try gguf.int("gemma3.feed_forward_length")
        headCount = try gguf.int("gemma3.attention.head_count")
        kvHeadCount = (try? gguf.int("gemma3.attention.head_count_kv")) ?? headCount
        headDim = (try? gguf.int("gemma3.attention.key_length")) ?? embeddingLength / max(1, headCount)
        rmsEps = (try? gguf.float("gemma3.attention.layer_norm_rms_epsilon")) ?? 1e-6
        ropeBaseGlobal = (try? gguf.float("gemma3.rope.freq_base")) ?? 1_000_000
        ropeBaseLocal = 10_000
        slidingWindow = (try? gguf.int("gemma3.attention.sliding_window")) ?? 512
        slidingWindowPattern = 6
        contextLength = (try? gguf.int("gemma3.context_length")) ?? 32768
        attentionScale = 1 / Float(headDim).squareRoot()
        guard let tokenCount = gguf.metadata["tokenizer.ggml.tokens"]?.arrayCount else {
            throw .missingMetadata(key: "tokenizer.ggml.tokens", expected: "an array of strings")
        }
        vocabularySize = tokenCount
        guard embeddingLength > 0, layerCount > 0, headCount > 0, kvHeadCount > 0, headCount % kvHeadCount == 0,
            headDim > 0, headDim % 2 == 0, feedForwardLength > 0, slidingWindow > 0, slidingWindowPattern > 0
        else {
            throw .corrupt("inconsistent gemma3 hyper-parameters")
        }
    }
}

/// The weights of one transformer block, in place in the mapping (norm vectors copied).
struct Gemma3Layer: Sendable {
    let attnNorm: [Float], qNorm: [Float], kNorm: [Float], postAttnNorm: [Float]
    let ffnNorm: [Float], postFfwNorm: [Float]
    let q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, o: WeightMatrix
    let gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    let isGlobal: Bool
}

/// A loaded Gemma 3 model: configuration, tokenizer and weights. Immutable, so one instance
/// is shared by every sequence and every thread that runs it.
public final class Gemma3Model: Sendable {
    public let config: Gemma3Config
    public let tokenizer: SentencePieceTokenizer
    /// The mapping the weight matrices point into; kept alive with the model. (The parsed
    /// metadata is not kept: its 262k-entry vocabulary arrays alone are tens of MB.)
    let file: MappedFile
    let tokenEmbedding: WeightMatrix
    let output: WeightMatrix
    let outputNorm: [Float]
    let layers: [Gemma3Layer]
    /// GELU (tanh form) of every fp16 value, rounded to fp16: ggml's table, which makes our
    /// activations agree with llama.cpp's to the last bit.
    let geluTable: [Float]

    public convenience init(path: String) throws(LocalInferenceError) {
        try self.init(gguf: try GGUFFile(path: path))
    }

    public init(gguf: GGUFFile) throws(LocalInferenceError) {
        let config = try Gemma3Config(gguf: gguf)
        self.config = config
        self.file = gguf.file
        self.tokenizer = try SentencePieceTokenizer(gguf: gguf)
        let e = config.embeddingLength
        let hd = config.headDim
        func matrix(_ name: String, cols: Int, rows: Int) throws(LocalInferenceError) -> WeightMatrix {
            guard let t = gguf.tensor(name) else { throw .missingTensor(name: name) }
            guard let type = t.type, type.isComputable else { throw .unsupportedTensorType(tensor: name, typeCode: t.typeCode) }
            guard t.dims.count == 2, t.dims[0] == cols, t.dims[1] == rows else {
                throw .badTensorShape(name: name, expected: [cols, rows], actual: t.dims)
            }
            return WeightMatrix(name: name, type: type, data: gguf.file.base + t.fileOffset, rows: rows, cols: cols)
        }
        func vector(_ name: String, _ n: Int) throws(LocalInferenceError) -> [Float] {
            guard let t = gguf.tensor(name) else { throw .missingTensor(name: name) }
            guard let type = t.type, type.isComputable else { throw .unsupportedTensorType(tensor: name, typeCode: t.typeCode) }
            guard t.elementCount == n else { throw .badTensorShape(name: name, expected: [n], actual: t.dims) }
            var out = [Float](repeating: 0, count: n)
            out.withUnsafeMutableBufferPointer { buf in
                if let p = buf.baseAddress { dequantize(type: type, gguf.file.base + t.fileOffset, n, p) }
            }
            return out
        }
        tokenEmbedding = try matrix("token_embd.weight", cols: e, rows: config.vocabularySize)
        output =
            gguf.tensor("output.weight") != nil
            ? try matrix("output.weight", cols: e, rows: config.vocabularySize)
            : tokenEmbedding
        outputNorm = try vector("output_norm.weight", e)
        var layers: [Gemma3Layer] = []
        let qDim = config.headCount * hd
        let kvDim = config.kvHeadCount * hd
        let ff = config.feedForwardLength
        for il in 0..<config.layerCount {
            let p = "blk.\(il)."
            layers.append(
                Gemma3Layer(
                    attnNorm: try vector(p + "attn_norm.weight", e),
                    qNorm: try vector(p + "attn_q_norm.weight", hd),
                    kNorm: try vector(p + "attn_k_norm.weight", hd),
                    postAttnNorm: try vector(p + "post_attention_norm.weight", e),
                    ffnNorm: try vector(p + "ffn_norm.weight", e),
                    postFfwNorm: try vector(p + "post_ffw_norm.weight", e),
                    q: try matrix(p + "attn_q.weight", cols: e, rows: qDim),
                    k: try matrix(p + "attn_k.weight", cols: e, rows: kvDim),
                    v: try matrix(p + "attn_v.weight", cols: e, rows: kvDim),
                    o: try matrix(p + "attn_output.weight", cols: qDim, rows: e),
                    gate: try matrix(p + "ffn_gate.weight", cols: e, rows: ff),
                    up: try matrix(p + "ffn_up.weight", cols: e, rows: ff),
                    down: try matrix(p + "ffn_down.weight", cols: ff, rows: e),
                    isGlobal: config.isGlobal(layer: il)))
        }
        self.layers = layers
        var table = [Float](repeating: 0, count: 65536)
        for i in 0..<65536 {
            let x = Float(Float16(bitPattern: UInt16(i)))
            let g = 0.5 * x * (1 + tanhf(0.797_884_56 * x * (1 + 0.044715 * x * x)))
            table[i] = Float(Float16(g))
        }
        geluTable = table
    }
}

/// The key/value cache of one sequence, stored as fp16 (as llama.cpp's default cache type).
///
/// Global layers keep every position up to `capacity`. Sliding-window layers (15 of Gemma 3's
/// 18) only ever look back `window` positions, so they keep a ring of `window + batchLimit`
/// rows: a batch of up to `batchLimit` tokens writes its keys before any of them attends,
/// and the ring must still hold what its earliest token can see. A long generation then
/// costs ~1/6 of the memory of keeping every position on every layer.
public final class KVCache {
    public let capacity: Int
    /// The model whose context made this cache (its rows have that model's sizes).
    let owner: ObjectIdentifier
    /// The largest batch of this sequence's tokens a forward pass may hold.
    let batchLimit: Int
    let kvDim: Int
    /// Rows kept per layer, and where each layer's rows start.
    let slots: [Int]
    let offsets: [Int]
    let k: UnsafeMutablePointer<Float16>
    let v: UnsafeMutablePointer<Float16>
    /// Number of positions filled.
    public internal(set) var count = 0

    init(owner: ObjectIdentifier, layers: [Gemma3Layer], config: Gemma3Config, capacity: Int, batchLimit: Int) {
        self.owner = owner
        self.capacity = capacity
        self.batchLimit = batchLimit
        kvDim = config.kvHeadCount * config.headDim
        let ring = config.slidingWindow + batchLimit
        slots = layers.map { $0.isGlobal ? capacity : min(capacity, ring) }
        var offsets: [Int] = []
        var total = 0
        for n in slots {
            offsets.append(total)
            total += n
        }
        self.offsets = offsets
        k = .allocate(capacity: max(1, total * kvDim))
        v = .allocate(capacity: max(1, total * kvDim))
    }

    deinit {
        k.deallocate()
        v.deallocate()
    }

    /// The row of `layer` that holds position `pos`.
    @inline(__always) func row(_ layer: Int, _ pos: Int) -> Int {
        offsets[layer] + pos % slots[layer]
    }

    @inline(__always) func kRow(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float16> {
        k + row(layer, pos) * kvDim
    }

    @inline(__always) func vRow(_ layer: Int, _ pos: Int) -> UnsafeMutablePointer<Float16> {
        v + row(layer, pos) * kvDim
    }
}
