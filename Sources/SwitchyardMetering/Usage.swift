/// The billed token counts of one model call, as reported by the provider.
///
/// Why the prompt is split: DeepSeek (and others) charge cache-hit prompt
/// tokens far below cache-miss ones. When a provider reports only a total
/// (`prompt_tokens` without `prompt_cache_hit_tokens`/`…_miss_tokens` or
/// `cached_tokens`), the split is ``PromptTokens/unsplit(total:)`` and the
/// whole prompt is priced at the miss rate: an upper bound, flagged by
/// ``UsageCost/isUpperBound``, never an under-charge.
///
/// Reasoning tokens: for DeepSeek `completion_tokens` already *includes*
/// `reasoning_tokens`, and both are billed at the output rate. They are kept
/// here for reports only and are never added to the cost a second time.
public struct TokenUsage: Sendable, Hashable {
    public enum PromptTokens: Sendable, Hashable {
        /// `hit + miss` = prompt tokens.
        case split(cacheHit: Int, cacheMiss: Int)
        /// Only the total is known: priced entirely as cache misses.
        case unsplit(total: Int)
    }

    public let prompt: PromptTokens
    /// All completion tokens, reasoning included.
    public let completionTokens: Int
    /// The part of `completionTokens` spent on reasoning (informational; 0 when not reported).
    public let reasoningTokens: Int

    /// Usage with a known cache split. Throws `.invalidUsage` for negative counts or reasoning above completion.
    public init(cacheHitTokens: Int, cacheMissTokens: Int, completionTokens: Int, reasoningTokens: Int = 0) throws(MeteringError) {
        try TokenUsage.check(["cache hit": cacheHitTokens, "cache miss": cacheMissTokens], completionTokens, reasoningTokens)
        guard !cacheHitTokens.addingReportingOverflow(cacheMissTokens).overflow else {
            throw MeteringError(.invalidUsage, "prompt tokens \(cacheHitTokens) + \(cacheMissTokens) overflow")
        }
        self.prompt = .split(cacheHit: cacheHitTokens, cacheMiss: cacheMissTokens)
        self.completionTokens = completionTokens
        self.reasoningTokens = reasoningTokens
    }

    /// Usage whose prompt is known only as a total (priced as all misses).
    public init(promptTokens: Int, completionTokens: Int, reasoningTokens: Int = 0) throws(MeteringError) {
        try TokenUsage.check(["prompt": promptTokens], completionTokens, reasoningTokens)
        self.prompt = .unsplit(total: promptTokens)
        self.completionTokens = completionTokens
        self.reasoningTokens = reasoningTokens
    }

    public var promptTokens: Int {
        switch prompt {
        case .split(let hit, let miss): hit + miss
        case .unsplit(let total): total
        }
    }

    /// Cache-hit tokens, or nil when the split is unknown.
    public var cacheHitTokens: Int? {
        if case .split(let hit, _) = prompt { return hit }
        return nil
    }

    /// Cache-miss tokens, or nil when the split is unknown.
    public var cacheMissTokens: Int? {
        if case .split(_, let miss) = prompt { return miss }
        return nil
    }

    private static func check(_ prompt: KeyValuePairs<String, Int>, _ completion: Int, _ reasoning: Int) throws(MeteringError) {
        for (name, count) in prompt where count < 0 {
            throw MeteringError(.invalidUsage, "\(name) token count \(count) is negative")
        }
        guard completion >= 0, reasoning >= 0 else {
            throw MeteringError(.invalidUsage, "completion (\(completion)) and reasoning (\(reasoning)) token counts must not be negative")
        }
        guard reasoning <= completion else {
            throw MeteringError(
                .invalidUsage,
                "reasoning tokens (\(reasoning)) exceed completion tokens (\(completion)); reasoning tokens are part of completion tokens, not added to them"
            )
        }
    }
}

/// The exact cost of one call, by component.
///
/// Why components: reports split spend into cache-hit input, cache-miss input
/// and output, and the ledger stores the total; all are exact `Money`.
public struct UsageCost: Sendable, Hashable {
    public let cacheHit: Money
    public let cacheMiss: Money
    /// Completion tokens × output rate (reasoning tokens included, once).
    public let output: Money
    public let total: Money
    /// True when the prompt split was unknown and every prompt token was priced
    /// as a cache miss: the true cost is at most `total`.
    public let isUpperBound: Bool

    /// Prices `usage` at `rates`. Throws only `.overflow` (beyond ±9.2 million USD).
    public init(usage: TokenUsage, rates: RateSet) throws(MeteringError) {
        switch usage.prompt {
        case .split(let hit, let miss):
            cacheHit = try rates.inputCacheHit.cost(ofTokens: hit)
            cacheMiss = try rates.inputCacheMiss.cost(ofTokens: miss)
            isUpperBound = false
        case .unsplit(let total):
            cacheHit = .zero
            cacheMiss = try rates.inputCacheMiss.cost(ofTokens: total)
            isUpperBound = true
        }
        output = try rates.output.cost(ofTokens: usage.completionTokens)
        total = try cacheHit.adding(cacheMiss).adding(output)
    }
}
