/// The worst-case cost of a call not yet made: what a budget reserves before
/// any request is sent.
///
/// Why this bound holds: a prompt of *b* UTF-8 bytes is at most *b* tokens
/// (every token of a byte-level tokenizer covers at least one byte), priced at
/// the higher of the cache-miss and cache-hit rates (the provider decides which
/// prompt tokens hit); the completion, reasoning
/// included, is at most `max_tokens` tokens, priced at the output rate; and the
/// rates are the highest the row can apply at any hour (peak), so the bound
/// holds whenever the call actually starts.
///
/// Caller's duties for the bound to be true:
/// - Count the bytes of everything the provider tokenizes: the whole request
///   body as sent (messages, tool definitions, JSON punctuation), not just the
///   message text, because providers add chat-template tokens per message
///   that the serialized JSON more than covers.
/// - Send `max_tokens` (the provider's completion cap, which for DeepSeek
///   includes reasoning) equal to the `maxTokens` given here.
/// - Take rates from ``PriceRow/upperBoundRates`` or
///   ``PriceBook/upperBoundRates(forModel:during:)``, not ``PriceRow/rates(at:)``.
public enum Reservation {
    /// `promptUTF8Bytes × max(miss, hit) + maxTokens × output` at `rates`.
    /// Throws `.invalidUsage` for negative sizes and `.overflow` past the money range.
    public static func worstCase(promptUTF8Bytes: Int, maxTokens: Int, rates: RateSet) throws(MeteringError) -> Money {
        guard promptUTF8Bytes >= 0, maxTokens >= 0 else {
            throw MeteringError(.invalidUsage, "reservation sizes must not be negative (prompt bytes \(promptUTF8Bytes), max_tokens \(maxTokens))")
        }
        let input = try max(rates.inputCacheMiss, rates.inputCacheHit).cost(ofTokens: promptUTF8Bytes)
        let output = try rates.output.cost(ofTokens: maxTokens)
        return try input.adding(output)
    }

    /// The same with the row's highest rates across peak and off-peak.
    public static func worstCase(promptUTF8Bytes: Int, maxTokens: Int, row: PriceRow) throws(MeteringError) -> Money {
        try worstCase(promptUTF8Bytes: promptUTF8Bytes, maxTokens: maxTokens, rates: row.upperBoundRates)
    }
}
