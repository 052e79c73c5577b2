import Foundation
import Testing

@testable import SwitchyardMetering

/// Costs of the usage in DeepSeek's documented example (1024 cache-hit + 176
/// cache-miss prompt tokens, 300 completion tokens of which 220 are reasoning),
/// computed by hand per million tokens:
/// cost = (1024 × hit + 176 × miss + 300 × output) / 10⁶ USD.
@Suite("Cost of a call under each DeepSeek price row")
struct DeepSeekCostTests {
    static let cases: [(model: String, start: String, rowID: String, period: RateSet.Period, cost: String)] = [
        // 2026-04-24: flash 0.028/0.14/0.28 → 28.672 + 24.64 + 84 = 137.312 µUSD
        ("deepseek-v4-flash", "2026-04-25T12:00:00Z", "deepseek-v4-flash@2026-04-24", .standard, "0.000137312"),
        // pro 0.145/1.74/3.48 → 148.48 + 306.24 + 1044 = 1498.72 µUSD
        ("deepseek-v4-pro", "2026-04-25T12:00:00Z", "deepseek-v4-pro@2026-04-24", .standard, "0.00149872"),
        // 2026-04-26: flash 0.0028/0.14/0.28 → 2.8672 + 24.64 + 84 = 111.5072 µUSD
        ("deepseek-v4-flash", "2026-05-05T02:30:00Z", "deepseek-v4-flash@2026-04-26", .standard, "0.0001115072"),
        // pro 0.003625/0.435/0.87 → 3.712 + 76.56 + 261 = 341.272 µUSD
        ("deepseek-v4-pro", "2026-05-05T02:30:00Z", "deepseek-v4-pro@2026-04-26", .standard, "0.000341272"),
        // 2026-08-16 off-peak (Tue 05:00): flash 0.007/0.22/0.66 → 7.168 + 38.72 + 198 = 243.888 µUSD
        ("deepseek-v4-flash", "2026-08-18T05:00:00Z", "deepseek-v4-flash@2026-08-16", .offPeak, "0.000243888"),
        // peak (Tue 02:30): flash 0.014/0.44/1.32 → 14.336 + 77.44 + 396 = 487.776 µUSD
        ("deepseek-v4-flash", "2026-08-18T02:30:00Z", "deepseek-v4-flash@2026-08-16", .peak, "0.000487776"),
        // off-peak: pro 0.022/0.66/1.98 → 22.528 + 116.16 + 594 = 732.688 µUSD
        ("deepseek-v4-pro", "2026-08-18T05:00:00Z", "deepseek-v4-pro@2026-08-16", .offPeak, "0.000732688"),
        // peak: pro 0.044/1.32/3.96 → 45.056 + 232.32 + 1188 = 1465.376 µUSD
        ("deepseek-v4-pro", "2026-08-18T02:30:00Z", "deepseek-v4-pro@2026-08-16", .peak, "0.001465376"),
    ]

    @Test("hand-computed cost of the documented example usage", arguments: cases)
    func exampleUsage(model: String, start: String, rowID: String, period: RateSet.Period, cost: String) throws {
        let book = try seedBook()
        let priced = try #require(book.price(forBilledModel: model, at: utc(start)))
        #expect(priced.row.id == rowID)
        #expect(priced.rates.period == period)
        let usage = try TokenUsage(cacheHitTokens: 1024, cacheMissTokens: 176, completionTokens: 300, reasoningTokens: 220)
        let result = try UsageCost(usage: usage, rates: priced.rates)
        #expect(result.total == (try money(cost)))
        #expect(result.total.decimalString == cost)
        #expect(!result.isUpperBound)
        #expect(try result.cacheHit.adding(result.cacheMiss).adding(result.output) == result.total)
    }

    @Test("one million tokens of each kind cost exactly the listed price", arguments: cases)
    func perMillion(model: String, start: String, rowID: String, period: RateSet.Period, cost: String) throws {
        let rates = try #require(try seedBook().price(forBilledModel: model, at: utc(start))).rates
        let hit = try UsageCost(usage: TokenUsage(cacheHitTokens: 1_000_000, cacheMissTokens: 0, completionTokens: 0), rates: rates)
        let miss = try UsageCost(usage: TokenUsage(cacheHitTokens: 0, cacheMissTokens: 1_000_000, completionTokens: 0), rates: rates)
        let out = try UsageCost(usage: TokenUsage(cacheHitTokens: 0, cacheMissTokens: 0, completionTokens: 1_000_000), rates: rates)
        #expect(hit.total.decimalString == rates.inputCacheHit.decimalString)
        #expect(miss.total.decimalString == rates.inputCacheMiss.decimalString)
        #expect(out.total.decimalString == rates.output.decimalString)
    }

    @Test("a large pro peak call: 200k hit, 50k miss, 32k completion")
    func largeCall() throws {
        let rates = try #require(try seedBook().price(forBilledModel: "deepseek-v4-pro", at: utc("2026-08-21T09:59:59Z"))).rates
        #expect(rates.period == .peak)  // Friday 09:59:59, last second of the 06–10 window
        // 200000 × 0.044 = 8800; 50000 × 1.32 = 66000; 32000 × 3.96 = 126720 → 201520 µUSD
        let result = try UsageCost(
            usage: TokenUsage(cacheHitTokens: 200_000, cacheMissTokens: 50_000, completionTokens: 32_000, reasoningTokens: 30_000), rates: rates)
        #expect(result.cacheHit == (try money("0.0088")))
        #expect(result.cacheMiss == (try money("0.066")))
        #expect(result.output == (try money("0.12672")))
        #expect(result.total == (try money("0.20152")))
        #expect(result.total.formatted(decimals: 2) == "0.20")
    }

    @Test("reasoning tokens are inside completion tokens and are not billed twice")
    func reasoningNotDoubled() throws {
        let rates = try #require(try seedBook().price(forBilledModel: "deepseek-v4-pro", at: utc("2026-08-18T02:30:00Z"))).rates
        let without = try UsageCost(
            usage: TokenUsage(cacheHitTokens: 1024, cacheMissTokens: 176, completionTokens: 300, reasoningTokens: 0), rates: rates)
        let with = try UsageCost(
            usage: TokenUsage(cacheHitTokens: 1024, cacheMissTokens: 176, completionTokens: 300, reasoningTokens: 300), rates: rates)
        #expect(without == with)
        #expect(with.output == (try price("3.96").cost(ofTokens: 300)))
    }

    @Test("cache hits are priced at the hit rate, misses at the miss rate")
    func hitsVersusMisses() throws {
        let rates = try #require(try seedBook().price(forBilledModel: "deepseek-v4-flash", at: utc("2026-05-01T00:00:00Z"))).rates
        let allHit = try UsageCost(usage: TokenUsage(cacheHitTokens: 10_000, cacheMissTokens: 0, completionTokens: 0), rates: rates)
        let allMiss = try UsageCost(usage: TokenUsage(cacheHitTokens: 0, cacheMissTokens: 10_000, completionTokens: 0), rates: rates)
        #expect(allHit.total == (try money("0.000028")))  // 10000 × 0.0028 / 10⁶
        #expect(allMiss.total == (try money("0.0014")))  // 10000 × 0.14 / 10⁶
    }

    @Test("a prompt without a hit/miss split is priced as all misses and flagged as an upper bound")
    func unsplitPrompt() throws {
        let rates = try #require(try seedBook().price(forBilledModel: "deepseek-v4-flash", at: utc("2026-08-18T02:30:00Z"))).rates
        let usage = try TokenUsage(promptTokens: 1200, completionTokens: 300)
        #expect(usage.cacheHitTokens == nil)
        #expect(usage.promptTokens == 1200)
        let result = try UsageCost(usage: usage, rates: rates)
        #expect(result.isUpperBound)
        #expect(result.cacheHit == .zero)
        #expect(result.total == (try money("0.000924")))  // 1200 × 0.44 + 300 × 1.32 = 528 + 396 µUSD
        let split = try UsageCost(usage: TokenUsage(cacheHitTokens: 1024, cacheMissTokens: 176, completionTokens: 300), rates: rates)
        #expect(split.total <= result.total)
    }

    @Test("impossible usage is refused")
    func invalidUsage() {
        #expect(
            errorCode { () throws(MeteringError) in try TokenUsage(cacheHitTokens: -1, cacheMissTokens: 0, completionTokens: 0) } == .invalidUsage)
        #expect(
            errorCode { () throws(MeteringError) in try TokenUsage(cacheHitTokens: 0, cacheMissTokens: 0, completionTokens: 10, reasoningTokens: 11) }
                == .invalidUsage)
        #expect(errorCode { () throws(MeteringError) in try TokenUsage(promptTokens: 5, completionTokens: -1) } == .invalidUsage)
        #expect(
            errorCode { () throws(MeteringError) in try TokenUsage(cacheHitTokens: Int.max, cacheMissTokens: 1, completionTokens: 0) }
                == .invalidUsage)
    }
}

@Suite("Peak and off-peak selection (UTC, since 2026-08-16)")
struct PeakHourTests {
    @Test(
        "the call's start instant decides peak or off-peak",
        arguments: [
            ("2026-08-18T02:30:00Z", RateSet.Period.peak),  // Tuesday, inside 01–04
            ("2026-08-18T05:00:00Z", .offPeak),  // Tuesday, between windows
            ("2026-08-22T02:30:00Z", .offPeak),  // Saturday
            ("2026-08-23T07:00:00Z", .offPeak),  // Sunday
            ("2026-08-18T01:00:00Z", .peak),  // start hour is inclusive
            ("2026-08-18T00:59:59Z", .offPeak),
            ("2026-08-18T03:59:59Z", .peak),
            ("2026-08-18T04:00:00Z", .offPeak),  // end hour is exclusive
            ("2026-08-18T06:00:00Z", .peak),
            ("2026-08-18T09:59:59Z", .peak),
            ("2026-08-18T10:00:00Z", .offPeak),
            ("2026-08-17T01:00:00Z", .peak),  // Monday
            ("2026-08-21T08:00:00Z", .peak),  // Friday
            ("2026-08-16T02:30:00Z", .offPeak),  // the Sunday the row takes effect
        ])
    func period(start: String, expected: RateSet.Period) throws {
        let book = try seedBook()
        for model in ["deepseek-v4-flash", "deepseek-v4-pro"] {
            let priced = try #require(book.price(forBilledModel: model, at: utc(start)))
            #expect(priced.row.id == "\(model)@2026-08-16")
            #expect(priced.rates.period == expected)
        }
    }

    @Test("sub-second instants round down: 00:59:59.999 is not yet peak")
    func subSecond() throws {
        let book = try seedBook()
        let justBefore = try utc("2026-08-18T01:00:00Z").addingTimeInterval(-0.001)
        #expect(book.price(forBilledModel: "deepseek-v4-flash", at: justBefore)?.rates.period == .offPeak)
    }

    @Test("before 2026-08-16 the same hour has no peak pricing")
    func beforePeakPricing() throws {
        let priced = try #require(try seedBook().price(forBilledModel: "deepseek-v4-flash", at: utc("2026-08-11T02:30:00Z")))
        #expect(priced.row.id == "deepseek-v4-flash@2026-04-26")
        #expect(priced.rates.period == .standard)
    }

    @Test("peak windows refuse impossible hours and weekdays")
    func windowValidation() {
        #expect(errorCode { () throws(MeteringError) in try PeakWindow(weekdays: [1], startHour: 4, endHour: 4) } == .invalidPriceRow)
        #expect(errorCode { () throws(MeteringError) in try PeakWindow(weekdays: [1], startHour: 22, endHour: 2) } == .invalidPriceRow)
        #expect(errorCode { () throws(MeteringError) in try PeakWindow(weekdays: [1], startHour: 0, endHour: 25) } == .invalidPriceRow)
        #expect(errorCode { () throws(MeteringError) in try PeakWindow(weekdays: [0], startHour: 1, endHour: 4) } == .invalidPriceRow)
        #expect(errorCode { () throws(MeteringError) in try PeakWindow(weekdays: [], startHour: 1, endHour: 4) } == .invalidPriceRow)
        #expect(
            errorCode { () throws(MeteringError) in try PeakPricing(windows: [], inputCacheHit: .zero, inputCacheMiss: .zero, output: .zero) }
                == .invalidPriceRow)
    }

    @Test(
        "UTC weekday and hour come from integer arithmetic",
        arguments: [
            ("1970-01-01T00:00:00Z", 4, 0), ("2026-08-16T23:59:59Z", 7, 23), ("2026-08-17T00:00:00Z", 1, 0),
            ("2026-08-22T13:00:00Z", 6, 13), ("1969-12-31T23:00:00Z", 3, 23), ("2000-02-29T12:00:00Z", 2, 12),
        ])
    func weekdayAndHour(text: String, weekday: Int, hour: Int) throws {
        let date = try utc(text)
        #expect(UTCTime.weekday(date) == weekday)
        #expect(UTCTime.hour(date) == hour)
        #expect(UTCTime.parse(UTCTime.format(date)) == date)
        #expect(UTCTime.format(date) == (text.hasSuffix("T00:00:00Z") ? String(text.prefix(10)) : text))
    }
}

@Suite("Price selection: longest model prefix, latest effective row")
struct PriceSelectionTests {
    static func row(_ model: String, _ from: String, miss: String = "1") throws -> PriceRow {
        let start = try utc(from)
        return try PriceRow(
            id: PriceRow.defaultID(model: model, effectiveFrom: start), model: model, effectiveFrom: start,
            inputCacheHit: price("0.1"), inputCacheMiss: price(miss), output: price("2"))
    }

    @Test("a dated variant is priced by its family's row")
    func datedVariant() throws {
        let book = try seedBook()
        let at = try utc("2026-08-18T05:00:00Z")
        #expect(book.price(forBilledModel: "deepseek-v4-flash-0731", at: at)?.row.id == "deepseek-v4-flash@2026-08-16")
        #expect(book.price(forBilledModel: "deepseek-v4-pro-2026-08", at: at)?.row.id == "deepseek-v4-pro@2026-08-16")
    }

    @Test("the longest matching model name wins over a shorter one")
    func longestPrefix() throws {
        let book = try PriceBook(rows: [
            Self.row("deepseek", "2026-01-01", miss: "9"), Self.row("deepseek-v4-flash", "2026-04-24", miss: "1"),
            Self.row("deepseek-v4", "2026-01-01", miss: "5"),
        ])
        let at = try utc("2026-05-01")
        #expect(book.price(forBilledModel: "deepseek-v4-flash-0731", at: at)?.row.model == "deepseek-v4-flash")
        #expect(book.price(forBilledModel: "deepseek-v4-pro", at: at)?.row.model == "deepseek-v4")
        #expect(book.price(forBilledModel: "deepseek-chat", at: at)?.row.model == "deepseek")
    }

    @Test("a more specific name with no row in force yet falls back to the shorter name's row")
    func specificNotYetEffective() throws {
        let book = try PriceBook(rows: [Self.row("deepseek-v4", "2026-01-01"), Self.row("deepseek-v4-flash", "2026-04-24")])
        #expect(book.price(forBilledModel: "deepseek-v4-flash", at: try utc("2026-03-01"))?.row.model == "deepseek-v4")
        #expect(book.price(forBilledModel: "deepseek-v4-flash", at: try utc("2026-04-24"))?.row.model == "deepseek-v4-flash")
    }

    @Test(
        "the latest row effective at or before the call's start applies",
        arguments: [
            ("2026-04-24T00:00:00Z", "deepseek-v4-flash@2026-04-24"),  // exactly at the first row
            ("2026-04-25T00:00:00Z", "deepseek-v4-flash@2026-04-24"),  // between rows: the older one
            ("2026-04-25T23:59:59Z", "deepseek-v4-flash@2026-04-24"),
            ("2026-04-26T00:00:00Z", "deepseek-v4-flash@2026-04-26"),  // exactly at the new row's instant: the new row
            ("2026-08-15T23:59:59Z", "deepseek-v4-flash@2026-04-26"),
            ("2026-08-16T00:00:00Z", "deepseek-v4-flash@2026-08-16"),
            ("2027-01-01T00:00:00Z", "deepseek-v4-flash@2026-08-16"),
        ])
    func effectiveDate(start: String, rowID: String) throws {
        #expect(try seedBook().price(forBilledModel: "deepseek-v4-flash", at: utc(start))?.row.id == rowID)
    }

    @Test("a call on 2026-04-25 uses the 2026-04-24 prices")
    func april25() throws {
        let rates = try #require(try seedBook().price(forBilledModel: "deepseek-v4-flash", at: utc("2026-04-25T10:00:00Z"))).rates
        #expect(rates.inputCacheHit == (try price("0.028")))
    }

    @Test(
        "models without a price row are unpriced (nil), never zero",
        arguments: [
            ("gpt-4o", "2026-08-18T05:00:00Z"),
            ("deepseek-flash", "2026-08-18T05:00:00Z"),  // V4.1's name is not under deepseek-v4-flash
            ("deepseek-v4", "2026-08-18T05:00:00Z"),  // shorter than every price-book name
            ("DeepSeek-V4-Flash", "2026-08-18T05:00:00Z"),  // matching is case-sensitive
            ("", "2026-08-18T05:00:00Z"),
            ("deepseek-v4-flash", "2026-04-23T23:59:59Z"),  // before the first row
        ])
    func unpriced(model: String, start: String) throws {
        #expect(try seedBook().price(forBilledModel: model, at: utc(start)) == nil)
    }

    @Test("a book refuses duplicate ids and two rows of one model at one instant")
    func duplicates() throws {
        let a = try Self.row("m", "2026-01-01")
        let b = try PriceRow(id: a.id, model: "n", effectiveFrom: a.effectiveFrom, inputCacheHit: .zero, inputCacheMiss: .zero, output: .zero)
        let c = try PriceRow(id: "other", model: "m", effectiveFrom: a.effectiveFrom, inputCacheHit: .zero, inputCacheMiss: .zero, output: .zero)
        #expect(errorCode { () throws(MeteringError) in try PriceBook(rows: [a, b]) } == .duplicatePriceRow)
        #expect(errorCode { () throws(MeteringError) in try PriceBook(rows: [a, c]) } == .duplicatePriceRow)
        #expect(
            errorCode { () throws(MeteringError) in
                try PriceRow(id: "x", model: "has space", effectiveFrom: a.effectiveFrom, inputCacheHit: .zero, inputCacheMiss: .zero, output: .zero)
            } == .invalidPriceRow)
    }
}
