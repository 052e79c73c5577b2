import Foundation

/// UTC calendar arithmetic in integers: weekday and hour of an instant, and
/// the instant of a civil date-time. Pure and locale-free, so that peak-hour
/// selection never depends on the server's time zone or calendar settings.
public enum UTCTime {
    /// Whole seconds since 1970-01-01T00:00:00Z, rounded down (so 00:59:59.9 is still hour 0).
    public static func seconds(_ date: Date) -> Int64 {
        let interval = date.timeIntervalSince1970
        guard interval.isFinite else { return interval < 0 ? .min / 2 : .max / 2 }
        let floored = interval.rounded(.down)
        if floored >= 9.0e18 { return .max / 2 }
        if floored <= -9.0e18 { return .min / 2 }
        return Int64(floored)
    }

    /// ISO weekday of `date` in UTC: 1 = Monday … 7 = Sunday.
    public static func weekday(_ date: Date) -> Int {
        let days = floorDiv(seconds(date), 86_400)
        // 1970-01-01 was a Thursday (4).
        return Int((floorMod(days, 7) + 3) % 7) + 1
    }

    /// Hour of day of `date` in UTC, 0…23.
    public static func hour(_ date: Date) -> Int {
        Int(floorMod(seconds(date), 86_400) / 3_600)
    }

    /// The instant of a UTC civil date-time, or nil for an impossible date
    /// (month 13, February 30, hour 24…). Years 1…9999.
    public static func date(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) -> Date? {
        guard (1...9999).contains(year), (1...12).contains(month), (0...23).contains(hour),
            (0...59).contains(minute), (0...59).contains(second)
        else { return nil }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...lengths[month - 1]).contains(day) else { return nil }
        // Howard Hinnant's days_from_civil.
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let total = days * 86_400 + Int64(hour) * 3_600 + Int64(minute) * 60 + Int64(second)
        return Date(timeIntervalSince1970: TimeInterval(total))
    }

    /// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ` (also with
    /// a space instead of `T`); nothing else, so that an offset or a local time
    /// is never silently misread.
    public static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var value = 0
            for i in range {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) else { return nil }
                value = value * 10 + Int(b[i] - UInt8(ascii: "0"))
            }
            return value
        }
        guard b.count == 10 || b.count == 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10)
        else { return nil }
        if b.count == 10 { return date(year: year, month: month, day: day) }
        guard b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "), b[13] == UInt8(ascii: ":"),
            b[16] == UInt8(ascii: ":"), b[19] == UInt8(ascii: "Z"),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        return date(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
    }

    /// `YYYY-MM-DD` when the instant is midnight UTC, else `YYYY-MM-DDTHH:MM:SSZ`.
    public static func format(_ date: Date) -> String {
        let s = seconds(date)
        let days = floorDiv(s, 86_400)
        let secondOfDay = floorMod(s, 86_400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let datePart = "\(year)-\(two(month))-\(two(day))"
        guard secondOfDay != 0 else { return datePart }
        return "\(datePart)T\(two(secondOfDay / 3_600)):\(two(secondOfDay % 3_600 / 60)):\(two(secondOfDay % 60))Z"
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func floorMod(_ a: Int64, _ b: Int64) -> Int64 {
        let r = a % b
        return r != 0 && (r < 0) != (b < 0) ? r + b : r
    }
}
