/// A loaded model of any architecture the engine runs, chosen by the file's
/// `general.architecture`.
///
/// Why an enum over the concrete models rather than one generic model type: every
/// architecture keeps its own hand-tuned forward pass (``InferenceContext`` for Gemma 3,
/// ``DeepSeek2Context`` for DeepSeek-V2/V3), while `Generator`, the local provider and the
/// CLI only need "tokens in, logits out", a tokenizer and a context size. This layer
/// dispatches once per batch, never inside a kernel, so the hot loops stay as they are.
public enum LanguageModel: Sendable {
    case gemma3(Gemma3Model)
    case deepseek2(DeepSeek2Model)

    /// The `general.architecture` values this engine loads.
    public static let supportedArchitectures = ["gemma3", "deepseek2"]

    /// Opens the GGUF at `path` and loads it as the architecture it declares.
    public init(path: String) throws(LocalInferenceError) {
        try self.init(gguf: try GGUFFile(path: path))
    }

    /// Loads `gguf` as the architecture it declares; any other architecture is
    /// ``LocalInferenceError/unsupportedArchitecture(_:)`` naming it.
    public init(gguf: GGUFFile) throws(LocalInferenceError) {
        let architecture = try gguf.string("general.architecture")
        switch architecture {
        case "gemma3": self = .gemma3(try Gemma3Model(gguf: gguf))
        case "deepseek2": self = .deepseek2(try DeepSeek2Model(gguf: gguf))
        default: throw .unsupportedArchitecture(architecture)
        }
    }

    /// The GGUF architecture name.
    public var architecture: String {
        switch self {
        case .gemma3: return "gemma3"
        case .deepseek2: return "deepseek2"
        }
    }

    public var tokenizer: SentencePieceTokenizer {
        switch self {
        case .gemma3(let model): return model.tokenizer
        case .deepseek2(let model): return model.tokenizer
        }
    }

    /// The most positions one sequence may hold (the trained context).
    public var contextLength: Int {
        switch self {
        case .gemma3(let model): return model.config.contextLength
        case .deepseek2(let model): return model.config.contextLength
        }
    }

    public var vocabularySize: Int {
        switch self {
        case .gemma3(let model): return model.config.vocabularySize
        case .deepseek2(let model): return model.config.vocabularySize
        }
    }

    /// Whether both values are the same loaded weights (not merely equal files), so that a
    /// context made for one can run the other's sequences.
    public func isSame(as other: LanguageModel) -> Bool {
        switch (self, other) {
        case (.gemma3(let a), .gemma3(let b)): return a === b
        case (.deepseek2(let a), .deepseek2(let b)): return a === b
        default: return false
        }
    }
}

/// The per-sequence state of a model (its attention cache), whatever the architecture:
/// what callers that juggle several sequences (the batch scheduler) keep per sequence.
/// Only the context that made a cache can run it.
public protocol SequenceCache: AnyObject {
    /// The most positions the cache holds.
    var capacity: Int { get }
    /// Positions filled so far (the next token's position).
    var count: Int { get }
}

extension KVCache: SequenceCache {}
extension DeepSeek2Cache: SequenceCache {}

/// A token for a ``LanguageModelContext``: any architecture's cache.
public typealias SequenceToken = ForwardToken<any SequenceCache>

/// Runs the forward pass of a ``LanguageModel`` over batches that may mix sequences, by
/// handing each batch to the architecture's own context. Owns that context's scratch
/// buffers, so one caller at a time (not Sendable), like the contexts it wraps.
public final class LanguageModelContext {
    public let model: LanguageModel
    public let maxBatch: Int
    private let backend: Backend

    private enum Backend {
        case gemma3(InferenceContext)
        case deepseek2(DeepSeek2Context)
    }

    public init(model: LanguageModel, maxBatch: Int = 64, threads: Int? = nil) {
        self.model = model
        switch model {
        case .gemma3(let m):
            let context = InferenceContext(model: m, maxBatch: maxBatch, threads: threads)
            backend = .gemma3(context)
            self.maxBatch = context.maxBatch
        case .deepseek2(let m):
            let context = DeepSeek2Context(model: m, maxBatch: maxBatch, threads: threads)
            backend = .deepseek2(context)
            self.maxBatch = context.maxBatch
        }
    }

    /// A fresh cache for one sequence of up to `capacity` tokens (at most the model's context).
    public func makeCache(capacity: Int) -> any SequenceCache {
        switch backend {
        case .gemma3(let context): return context.makeCache(capacity: capacity)
        case .deepseek2(let context): return context.makeCache(capacity: capacity)
        }
    }

    /// Runs the batch and returns the logits of the tokens that asked for them, in batch
    /// order; each cache's `count` advances past its tokens. A cache made by another
    /// architecture's context is an `invalidArgument` error.
    public func forward(_ batch: [SequenceToken]) throws(LocalInferenceError) -> [[Float]] {
        switch backend {
        case .gemma3(let context):
            return try context.forward(
                try convert(batch) { (cache: KVCache, t) in
                    BatchToken(cache: cache, token: t.token, position: t.position, wantsLogits: t.wantsLogits)
                })
        case .deepseek2(let context):
            return try context.forward(
                try convert(batch) { (cache: DeepSeek2Cache, t) in
                    DeepSeek2BatchToken(cache: cache, token: t.token, position: t.position, wantsLogits: t.wantsLogits)
                })
        }
    }

    private func convert<Cache, Token>(
        _ batch: [SequenceToken], _ make: (Cache, SequenceToken) -> Token
    ) throws(LocalInferenceError) -> [Token] {
        var out: [Token] = []
        out.reserveCapacity(batch.count)
        for t in batch {
            guard let cache = t.cache as? Cache else {
                throw .invalidArgument(
                    "a \(type(of: t.cache)) was fed to a \(model.architecture) context; use the caches that context's makeCache returns")
            }
            out.append(make(cache, t))
        }
        return out
    }
}
