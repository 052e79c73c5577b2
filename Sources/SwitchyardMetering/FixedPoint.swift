/// Exact decimal text <-> scaled integer conversion shared by ``Money`` and ``TokenPrice``.
///
/// Hand-written over UTF-8 bytes so that no value ever passes through `Double`
/// or `Foundation.Decimal`: `"0.1"` at scale 12 is exactly 100_000_000_000.
enum FixedPoint {
    static let powersOfTen: [UInt64] = {
        var powers: [UInt64] = [1]
        for _ in 1...19 { powers.append(powers[powers.count - 1] * 10) }
        return powers
    }()

    /// Parses `-?[0-9]+(\.[0-9]+)?` into value × 10^scale.
    /// - Parameters:
    ///   - what: the noun used in messages ("amount", "price").
    ///   - allowNegative: whether a leading `-` is accepted.
    static func parse(_ text: String, scale: Int, what: String, allowNegative: Bool) throws(MeteringError) -> Int64 {
        let bytes = Array(text.utf8)
        let shown = text.count > 40 ? String(text.prefix(40)) + "…" : text
        func invalid(_ why: String) -> MeteringError {
            MeteringError(
                .invalidAmount,
                "\(what) '\(shown)' is not a plain decimal number: \(why); write it like \(allowNegative ? "'25.00' or '-0.5'" : "'0.14' or '0.003625'") (USD, '.' as the decimal point, no signs other than \(allowNegative ? "a leading '-'" : "none"), no exponents, no separators)"
            )
        }
        guard !bytes.isEmpty else { throw invalid("it is empty") }
        var i = 0
        var negative = false
        if bytes[0] == UInt8(ascii: "-") {
            guard allowNegative else {
                throw MeteringError(.negativeAmount, "\(what) '\(shown)' is negative; a \(what) must be zero or more")
            }
            negative = true
            i = 1
        } else if bytes[0] == UInt8(ascii: "+") {
            throw invalid("a leading '+' is not accepted")
        }
        var magnitude: UInt64 = 0
        var integerDigits = 0
        var fractionDigits = 0
        var seenPoint = false
        let overflow = MeteringError(
            .overflow, "\(what) '\(shown)' is too large: the limit is \(limitText(scale: scale)) USD\(scale == 6 ? " per million tokens" : "")")
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if seenPoint {
                    fractionDigits += 1
                    guard fractionDigits <= scale else {
                        throw MeteringError(
                            .tooManyDecimals,
                            "\(what) '\(shown)' has more than \(scale) decimal places; \(scale) is the finest a \(what) can hold exactly")
                    }
                } else {
                    integerDigits += 1
                }
                let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (plus, o2) = times10.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
                guard !o1, !o2 else { throw overflow }
                magnitude = plus
            case UInt8(ascii: "."):
                guard !seenPoint else { throw invalid("it has two decimal points") }
                guard integerDigits > 0 else { throw invalid("a digit must come before the decimal point") }
                seenPoint = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                throw invalid("exponents are not accepted")
            case UInt8(ascii: ","), UInt8(ascii: "_"), UInt8(ascii: " "), UInt8(ascii: "'"):
                throw invalid("separators and spaces are not accepted")
            default:
                throw invalid("unexpected character")
            }
            i += 1
        }
        guard integerDigits > 0 else { throw invalid("it has no digits") }
        guard !seenPoint || fractionDigits > 0 else { throw invalid("a digit must follow the decimal point") }
        let (scaled, o) = magnitude.multipliedReportingOverflow(by: powersOfTen[scale - fractionDigits])
        guard !o else { throw overflow }
        if negative {
            guard scaled <= UInt64(Int64.max) + 1 else { throw overflow }
            return scaled == UInt64(Int64.max) + 1 ? Int64.min : -Int64(scaled)
        }
        guard scaled <= UInt64(Int64.max) else { throw overflow }
        return Int64(scaled)
    }

    /// Canonical text: no leading zeros, trailing fractional zeros trimmed, no
    /// decimal point for whole numbers, `-` only for values below zero.
    static func canonical(_ value: Int64, scale: Int) -> String {
        let unit = powersOfTen[scale]
        let magnitude = value.magnitude
        let whole = magnitude / unit
        let fraction = magnitude % unit
        let sign = value < 0 ? "-" : ""
        guard fraction != 0 else { return "\(sign)\(whole)" }
        var digits = Array(pad(fraction, to: scale))
        while digits.last == "0" { digits.removeLast() }
        return "\(sign)\(whole).\(String(digits))"
    }

    /// Exactly `decimals` fractional digits, rounding half away from zero.
    static func fixed(_ value: Int64, scale: Int, decimals requested: Int) -> String {
        let decimals = max(0, requested)
        let kept = min(decimals, scale)
        let divisor = powersOfTen[scale - kept]
        var magnitude = value.magnitude / divisor
        let remainder = value.magnitude % divisor
        if divisor > 1, remainder >= divisor - remainder { magnitude += 1 }  // remainder*2 >= divisor without overflow
        let unit = powersOfTen[kept]
        let whole = magnitude / unit
        let fraction = magnitude % unit
        let sign = value < 0 && magnitude != 0 ? "-" : ""
        guard decimals > 0 else { return "\(sign)\(whole)" }
        let zeros = String(repeating: "0", count: decimals - kept)
        return "\(sign)\(whole).\(pad(fraction, to: kept))\(zeros)"
    }

    static func pad(_ value: UInt64, to width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    static func limitText(scale: Int) -> String {
        canonical(Int64.max, scale: scale)
    }
}
