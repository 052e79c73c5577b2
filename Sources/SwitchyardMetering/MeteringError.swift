/// Why an amount, a price, a usage record or a price book was refused.
///
/// Metering refuses rather than guesses: operators bill tenants from these
/// figures, so a malformed price or an overflowing sum must stop the caller
/// with a message that says what to fix, never turn into a wrong number.
/// `code` is stable and machine-readable (API error bodies, tests);
/// `message` is one line for a human and names the offending input.
public struct MeteringError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, Codable {
        /// Text is not a plain decimal number such as `25.00` or `0.003625`.
        case invalidAmount = "invalid_amount"
        /// More decimal places than the type can hold exactly (12 for money, 6 for prices).
        case tooManyDecimals = "too_many_decimals"
        /// A value or a result is outside the Int64 range of the fixed-point type.
        case overflow
        /// A negative amount where only zero or more makes sense (prices).
        case negativeAmount = "negative_amount"
        /// Token counts that cannot be real (negative, reasoning above completion).
        case invalidUsage = "invalid_usage"
        /// A price row or peak window whose fields are inconsistent.
        case invalidPriceRow = "invalid_price_row"
        /// Two rows with the same id, or the same model and effective instant.
        case duplicatePriceRow = "duplicate_price_row"
        /// The seed text is not YAML, or not in the documented shape.
        case invalidSeed = "invalid_seed"
    }

    public var code: Code
    /// One line saying what was wrong and how to fix it.
    public var message: String
    /// 1-based position in the seed text, when the error came from parsing one.
    public var line: Int?
    public var column: Int?

    public init(_ code: Code, _ message: String, line: Int? = nil, column: Int? = nil) {
        self.code = code
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        if let line, let column { return "\(line):\(column): \(message)" }
        return message
    }
}
