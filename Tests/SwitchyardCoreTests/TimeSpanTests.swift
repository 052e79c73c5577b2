import Testing

@testable import SwitchyardCore

@Suite struct TimeSpanTests {
    @Test(arguments: [
        ("500ms", Int64(500)), ("30s", 30_000), ("2m", 120_000), ("1h", 3_600_000), ("1h30m", 5_400_000),
        ("1.5s", 1500), ("1m30s", 90_000), ("2h5m10s250ms", 7_510_250), ("0s", 0),
    ])
    func parsesDurations(text: String, milliseconds: Int64) {
        #expect(TimeSpan.parse(text) == TimeSpan(milliseconds: milliseconds))
    }

    @Test(arguments: ["", "-5s", "5", "s", "5x", "5 s", "1.s", ".5s", "30s1m", "1m1m", "1.2.3s", "10000000h", "5S"])
    func rejectsMalformedDurations(text: String) {
        #expect(TimeSpan.parse(text) == nil)
    }

    @Test func rendersInTheSameNotation() throws {
        #expect(TimeSpan(milliseconds: 120_000).description == "2m")
        #expect(TimeSpan(milliseconds: 5_400_000).description == "1h30m")
        #expect(TimeSpan(milliseconds: 1500).description == "1s500ms")
        #expect(TimeSpan(milliseconds: 0).description == "0s")
        #expect(TimeSpan.parse(TimeSpan(milliseconds: 7_510_250).description) == TimeSpan(milliseconds: 7_510_250))
    }
}
