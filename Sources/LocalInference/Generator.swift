/// Why a generation stopped.
public enum FinishReason: String, Sendable {
    case length
    case endOfSequence = "eos"
    case stop
}

public struct GenerationResult: Sendable {
    public var text: String
    public var tokens: [Int32]
    public var promptTokenCount: Int
    public var finishReason: FinishReason
}

/// Prompt in, continuation out, for one sequence at a time: tokenizes, prefills the prompt in
/// batches, samples, streams text, honours max tokens, EOS and stop strings. Runs any
/// ``LanguageModel`` (Gemma 3 or DeepSeek-2), so the CLI and the tests treat them alike.
public final class Generator {
    public let context: LanguageModelContext
    public var model: LanguageModel { context.model }

    public convenience init(model: Gemma3Model, threads: Int? = nil, maxBatch: Int = 64) {
        self.init(model: .gemma3(model), threads: threads, maxBatch: maxBatch)
    }

    public init(model: LanguageModel, threads: Int? = nil, maxBatch: Int = 64) {
        context = LanguageModelContext(model: model, maxBatch: maxBatch, threads: threads)
    }

    /// Logits after feeding `tokens` to the sequence of `cache` (the last position's).
    public func promptLogits(_ tokens: [Int32], cache: any SequenceCache) throws(LocalInferenceError) -> [Float] {
        guard !tokens.isEmpty else { throw .invalidArgument("the prompt has no tokens") }
        let start = cache.count
        let batch = tokens.enumerated().map { i, t in
            SequenceToken(cache: cache, token: t, position: start + i, wantsLogits: i == tokens.count - 1)
        }
        guard let last = try context.forward(batch).last else { throw .invalidArgument("no logits") }
        return last
    }

    /// Generates up to `maxTokens` tokens after `prompt`. `onText` receives each piece of
    /// decoded text as it is produced (complete UTF-8 only) and may return false to stop.
    public func generate(
        prompt: String, maxTokens: Int, sampling: SamplingParameters = .greedy,
        stop: [String] = [], onText: (String) -> Bool = { _ in true }
    ) throws(LocalInferenceError) -> GenerationResult {
        try generate(promptTokens: model.tokenizer.encode(prompt), maxTokens: maxTokens, sampling: sampling, stop: stop, onText: onText)
    }

    /// As ``generate(prompt:maxTokens:sampling:stop:onText:)``, from token ids (BOS included
    /// if wanted): for callers that tokenized already or hold reference token sequences.
    public func generate(
        promptTokens: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy,
        stop: [String] = [], onText: (String) -> Bool = { _ in true }
    ) throws(LocalInferenceError) -> GenerationResult {
        let tokenizer = model.tokenizer
        let capacity = min(model.contextLength, promptTokens.count + max(0, maxTokens) + 1)
        let cache = context.makeCache(capacity: capacity)
        var logits = try promptLogits(promptTokens, cache: cache)
        var sampler = Sampler(sampling)
        var detok = StreamingDetokenizer()
        var out: [Int32] = []
        var text = ""
        var reason = FinishReason.length
        var emitted = 0  // characters of `text` already handed to onText
        let holdBack = stop.map { $0.count }.max() ?? 0
        while out.count < maxTokens {
            let next = sampler.sample(logits)
            if next == tokenizer.eos || isEndOfTurn(next) {
                reason = .endOfSequence
                break
            }
            out.append(next)
            text += detok.append(tokenizer.pieceBytes(next))
            if let hit = Self.firstStop(stop, in: text) {
                text = String(text[..<hit])
                reason = .stop
                break
            }
            // Hold back a possible partial stop string.
            let safe = max(emitted, text.count - holdBack)
            if safe > emitted {
                let piece = String(text.dropFirst(emitted).prefix(safe - emitted))
                emitted = safe
                if !onText(piece) {
                    reason = .stop
                    break
                }
            }
            if out.count >= maxTokens { break }
            guard cache.count < cache.capacity else {
                reason = .length
                break
            }
            logits = try context.forward([SequenceToken(cache: cache, token: next, position: cache.count, wantsLogits: true)])[0]
        }
        if reason != .stop { text += detok.flush() }
        if text.count > emitted { _ = onText(String(text.dropFirst(emitted))) }
        return GenerationResult(text: text, tokens: out, promptTokenCount: promptTokens.count, finishReason: reason)
    }

    /// Where the earliest stop string starts in `text`, if any.
    static func firstStop(_ stops: [String], in text: String) -> String.Index? {
        let live = stops.filter { !$0.isEmpty }
        guard !live.isEmpty else { return nil }
        var i = text.startIndex
        while i < text.endIndex {
            let rest = text[i...]
            if live.contains(where: { rest.hasPrefix($0) }) { return i }
            i = text.index(after: i)
        }
        return nil
    }

    private func isEndOfTurn(_ id: Int32) -> Bool {
        let piece = model.tokenizer.pieces[Int(id)]
        return piece.elementsEqual("<end_of_turn>".utf8) || piece.elementsEqual("<eos>".utf8)
    }
}
