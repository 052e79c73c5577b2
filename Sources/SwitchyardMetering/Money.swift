/// An exact amount of US dollars, counted in pico-USD (10⁻¹² USD) in an `Int64`.
///
/// Why pico-USD: a price of *x* micro-USD per million tokens costs exactly *x*
/// pico-USD per token, so every token cost is an integer product with no
/// rounding, and sums of ledger rows are exact. Why `Int64`: it maps onto a
/// PostgreSQL `BIGINT` and its range, ±9,223,372.036854775807 USD (about
/// ±9.2 million USD), is far above any single call, reservation or monthly
/// tenant budget. Totals that may exceed it (an operator's lifetime revenue)
/// belong in SQL `NUMERIC` sums, not in this type.
///
/// Arithmetic is **checked and throwing** (`MeteringError.overflow`), never
/// trapping: a trap would take down a server shared by every tenant, and a
/// wrapped sum would bill the wrong amount. There are deliberately no `+`/`-`
/// operators; use ``adding(_:)``, ``subtracting(_:)``, ``multiplied(by:)`` and
/// ``sum(_:)``.
///
/// Text form: ``init(parsing:)`` reads plain decimal USD (`"25.00"`,
/// `"0.000000123"`, `"-1.5"`); ``decimalString`` writes the canonical form
/// (`"25"`, `"25.5"`, `"0.000000123"`), which is also the `Codable` form, a JSON
/// string, so that no JSON reader turns money into floating point.
public struct Money: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Pico-USD per USD.
    public static let picoPerUSD: Int64 = 1_000_000_000_000
    /// Decimal places of the text form.
    public static let scale = 12

    /// The amount in pico-USD (10⁻¹² USD). Store this (`BIGINT`) to persist money exactly.
    public let picoUSD: Int64

    public static let zero = Money(picoUSD: 0)
    /// The largest amount, 9223372.036854775807 USD.
    public static let max = Money(picoUSD: .max)

    public init(picoUSD: Int64) {
        self.picoUSD = picoUSD
    }

    /// Parses plain decimal USD: an optional leading `-`, at least one digit,
    /// and optionally `.` followed by 1–12 digits. Rejects empty text, `+`,
    /// exponents (`1e3`), separators, spaces, more than 12 decimal places
    /// (`.tooManyDecimals`) and magnitudes beyond ±9223372.036854775807
    /// (`.overflow`). Trim surrounding whitespace before calling.
    public init(parsing text: String) throws(MeteringError) {
        self.picoUSD = try FixedPoint.parse(text, scale: Money.scale, what: "amount", allowNegative: true)
    }

    /// Canonical decimal USD: no leading zeros, trailing fractional zeros
    /// trimmed, no decimal point for whole dollars, `-` only below zero:
    /// `"0"`, `"25"`, `"25.5"`, `"0.000000123"`, `"-0.5"`. Exact; parses back
    /// to the same amount. This is the `cost_usd` form of the API.
    public var decimalString: String {
        FixedPoint.canonical(picoUSD, scale: Money.scale)
    }

    /// Exactly `decimals` fractional digits for tables (`formatted(decimals: 6)`
    /// → `"0.000123"`), rounding half away from zero (half-up on the
    /// magnitude) in integer arithmetic. A value that rounds to zero prints
    /// without a sign. `decimals` below 0 counts as 0; above 12 pads zeros.
    public func formatted(decimals: Int) -> String {
        FixedPoint.fixed(picoUSD, scale: Money.scale, decimals: decimals)
    }

    public var description: String { decimalString }

    public var isNegative: Bool { picoUSD < 0 }

    public static func < (lhs: Money, rhs: Money) -> Bool { lhs.picoUSD < rhs.picoUSD }

    /// `self + other`, or `.overflow` when the sum leaves the `Int64` range.
    public func adding(_ other: Money) throws(MeteringError) -> Money {
        let (sum, overflow) = picoUSD.addingReportingOverflow(other.picoUSD)
        guard !overflow else { throw Money.overflow("\(decimalString) + \(other.decimalString)") }
        return Money(picoUSD: sum)
    }

    /// `self - other`, or `.overflow` when the difference leaves the `Int64` range.
    public func subtracting(_ other: Money) throws(MeteringError) -> Money {
        let (difference, overflow) = picoUSD.subtractingReportingOverflow(other.picoUSD)
        guard !overflow else { throw Money.overflow("\(decimalString) - \(other.decimalString)") }
        return Money(picoUSD: difference)
    }

    /// `self × count` (for example a per-token cost times a token count), or
    /// `.overflow` when the product leaves the `Int64` range.
    public func multiplied(by count: Int) throws(MeteringError) -> Money {
        let (product, overflow) = picoUSD.multipliedReportingOverflow(by: Int64(count))
        guard !overflow else { throw Money.overflow("\(decimalString) × \(count)") }
        return Money(picoUSD: product)
    }

    /// The exact sum of `amounts`, or `.overflow` if any partial sum leaves the range.
    public static func sum(_ amounts: some Sequence<Money>) throws(MeteringError) -> Money {
        var total = Money.zero
        for amount in amounts { total = try total.adding(amount) }
        return total
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Money(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(decimalString)
    }

    static func overflow(_ expression: String) -> MeteringError {
        MeteringError(.overflow, "\(expression) overflows the money range of ±\(Money.max.decimalString) USD")
    }
}
