import Foundation
import Testing

@testable import SwitchyardMetering

@Suite("Seed file Data/prices.yaml")
struct SeedTests {
    @Test("the seed holds DeepSeek's table, row by row")
    func seedRows() throws {
        let rows = try PriceBook.parseSeed(seedText())
        let expected: [(id: String, model: String, from: String, rates: [String], peak: [String]?)] = [
            ("deepseek-v4-flash@2026-04-24", "deepseek-v4-flash", "2026-04-24", ["0.028", "0.14", "0.28"], nil),
            ("deepseek-v4-pro@2026-04-24", "deepseek-v4-pro", "2026-04-24", ["0.145", "1.74", "3.48"], nil),
            ("deepseek-v4-flash@2026-04-26", "deepseek-v4-flash", "2026-04-26", ["0.0028", "0.14", "0.28"], nil),
            ("deepseek-v4-pro@2026-04-26", "deepseek-v4-pro", "2026-04-26", ["0.003625", "0.435", "0.87"], nil),
            ("deepseek-v4-flash@2026-08-16", "deepseek-v4-flash", "2026-08-16", ["0.007", "0.22", "0.66"], ["0.014", "0.44", "1.32"]),
            ("deepseek-v4-pro@2026-08-16", "deepseek-v4-pro", "2026-08-16", ["0.022", "0.66", "1.98"], ["0.044", "1.32", "3.96"]),
        ]
        #expect(rows.count == expected.count)
        let windows = [
            try PeakWindow(weekdays: PeakWindow.mondayToFriday, startHour: 1, endHour: 4),
            try PeakWindow(weekdays: PeakWindow.mondayToFriday, startHour: 6, endHour: 10),
        ]
        for (row, want) in zip(rows, expected) {
            #expect(row.id == want.id)
            #expect(row.model == want.model)
            #expect(row.effectiveFrom == (try utc(want.from)))
            #expect([row.inputCacheHit, row.inputCacheMiss, row.output] == (try want.rates.map(price)))
            if let peakRates = want.peak {
                let peak = try #require(row.peak)
                #expect([peak.inputCacheHit, peak.inputCacheMiss, peak.output] == (try peakRates.map(price)))
                #expect(peak.windows == windows)
            } else {
                #expect(row.peak == nil)
            }
        }
        #expect(rows.first?.inputCacheHit.microUSDPerMillion == 28_000)
        #expect(rows[3].inputCacheHit.microUSDPerMillion == 3_625)
    }

    static let minimalRow = """
        version: 1
        prices:
          - model: m
            effective_from: "2026-01-01"
            input_cache_hit: "0.1"
            input_cache_miss: "0.2"
            output: "0.3"
        """

    @Test("a row without an id gets model@date")
    func defaultID() throws {
        let rows = try PriceBook.parseSeed(Self.minimalRow)
        #expect(rows.map(\.id) == ["m@2026-01-01"])
    }

    @Test("one row can be read from a JSON body too")
    func jsonRow() throws {
        let row = try PriceBook.parseRow(
            #"{"model": "deepseek-v4-pro", "effective_from": "2026-09-01T12:00:00Z", "input_cache_hit": "0.02", "input_cache_miss": "0.6", "output": "1.8"}"#
        )
        #expect(row.id == "deepseek-v4-pro@2026-09-01T12:00:00Z")
        #expect(row.output == (try price("1.8")))
        #expect(row.effectiveFrom == (try utc("2026-09-01T12:00:00Z")))
    }

    @Test(
        "refuses mistakes with a position and a hint",
        arguments: [
            ("output: \"0.3\"", "output: 0.3", "quoted string", 7),  // unquoted price: would be a float elsewhere
            ("output: \"0.3\"", "ouput: \"0.3\"", "unknown key 'ouput'", 7),
            ("output: \"0.3\"", "output: \"0.3\"\n    output: \"0.4\"", "appears twice", 7),  // Yams points at the first occurrence
            ("output: \"0.3\"", "output: \"0.3333333\"", "more than 6 decimal places", 7),
            ("output: \"0.3\"", "output: \"-0.3\"", "negative", 7),
            ("output: \"0.3\"", "output: \"3e-1\"", "exponents", 7),
            ("effective_from: \"2026-01-01\"", "effective_from: \"2026-02-30\"", "UTC date", 4),
            ("effective_from: \"2026-01-01\"", "effective_from: \"2026-01-01T00:00:00+02:00\"", "UTC date", 4),
            ("version: 1", "version: 2", "version", 1),
            ("output: \"0.3\"", "output: [\"0.3\"]", "single value", 7),
        ])
    func rejects(find: String, replace: String, hint: String, line: Int) {
        let text = Self.minimalRow.replacingOccurrences(of: find, with: replace)
        do {
            _ = try PriceBook.parseSeed(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .invalidSeed)
            #expect(error.message.contains(hint), "\(error)")
            #expect(error.line == line, "\(error)")
        }
    }

    @Test("refuses a missing rate")
    func missingRate() {
        let text = Self.minimalRow.replacingOccurrences(of: "    output: \"0.3\"\n", with: "").replacingOccurrences(
            of: "    output: \"0.3\"", with: "")
        do {
            _ = try PriceBook.parseSeed(text)
            Issue.record("accepted a row without output")
        } catch {
            #expect(error.message.contains("missing 'output'"), "\(error)")
        }
    }

    @Test("refuses bad peak windows")
    func badWindows() {
        for (window, hint) in [
            ("{weekdays: [mon], start_hour: 22, end_hour: 2}", "split windows that cross midnight"),
            ("{weekdays: [monday], start_hour: 1, end_hour: 4}", "unknown weekday 'monday'"),
            ("{weekdays: [mon], start_hour: 1}", "missing 'end_hour'"),
            ("{weekdays: [mon], start_hour: one, end_hour: 4}", "whole number"),
        ] {
            let text =
                Self.minimalRow + """

                        peak:
                          windows:
                            - \(window)
                          input_cache_hit: "0.2"
                          input_cache_miss: "0.4"
                          output: "0.6"
                    """
            do {
                _ = try PriceBook.parseSeed(text)
                Issue.record("accepted window \(window)")
            } catch {
                #expect(error.code == .invalidSeed)
                #expect(error.message.contains(hint), "\(error)")
                #expect(error.line == 10, "\(error)")
            }
        }
    }

    @Test("refuses two rows of one model at one instant")
    func duplicateRows() {
        let text = Self.minimalRow + "\n" + Self.minimalRow.split(separator: "\n").dropFirst(2).joined(separator: "\n")
        #expect(errorCode { () throws(MeteringError) in try PriceBook.parseSeed(text) } == .duplicatePriceRow)
    }

    @Test("refuses text that is not YAML, with its position")
    func notYAML() {
        do {
            _ = try PriceBook.parseSeed("version: 1\nprices: [\n  - {")
            Issue.record("accepted broken YAML")
        } catch {
            #expect(error.code == .invalidSeed)
            #expect(error.line != nil)
        }
        #expect(errorCode { () throws(MeteringError) in try PriceBook.parseSeed("") } == .invalidSeed)
        #expect(errorCode { () throws(MeteringError) in try PriceBook.parseSeed("- 1\n- 2") } == .invalidSeed)
    }
}
