extension TimeSpan: CustomStringConvertible, LosslessStringConvertible {
    /// The longest accepted duration (10 years), so that arithmetic on deadlines never overflows.
    public static let maximum = TimeSpan(milliseconds: 10 * 366 * 24 * 3_600_000)

    /// Parses a duration as written in YAML: one or more `<number><unit>` parts with
    /// units `h`, `m`, `s`, `ms`, largest first and each at most once: `500ms`,
    /// `30s`, `2m`, `1h`, `1h30m`, `1.5s`. Returns nil for empty or negative text,
    /// unknown units, units out of order, and durations over ``maximum``. Fractions
    /// are rounded to the nearest millisecond.
    public static func parse(_ text: String) -> TimeSpan? {
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty else { return nil }
        let units: [(String, Double)] = [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
        var nextUnit = 0
        var total = 0.0
        var i = 0
        while i < scalars.count {
            var number = ""
            while i < scalars.count, ("0"..."9").contains(scalars[i]) || scalars[i] == "." {
                number.unicodeScalars.append(scalars[i])
                i += 1
            }
            var unit = ""
            while i < scalars.count, ("a"..."z").contains(scalars[i]) {
                unit.unicodeScalars.append(scalars[i])
                i += 1
            }
            guard !number.isEmpty, !unit.isEmpty, number.first != ".", number.last != ".",
                let value = Double(number), value.isFinite,
                let position = units[nextUnit...].firstIndex(where: { $0.0 == unit })
            else { return nil }
            total += value * units[position].1
            nextUnit = position + 1
            guard total <= Double(maximum.milliseconds) else { return nil }
        }
        return TimeSpan(milliseconds: Int64(total.rounded()))
    }

    public init?(_ description: String) {
        guard let parsed = TimeSpan.parse(description) else { return nil }
        self = parsed
    }

    /// The duration in the YAML notation, largest units first: `2m`, `1h30m`, `1s500ms`, `0s`.
    public var description: String {
        guard milliseconds != 0 else { return "0s" }
        var rest = milliseconds.magnitude
        var out = milliseconds < 0 ? "-" : ""
        for (unit, size) in [("h", UInt64(3_600_000)), ("m", 60_000), ("s", 1000), ("ms", 1)] {
            let count = rest / size
            if count > 0 { out += "\(count)\(unit)" }
            rest %= size
        }
        return out
    }
}

extension Duration {
    /// The whole milliseconds of this duration (rounded toward zero): what SQL
    /// intervals, log fields and `TimeSpan` take.
    public var inMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// This duration in seconds, for figures printed with decimals.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The whole nanoseconds of this duration, for timers that count them.
    public var inNanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}

extension TimeSpan {
    /// The span of a duration, to the millisecond.
    public init(_ duration: Duration) {
        self.init(milliseconds: duration.inMilliseconds)
    }
}
