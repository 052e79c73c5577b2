import Foundation

/// The three per-token rates that price one call, and which period they came from.
///
/// Why a separate type: a row may carry two rate sets (off-peak and peak); the
/// ledger must record which one priced the call, and a reservation needs the
/// component-wise maximum of both (``PriceRow/upperBoundRates``).
public struct RateSet: Sendable, Hashable {
    public enum Period: String, Sendable, Hashable, Codable {
        /// The row has no peak pricing: one rate set at all hours.
        case standard
        /// The row has peak pricing and the call started outside every peak window.
        case offPeak = "off_peak"
        /// The call started inside a peak window.
        case peak
        /// Component-wise maximum over all periods of a row (or rows): a bound, not a tariff.
        case upperBound = "upper_bound"
    }

    /// Prompt tokens served from the provider's context cache.
    public var inputCacheHit: TokenPrice
    /// Prompt tokens not served from cache.
    public var inputCacheMiss: TokenPrice
    /// Completion tokens, reasoning tokens included.
    public var output: TokenPrice
    public var period: Period

    public init(inputCacheHit: TokenPrice, inputCacheMiss: TokenPrice, output: TokenPrice, period: Period) {
        self.inputCacheHit = inputCacheHit
        self.inputCacheMiss = inputCacheMiss
        self.output = output
        self.period = period
    }

    /// Component-wise maximum, labelled ``Period/upperBound``.
    public func componentMaximum(_ other: RateSet) -> RateSet {
        RateSet(
            inputCacheHit: max(inputCacheHit, other.inputCacheHit),
            inputCacheMiss: max(inputCacheMiss, other.inputCacheMiss),
            output: max(output, other.output),
            period: .upperBound
        )
    }
}

/// Hours of some weekdays, in UTC, when a row's peak rates apply: `startHour`
/// inclusive to `endHour` exclusive (01:00–04:00 covers 01:00:00 through
/// 03:59:59). A window never crosses midnight; write two windows instead.
///
/// Why whole hours in UTC: DeepSeek publishes its peak windows that way, and
/// UTC keeps the price of a call independent of the server's time zone.
public struct PeakWindow: Sendable, Hashable {
    /// ISO weekdays: 1 = Monday … 7 = Sunday.
    public let weekdays: Set<Int>
    /// 0…23, inclusive.
    public let startHour: Int
    /// 1…24, exclusive; greater than `startHour`.
    public let endHour: Int

    /// Mon–Fri, the weekdays of DeepSeek's peak windows.
    public static let mondayToFriday: Set<Int> = [1, 2, 3, 4, 5]

    public init(weekdays: Set<Int>, startHour: Int, endHour: Int) throws(MeteringError) {
        guard !weekdays.isEmpty, weekdays.allSatisfy({ (1...7).contains($0) }) else {
            throw MeteringError(.invalidPriceRow, "peak window weekdays \(weekdays.sorted()) must be a non-empty set of 1 (Monday) … 7 (Sunday)")
        }
        guard (0...23).contains(startHour), (1...24).contains(endHour), startHour < endHour else {
            throw MeteringError(
                .invalidPriceRow,
                "peak window \(startHour):00–\(endHour):00 must have 0 ≤ start < end ≤ 24 (UTC hours, end exclusive; split windows that cross midnight)"
            )
        }
        self.weekdays = weekdays
        self.startHour = startHour
        self.endHour = endHour
    }

    /// Whether a call starting at `date` falls in this window (UTC weekday and hour).
    public func contains(_ date: Date) -> Bool {
        weekdays.contains(UTCTime.weekday(date)) && (startHour..<endHour).contains(UTCTime.hour(date))
    }
}

/// Rates that replace a row's standard rates during its peak windows.
public struct PeakPricing: Sendable, Hashable {
    public let windows: [PeakWindow]
    public let inputCacheHit: TokenPrice
    public let inputCacheMiss: TokenPrice
    public let output: TokenPrice

    public init(windows: [PeakWindow], inputCacheHit: TokenPrice, inputCacheMiss: TokenPrice, output: TokenPrice) throws(MeteringError) {
        guard !windows.isEmpty else {
            throw MeteringError(.invalidPriceRow, "peak pricing needs at least one window; omit `peak` for a row without peak hours")
        }
        self.windows = windows
        self.inputCacheHit = inputCacheHit
        self.inputCacheMiss = inputCacheMiss
        self.output = output
    }

    public func contains(_ date: Date) -> Bool {
        windows.contains { $0.contains(date) }
    }
}

/// One effective-dated price of one model name (or model-name prefix).
///
/// Why rows are effective-dated rather than edited: providers change prices
/// often and ledger rows name the price row that priced them, so a price is
/// never changed in place; a new row takes over from its `effectiveFrom`
/// instant, and old calls stay explained by the row they cite.
public struct PriceRow: Sendable, Hashable {
    /// Stable key the ledger cites (`price_id`), e.g. `deepseek-v4-flash@2026-08-16`.
    public let id: String
    /// A model name, matched as a prefix of the billed model (see ``PriceBook``).
    public let model: String
    /// First instant (UTC) at which this row applies; it applies until the next row of the same model.
    public let effectiveFrom: Date
    /// Standard rates; the off-peak rates when `peak` is set.
    public let inputCacheHit: TokenPrice
    public let inputCacheMiss: TokenPrice
    public let output: TokenPrice
    public let peak: PeakPricing?

    public init(
        id: String, model: String, effectiveFrom: Date,
        inputCacheHit: TokenPrice, inputCacheMiss: TokenPrice, output: TokenPrice,
        peak: PeakPricing? = nil
    ) throws(MeteringError) {
        guard !id.isEmpty, id.utf8.count <= 200 else {
            throw MeteringError(.invalidPriceRow, "price row id must be 1–200 bytes; got \(id.utf8.count)")
        }
        guard !model.isEmpty, model.utf8.count <= 200, !model.contains(where: \.isWhitespace) else {
            throw MeteringError(.invalidPriceRow, "price row '\(id)': model must be a 1–200 byte name without spaces, e.g. 'deepseek-v4-flash'")
        }
        self.id = id
        self.model = model
        self.effectiveFrom = effectiveFrom
        self.inputCacheHit = inputCacheHit
        self.inputCacheMiss = inputCacheMiss
        self.output = output
        self.peak = peak
    }

    /// The conventional id `model@date` (`deepseek-v4-flash@2026-08-16`, or with
    /// `THH:MM:SSZ` when the row does not start at midnight UTC).
    public static func defaultID(model: String, effectiveFrom: Date) -> String {
        "\(model)@\(UTCTime.format(effectiveFrom))"
    }

    /// The rates for a call that starts at `start`: peak when the row has peak
    /// pricing and `start`'s UTC weekday and hour fall in one of its windows,
    /// otherwise the standard (off-peak) rates.
    public func rates(at start: Date) -> RateSet {
        guard let peak else {
            return RateSet(inputCacheHit: inputCacheHit, inputCacheMiss: inputCacheMiss, output: output, period: .standard)
        }
        if peak.contains(start) {
            return RateSet(inputCacheHit: peak.inputCacheHit, inputCacheMiss: peak.inputCacheMiss, output: peak.output, period: .peak)
        }
        return RateSet(inputCacheHit: inputCacheHit, inputCacheMiss: inputCacheMiss, output: output, period: .offPeak)
    }

    /// The highest rate of each kind this row can apply at any hour: what a
    /// reservation must use so that its bound holds whenever the call starts.
    public var upperBoundRates: RateSet {
        let standard = RateSet(inputCacheHit: inputCacheHit, inputCacheMiss: inputCacheMiss, output: output, period: .upperBound)
        guard let peak else { return standard }
        return standard.componentMaximum(
            RateSet(inputCacheHit: peak.inputCacheHit, inputCacheMiss: peak.inputCacheMiss, output: peak.output, period: .peak))
    }
}
