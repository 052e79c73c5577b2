import Foundation
import Testing

@testable import SwitchyardMetering

@Suite("Reservation: a worst case that real usage never exceeds")
struct ReservationTests {
    @Test("bytes × miss price + max_tokens × output price, at peak rates even off-peak")
    func usesPeakRates() throws {
        let row = try #require(try seedBook().row(id: "deepseek-v4-flash@2026-08-16"))
        // 1000 × 0.44 + 500 × 1.32 = 440 + 660 = 1100 µUSD
        #expect(try Reservation.worstCase(promptUTF8Bytes: 1000, maxTokens: 500, row: row) == money("0.0011"))
        #expect(row.upperBoundRates.period == .upperBound)
        #expect(row.upperBoundRates.inputCacheMiss == (try price("0.44")))
    }

    @Test("a row without peak pricing reserves at its only rates")
    func standardRow() throws {
        let row = try #require(try seedBook().row(id: "deepseek-v4-pro@2026-04-26"))
        // 2000 × 0.435 + 1000 × 0.87 = 870 + 870 = 1740 µUSD
        #expect(try Reservation.worstCase(promptUTF8Bytes: 2000, maxTokens: 1000, row: row) == money("0.00174"))
    }

    @Test("actual cost ≤ reservation for any usage within the bounds, any row, any hour")
    func boundHolds() throws {
        let book = try seedBook()
        let starts = try ["2026-08-18T02:30:00Z", "2026-08-18T05:00:00Z", "2026-08-22T02:30:00Z", "2026-04-25T02:30:00Z", "2026-05-05T08:00:00Z"].map
        { try utc($0) }
        let bytes = 1_000
        let maxTokens = 500
        var checked = 0
        for row in book.rows {
            let bound = try Reservation.worstCase(promptUTF8Bytes: bytes, maxTokens: maxTokens, row: row)
            for start in starts {
                let rates = row.rates(at: start)
                for prompt in stride(from: 0, through: bytes, by: 125) {  // tokens ≤ bytes
                    for hit in stride(from: 0, through: prompt, by: 125) {
                        for completion in [0, 1, 250, maxTokens] {
                            for reasoning in [0, completion] {
                                let split = try UsageCost(
                                    usage: TokenUsage(
                                        cacheHitTokens: hit, cacheMissTokens: prompt - hit, completionTokens: completion, reasoningTokens: reasoning),
                                    rates: rates)
                                let unsplit = try UsageCost(usage: TokenUsage(promptTokens: prompt, completionTokens: completion), rates: rates)
                                #expect(split.total <= bound)
                                #expect(unsplit.total <= bound)
                                checked += 2
                            }
                        }
                    }
                }
            }
        }
        #expect(checked > 1_000)
    }

    @Test("the bound is tight: a full-size all-miss call at peak costs exactly the reservation")
    func tight() throws {
        let row = try #require(try seedBook().row(id: "deepseek-v4-pro@2026-08-16"))
        let peak = row.rates(at: try utc("2026-08-18T02:30:00Z"))
        let actual = try UsageCost(usage: TokenUsage(cacheHitTokens: 0, cacheMissTokens: 4096, completionTokens: 8192), rates: peak)
        #expect(actual.total == (try Reservation.worstCase(promptUTF8Bytes: 4096, maxTokens: 8192, row: row)))
    }

    @Test("a reservation window that crosses a price change uses the higher of both rows")
    func acrossPriceChange() throws {
        let book = try seedBook()
        let window = try utc("2026-08-15T23:59:00Z")...utc("2026-08-16T00:01:00Z")
        let rates = try #require(book.upperBoundRates(forModel: "deepseek-v4-flash", during: window))
        #expect(rates.inputCacheHit == (try price("0.014")))  // 08-16 peak, above 04-26's 0.0028
        #expect(rates.inputCacheMiss == (try price("0.44")))
        #expect(rates.output == (try price("1.32")))
        let before = try #require(book.upperBoundRates(forModel: "deepseek-v4-flash", during: try utc("2026-05-01")...utc("2026-05-02")))
        #expect(before.inputCacheMiss == (try price("0.14")))
        #expect(book.upperBoundRates(forModel: "gpt-4o", during: window) == nil)
    }

    @Test("the input bound uses the higher input rate even if a row prices hits above misses")
    func oddRow() throws {
        let row = try PriceRow(
            id: "odd", model: "odd", effectiveFrom: utc("2026-01-01"), inputCacheHit: price("2"), inputCacheMiss: price("1"), output: price("1"))
        let actual = try UsageCost(
            usage: TokenUsage(cacheHitTokens: 100, cacheMissTokens: 0, completionTokens: 0), rates: row.rates(at: utc("2026-02-01")))
        #expect(actual.total <= (try Reservation.worstCase(promptUTF8Bytes: 100, maxTokens: 0, row: row)))
    }

    @Test("negative sizes and overflow are refused")
    func refusals() throws {
        let row = try #require(try seedBook().row(id: "deepseek-v4-pro@2026-08-16"))
        #expect(errorCode { () throws(MeteringError) in try Reservation.worstCase(promptUTF8Bytes: -1, maxTokens: 10, row: row) } == .invalidUsage)
        #expect(errorCode { () throws(MeteringError) in try Reservation.worstCase(promptUTF8Bytes: 10, maxTokens: -1, row: row) } == .invalidUsage)
        #expect(
            errorCode { () throws(MeteringError) in try Reservation.worstCase(promptUTF8Bytes: Int.max / 4, maxTokens: 0, row: row) } == .overflow)
    }
}
