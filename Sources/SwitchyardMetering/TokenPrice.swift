/// A price in USD per million tokens, held exactly as an integer of micro-USD
/// per million tokens (`$0.003625/M` = 3_625; `$3.96/M` = 3_960_000).
///
/// Why this unit: DeepSeek and its peers publish prices per million tokens
/// with at most a handful of decimals, and 1 µUSD / 10⁶ tokens = 1 pUSD per
/// token, so the cost of *n* tokens is exactly *n* × ``microUSDPerMillion``
/// pico-USD (see ``cost(ofTokens:)``), with no division and no rounding.
/// Prices are never negative. `Codable` as a decimal string (`"0.003625"`).
public struct TokenPrice: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Decimal places accepted in the text form.
    public static let scale = 6

    /// USD per million tokens × 10⁶; also pico-USD per token. Always ≥ 0.
    public let microUSDPerMillion: Int64

    public static let zero = TokenPrice(unchecked: 0)

    /// Refuses negative values (`.negativeAmount`).
    public init(microUSDPerMillion: Int64) throws(MeteringError) {
        guard microUSDPerMillion >= 0 else {
            throw MeteringError(.negativeAmount, "price of \(microUSDPerMillion) µUSD per million tokens is negative; a price must be zero or more")
        }
        self.microUSDPerMillion = microUSDPerMillion
    }

    init(unchecked value: Int64) {
        self.microUSDPerMillion = value
    }

    /// Parses USD per million tokens as plain decimal text, exactly: `"0.14"`,
    /// `"0.003625"`, `"3"`. Rejects negative values, more than 6 decimal
    /// places, exponents, signs, separators and spaces.
    public init(parsing text: String) throws(MeteringError) {
        self.microUSDPerMillion = try FixedPoint.parse(text, scale: TokenPrice.scale, what: "price", allowNegative: false)
    }

    /// Canonical USD per million tokens: `"0.003625"`, `"0.14"`, `"3"`.
    public var decimalString: String {
        FixedPoint.canonical(microUSDPerMillion, scale: TokenPrice.scale)
    }

    public var description: String { "\(decimalString) USD/M" }

    /// The exact cost of `tokens` tokens: `tokens × microUSDPerMillion` pico-USD.
    /// Throws `.invalidUsage` for a negative count and `.overflow` past the money range.
    public func cost(ofTokens tokens: Int) throws(MeteringError) -> Money {
        guard tokens >= 0 else {
            throw MeteringError(.invalidUsage, "token count \(tokens) is negative")
        }
        let (product, overflow) = microUSDPerMillion.multipliedReportingOverflow(by: Int64(tokens))
        guard !overflow else { throw Money.overflow("\(tokens) tokens × \(decimalString) USD/M") }
        return Money(picoUSD: product)
    }

    public static func < (lhs: TokenPrice, rhs: TokenPrice) -> Bool { lhs.microUSDPerMillion < rhs.microUSDPerMillion }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try TokenPrice(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(decimalString)
    }
}
