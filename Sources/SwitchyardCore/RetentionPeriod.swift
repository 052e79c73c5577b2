/// How long finished runs, their event logs or ledger rows are kept: a span of time, or
/// forever. Its own type rather than a ``TimeSpan`` because retention is counted in
/// days (`30d`), which workflow durations never are, and because "forever" is a value
/// an operator must be able to say and a tenant must be able to keep.
///
/// Written `forever`, a whole number of days (`30d`), or a ``TimeSpan`` (`12h`, `90m`).
public enum RetentionPeriod: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    case forever
    case span(TimeSpan)

    static let day: Int64 = 86_400_000

    /// The shortest retention a tenant or the server may be given: pruning runs that
    /// finished moments ago would race the clients still reading them. (`yard prune
    /// --older-than` is an explicit request and may go lower.)
    public static let minimumSetting = TimeSpan(milliseconds: 3_600_000)

    /// Parses `forever`, `<days>d` or a duration (see ``TimeSpan/parse(_:)``); nil for
    /// anything else, negative spans and spans over ``TimeSpan/maximum``.
    public static func parse(_ text: String) -> RetentionPeriod? {
        if text == "forever" { return .forever }
        if text.hasSuffix("d"), let days = Int64(text.dropLast()), days >= 0, days <= TimeSpan.maximum.milliseconds / day {
            return .span(TimeSpan(milliseconds: days * day))
        }
        return TimeSpan.parse(text).map { .span($0) }
    }

    public init?(_ description: String) {
        guard let parsed = Self.parse(description) else { return nil }
        self = parsed
    }

    /// `forever`, whole days as `30d`, anything else as a duration (`12h`).
    public var description: String {
        switch self {
        case .forever: "forever"
        case .span(let span) where span.milliseconds > 0 && span.milliseconds % Self.day == 0: "\(span.milliseconds / Self.day)d"
        case .span(let span): span.description
        }
    }

    /// The span in milliseconds; nil for forever.
    public var milliseconds: Int64? {
        switch self {
        case .forever: nil
        case .span(let span): span.milliseconds
        }
    }

    /// The shorter of two retentions (forever is the longest).
    public func shorter(_ other: RetentionPeriod) -> RetentionPeriod {
        switch (self, other) {
        case (.forever, _): other
        case (_, .forever): self
        case (.span(let a), .span(let b)): .span(min(a, b))
        }
    }

    /// The stored form: milliseconds, with 0 for forever (a zero retention is never
    /// stored: settings are at least ``minimumSetting``).
    public var storedMilliseconds: Int64 { milliseconds ?? 0 }

    /// The value of a stored column (see ``storedMilliseconds``).
    public init(storedMilliseconds: Int64) {
        self = storedMilliseconds == 0 ? .forever : .span(TimeSpan(milliseconds: storedMilliseconds))
    }

    /// Whether this may be a tenant's or the server's setting: forever, or at least
    /// ``minimumSetting``.
    public var isValidSetting: Bool {
        milliseconds.map { $0 >= Self.minimumSetting.milliseconds } ?? true
    }
}
