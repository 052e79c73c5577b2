import Foundation
import Testing

@testable import SwitchyardMetering

@Suite("Money: exact pico-USD amounts")
struct MoneyTests {
    @Test(
        "parses plain decimal USD exactly into pico-USD",
        arguments: [
            ("25.00", Int64(25_000_000_000_000)),
            ("25", 25_000_000_000_000),
            ("0.000000123", 123_000),
            ("0.000000000001", 1),
            ("-1.5", -1_500_000_000_000),
            ("0", 0),
            ("007.10", 7_100_000_000_000),
            ("9223372.036854775807", Int64.max),
            ("-9223372.036854775808", Int64.min),
        ])
    func parses(text: String, pico: Int64) throws {
        #expect(try Money(parsing: text).picoUSD == pico)
    }

    @Test(
        "rejects text that is not a plain decimal",
        arguments: [
            "", "-", "abc", "1e3", "1E3", "2.5e-3", "+1", ".5", "5.", "1,000", "1_000", "1 000", " 1", "1 ", "1.2.3", "--1", "0x10", "1-", "½",
        ])
    func rejectsMalformed(text: String) {
        #expect(errorCode { () throws(MeteringError) in try Money(parsing: text) } == .invalidAmount)
    }

    @Test("says why an exponent is refused")
    func exponentMessage() {
        do {
            _ = try Money(parsing: "1e3")
            Issue.record("1e3 was accepted")
        } catch {
            #expect(error.message.contains("exponents are not accepted"))
            #expect(error.message.contains("'1e3'"))
        }
    }

    @Test("refuses more than 12 decimal places rather than rounding")
    func tooManyDecimals() {
        #expect(errorCode { () throws(MeteringError) in try Money(parsing: "0.0000000000001") } == .tooManyDecimals)
        #expect(errorCode { () throws(MeteringError) in try Money(parsing: "1.0000000000000") } == .tooManyDecimals)
    }

    @Test(
        "refuses amounts beyond ±9223372.036854775807 USD",
        arguments: [
            "9223372.036854775808", "10000000", "-9223372.036854775809", "99999999999999999999999",
        ])
    func overflow(text: String) {
        #expect(errorCode { () throws(MeteringError) in try Money(parsing: text) } == .overflow)
    }

    @Test(
        "prints the canonical decimal: trailing zeros trimmed, no point for whole dollars",
        arguments: [
            (Int64(25_000_000_000_000), "25"),
            (25_500_000_000_000, "25.5"),
            (123_000, "0.000000123"),
            (1, "0.000000000001"),
            (0, "0"),
            (-500_000_000_000, "-0.5"),
            (Int64.max, "9223372.036854775807"),
            (Int64.min, "-9223372.036854775808"),
        ])
    func canonical(pico: Int64, text: String) throws {
        let amount = Money(picoUSD: pico)
        #expect(amount.decimalString == text)
        #expect(amount.description == text)
        #expect(try Money(parsing: text) == amount)
    }

    @Test(
        "formats with fixed decimals, rounding half away from zero without floating point",
        arguments: [
            ("0.0000005", 6, "0.000001"),
            ("0.000000499999", 6, "0.000000"),
            ("1.9999995", 6, "2.000000"),
            ("-0.0000005", 6, "-0.000001"),
            ("-0.0000004", 6, "0.000000"),
            ("25", 6, "25.000000"),
            ("0.000137312", 6, "0.000137"),
            ("0.0014658", 6, "0.001466"),
            ("2.5", 0, "3"),
            ("2.4999", 0, "2"),
            ("0.000000000001", 12, "0.000000000001"),
            ("1.5", 14, "1.50000000000000"),
            ("9223372.036854775807", 6, "9223372.036855"),
            ("-9223372.036854775808", 2, "-9223372.04"),
            ("1.25", -3, "1"),
        ])
    func formatted(text: String, decimals: Int, expected: String) throws {
        #expect(try Money(parsing: text).formatted(decimals: decimals) == expected)
    }

    @Test("encodes as a JSON string, never a number")
    func codable() throws {
        let data = try JSONEncoder().encode(["cost_usd": try money("0.000487776")])
        #expect(String(decoding: data, as: UTF8.self) == #"{"cost_usd":"0.000487776"}"#)
        let back = try JSONDecoder().decode([String: Money].self, from: data)
        #expect(back["cost_usd"] == (try money("0.000487776")))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Money].self, from: Data("[0.5]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Money].self, from: Data(#"["1e3"]"#.utf8)) }
    }

    @Test("compares by amount")
    func ordering() throws {
        #expect(try money("0.1") < money("0.11"))
        #expect(try money("-1") < Money.zero)
        #expect(try money("25.00") == money("25"))
    }

    @Test("arithmetic is exact and throws on overflow instead of trapping or wrapping")
    func checkedArithmetic() throws {
        #expect(try money("0.1").adding(money("0.2")) == money("0.3"))
        #expect(try money("1").subtracting(money("1.000000000001")) == money("-0.000000000001"))
        #expect(try money("0.000000145").multiplied(by: 1_000_000) == money("0.145"))
        #expect(try Money.sum([money("0.1"), money("0.2"), money("0.3")]) == money("0.6"))
        #expect(try Money.sum([Money]()) == .zero)
        #expect(errorCode { () throws(MeteringError) in try Money.max.adding(Money(picoUSD: 1)) } == .overflow)
        #expect(errorCode { () throws(MeteringError) in try Money(picoUSD: .min).subtracting(Money(picoUSD: 1)) } == .overflow)
        #expect(errorCode { () throws(MeteringError) in try money("5000000").multiplied(by: 2) } == .overflow)
        #expect(errorCode { () throws(MeteringError) in try Money.sum([.max, Money(picoUSD: 1)]) } == .overflow)
    }
}

@Suite("TokenPrice: exact USD per million tokens")
struct TokenPriceTests {
    @Test(
        "parses USD per million tokens into micro-USD per million",
        arguments: [
            ("0.003625", Int64(3_625)), ("0.0028", 2_800), ("0.14", 140_000), ("3.96", 3_960_000), ("0", 0), ("1740", 1_740_000_000),
        ])
    func parses(text: String, micro: Int64) throws {
        let parsed = try TokenPrice(parsing: text)
        #expect(parsed.microUSDPerMillion == micro)
        #expect(try TokenPrice(parsing: parsed.decimalString) == parsed)
    }

    @Test("rejects more than 6 decimals, negatives and non-decimals")
    func rejects() {
        #expect(errorCode { () throws(MeteringError) in try TokenPrice(parsing: "0.0036251") } == .tooManyDecimals)
        #expect(errorCode { () throws(MeteringError) in try TokenPrice(parsing: "-0.14") } == .negativeAmount)
        #expect(errorCode { () throws(MeteringError) in try TokenPrice(microUSDPerMillion: -1) } == .negativeAmount)
        #expect(errorCode { () throws(MeteringError) in try TokenPrice(parsing: "1e-3") } == .invalidAmount)
        #expect(errorCode { () throws(MeteringError) in try TokenPrice(parsing: "$0.14") } == .invalidAmount)
        #expect(errorCode { () throws(MeteringError) in try TokenPrice(parsing: "10000000000000") } == .overflow)
    }

    @Test("prints canonically", arguments: [("0.003625", "0.003625"), ("0.140", "0.14"), ("3.000000", "3")])
    func canonical(text: String, expected: String) throws {
        #expect(try TokenPrice(parsing: text).decimalString == expected)
    }

    @Test("n tokens cost n × price pico-USD, exactly")
    func costOfTokens() throws {
        #expect(try price("0.14").cost(ofTokens: 1_000_000) == money("0.14"))
        #expect(try price("0.003625").cost(ofTokens: 1).picoUSD == 3_625)
        #expect(try price("0.003625").cost(ofTokens: 1024) == money("0.000003712"))
        #expect(try price("3.96").cost(ofTokens: 384_000) == money("1.52064"))
        #expect(try price("0.14").cost(ofTokens: 0) == .zero)
        #expect(errorCode { () throws(MeteringError) in try price("0.14").cost(ofTokens: -1) } == .invalidUsage)
        #expect(errorCode { () throws(MeteringError) in try price("1000").cost(ofTokens: Int.max / 2) } == .overflow)
    }
}
