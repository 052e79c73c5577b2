import Foundation
import Testing

@testable import SwitchyardMetering

/// A UTC instant from `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ`; fails the test on a typo.
func utc(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Date {
    try #require(UTCTime.parse(text), "bad test date \(text)", sourceLocation: sourceLocation)
}

func money(_ text: String) throws(MeteringError) -> Money { try Money(parsing: text) }
func price(_ text: String) throws(MeteringError) -> TokenPrice { try TokenPrice(parsing: text) }

/// The repository's seed file, `Data/prices.yaml`.
func seedText() throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appendingPathComponent("Data/prices.yaml"), encoding: .utf8)
}

func seedBook() throws -> PriceBook {
    try PriceBook(rows: PriceBook.parseSeed(seedText()))
}

/// Runs `body` and returns the metering error code it threw, or nil if it did not throw.
func errorCode<T>(_ body: () throws(MeteringError) -> T) -> MeteringError.Code? {
    do {
        _ = try body()
        return nil
    } catch {
        return error.code
    }
}
