import Foundation
import SwitchyardCore
import Testing

@testable import SwitchyardGate

private let gsmLike =
    "Kylar went to the store to buy glasses for his new apartment. One glass costs $5, but every second glass costs only 60% of the price. Kylar wants to buy 16 glasses. How much does he need to pay for them?"
private let mcLike = "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"

@Suite struct FeatureTests {
    @Test func namesLabelsAndWeightsLineUp() {
        #expect(GateFeatures.names.count == GateFeatures.labels.count)
        #expect(GateWeights.flash.count == GateFeatures.count)
        #expect(GateWeights.pro.count == GateFeatures.count)
        #expect(GateFeatures(gsmLike).values.count == GateFeatures.count)
    }

    @Test func multipleChoiceShapeIsRecognised() {
        #expect(GateFeatures(mcLike)["multiple_choice"] == 1)
        #expect(GateFeatures(gsmLike)["multiple_choice"] == 0)
        #expect(GateFeatures("A. only one option\nthen prose")["multiple_choice"] == 0)
    }

    @Test func numbersMoneyAndPercentagesAreCounted() throws {
        let features = GateFeatures("It costs $1,000.50 and 20% more, i.e. 3 items for 7 days.")
        // 1,000.50 is one number; then 20, 3, 7.
        #expect(try #require(features["numbers"]) == 0.4)
        #expect(try #require(features["money_percent_fraction"]) > 0)
        #expect(try #require(features["unit_words"]) > 0)
        #expect(GateFeatures("no digits here")["numbers"] == 0)
    }

    @Test func mathsAndCodeMarkers() throws {
        let maths = GateFeatures("Solve the equation x^2 + 3x = 10 for the integer x.")
        #expect(try #require(maths["math_symbols"]) >= 0.3)
        #expect(try #require(maths["maths_words"]) > 0)
        let code = GateFeatures("func f() { return 1; }")
        #expect(try #require(code["code_markers"]) >= 0.3)
        #expect(GateFeatures("A friendly hello.")["code_markers"] == 0)
    }

    @Test func longerPromptsHaveLargerLengthFeatures() throws {
        let short = try #require(GateFeatures("How many?")["log_length"])
        let long = try #require(GateFeatures(String(repeating: "How many apples are left after each day? ", count: 20))["log_length"])
        #expect(long > short)
        #expect(GateFeatures("")["log_length"] == 0)
    }

    @Test func featuresStayBoundedOnHostileInput() {
        let features = GateFeatures(String(repeating: "9", count: 200_000) + String(repeating: "{", count: 10_000))
        #expect(features.values.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 5 })
    }

    @Test func log2WithoutFoundationIsAccurate() {
        for x in [1.0, 2, 3, 10, 1000, 123_456.0] {
            #expect(abs(gateLog2(x) - Foundation.log2(x)) < 1e-5)
        }
    }
}

@Suite struct ScoreTests {
    let gate = Gate()
    let request = GateRequest(prompt: gsmLike, stepKey: "w/s")

    @Test func noHistoryGivesASensibleScoreWithReasons() {
        let (score, reasons) = gate.score(request, history: .empty)
        #expect(score > -0.5 && score < 0.6)
        #expect(reasons.first?.hasPrefix("text prior: flash") == true)
        #expect(!reasons.contains { $0.hasPrefix("step history") })
    }

    @Test func declaredHardDifficultyRaisesTheScoreAndEasyLowersIt() {
        let plain = gate.score(request, history: .empty).score
        var hard = request
        hard.difficulty = .hard
        var easy = request
        easy.difficulty = .easy
        let hardScore = gate.score(hard, history: .empty)
        #expect(hardScore.score > plain)
        #expect(gate.score(easy, history: .empty).score < plain)
        #expect(hardScore.reasons.contains("declared difficulty: hard (+0.15)"))
    }

    @Test func thinkingToolsAndSchemaComplexityRaiseTheScore() {
        let plain = gate.score(request, history: .empty).score
        var thinking = request
        thinking.thinking = true
        #expect(gate.score(thinking, history: .empty).score > plain)
        var tools = request
        tools.toolCount = 3
        #expect(gate.score(tools, history: .empty).score > plain)
        var schema = request
        schema.outputSchema = [
            "type": "object",
            "properties": [
                "a": ["type": "string"], "b": ["type": "array", "items": ["type": "object", "properties": ["c": ["type": "number"]]]],
                "d": ["type": "object", "properties": ["e": ["type": "string"], "f": ["type": "string"], "g": ["type": "boolean"]]],
            ],
        ]
        let scored = gate.score(schema, history: .empty)
        #expect(scored.score > plain)
        #expect(scored.reasons.contains { $0.hasPrefix("output schema:") })
    }

    @Test func flashFailuresOnTheStepRaiseTheScore() {
        let none = gate.score(request, history: .empty).score
        var failing = StepHistory.empty
        for _ in 0..<3 { failing.record(.flash, succeeded: false) }
        failing.record(.flash, succeeded: true)
        let scored = gate.score(request, history: failing)
        #expect(scored.score > none)
        #expect(scored.reasons.contains { $0.hasPrefix("step history: flash failed 3/4, pro failed 0/0 (+") })
        // And more failures raise it more (monotonic).
        var more = failing
        for _ in 0..<4 { more.record(.flash, succeeded: false) }
        #expect(gate.score(request, history: more).score > scored.score)
    }

    @Test func flashSuccessesLowerTheScore() {
        var good = StepHistory.empty
        for _ in 0..<20 { good.record(.flash, succeeded: true) }
        #expect(gate.score(request, history: good).score < gate.score(request, history: .empty).score)
    }

    @Test func proOnlySuccessesRaiseTheScoreAndProFailuresLowerIt() {
        let model = GateModel(
            flashWeights: GateWeights.flash, proWeights: GateWeights.pro, baseFlash: GateWeights.baseFlash, basePro: GateWeights.basePro,
            priorStrength: 10, exploration: 0)
        let noExploration = Gate(model: model)
        let none = noExploration.score(request, history: .empty).score
        var proGood = StepHistory.empty
        for _ in 0..<10 { proGood.record(.pro, succeeded: true) }
        var proBad = StepHistory.empty
        for _ in 0..<10 { proBad.record(.pro, succeeded: false) }
        #expect(noExploration.score(request, history: proGood).score > none)
        #expect(noExploration.score(request, history: proBad).score < none)
    }

    @Test func oneOrTwoOutcomesDoNotSwingTheDecision() {
        var twoFailures = StepHistory.empty
        twoFailures.record(.flash, succeeded: false)
        twoFailures.record(.flash, succeeded: false)
        let moved = gate.score(request, history: twoFailures).score - gate.score(request, history: .empty).score
        #expect(moved > 0 && moved < 0.2)
    }

    @Test func explorationFavoursTheExpertLessTriedOnTheStep() {
        var onlyPro = StepHistory.empty
        for index in 0..<60 { onlyPro.record(.pro, succeeded: index % 5 != 0) }
        let breakdown = gate.explain(request, history: onlyPro)
        #expect(breakdown.exploration < 0)
        #expect(breakdown.reasons.contains { $0.hasPrefix("exploring flash") })
        #expect(gate.explain(request, history: .empty).exploration == 0)
    }

    @Test func theSameInputGivesTheSameScore() {
        var history = StepHistory.empty
        history.record(.pro, succeeded: true)
        #expect(gate.score(request, history: history).score == gate.score(request, history: history).score)
    }
}

@Suite struct DecisionTests {
    let gate = Gate()
    let request = GateRequest(prompt: mcLike, stepKey: "w/s")

    @Test func proWhenTheScoreReachesTheThreshold() {
        let score = gate.score(request, history: .empty).score
        let atScore = gate.decide(request, history: .empty, threshold: score)
        #expect(atScore.expert == "pro")
        #expect(atScore.policy == .auto)
        #expect(atScore.score == score)
        #expect(atScore.threshold == score)
        #expect(!atScore.escalated)
        #expect(gate.decide(request, history: .empty, threshold: score + 0.001).expert == "flash")
        #expect(gate.decide(request, history: .empty, threshold: -1).expert == "pro")
        #expect(gate.decide(request, history: .empty, threshold: 1.5).expert == "flash")
    }

    @Test func aLeanTowardsFlashRaisesTheBarAndIsExplained() {
        let score = gate.score(request, history: .empty).score
        let lean = GateLean(towardsFlash: 0.05, reason: "budget 90% spent")
        let decision = gate.decide(request, history: .empty, threshold: score, lean: lean)
        #expect(decision.expert == "flash")
        #expect(decision.threshold == score + 0.05)
        #expect(decision.reasons.last == "lean towards flash: budget 90% spent (threshold +0.05)")
        let towardsPro = gate.decide(request, history: .empty, threshold: score + 0.05, lean: GateLean(towardsFlash: -0.05))
        #expect(towardsPro.expert == "pro")
        #expect(GateLean.none.towardsFlash == 0)
    }

    @Test func fixedAndCascadeDecisions() {
        let fixed = Gate.fixed("local-llama")
        #expect(fixed.policy == .fixed)
        #expect(fixed.expert == "local-llama")
        #expect(fixed.score == nil && fixed.threshold == nil && !fixed.escalated)
        #expect(!fixed.reasons.isEmpty)
        let escalated = Gate.cascade(escalated: true)
        #expect(escalated.policy == .cascade && escalated.expert == "pro" && escalated.escalated)
        #expect(Gate.cascade(escalated: false).expert == "flash")
    }

    @Test func decisionJSONHasExactlyTheRecordedKeys() throws {
        for decision in [Gate.fixed("pro"), gate.decide(request, history: .empty, threshold: 0.1)] {
            let data = try JSONEncoder().encode(decision)
            let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(Set(object.keys) == ["policy", "expert", "score", "threshold", "reasons", "escalated"])
            #expect(try JSONDecoder().decode(RouteDecision.self, from: data) == decision)
        }
    }

    @Test func defaultThresholdIsOnTheScoreScale() {
        #expect(Gate.defaultThreshold > -1 && Gate.defaultThreshold < 1)
    }
}

@Suite struct StepHistoryTests {
    @Test func recordCountsEachOutcome() {
        var history = StepHistory.empty
        history.record(.flash, succeeded: true)
        history.record(.flash, succeeded: false)
        history.record(.flash, succeeded: false)
        history.record(.pro, succeeded: true)
        #expect(history == StepHistory(flashSuccesses: 1, flashFailures: 2, proSuccesses: 1, proFailures: 0))
        #expect(history.trials(.flash) == 3 && history.trials(.pro) == 1)
    }

    @Test func jsonRoundTrip() throws {
        let history = StepHistory(flashSuccesses: 3, flashFailures: 1.5, proSuccesses: 7, proFailures: 0.25)
        let data = try JSONEncoder().encode(history)
        #expect(try JSONDecoder().decode(StepHistory.self, from: data) == history)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["flashSuccesses", "flashFailures", "proSuccesses", "proFailures"])
    }
}

@Suite struct CSVTests {
    @Test func quotedFieldsWithCommasNewlinesAndQuotes() throws {
        let text = "a,b,c\r\n\"x, y\",\"line1\nline2\",\"say \"\"hi\"\"\"\n1,,3"
        let records = try CSV.parse(text)
        #expect(records.count == 3)
        #expect(records[1].fields == ["x, y", "line1\nline2", "say \"hi\""])
        #expect(records[1].line == 2)
        #expect(records[2].fields == ["1", "", "3"])
        #expect(records[2].line == 4)  // the embedded newline moved it down one line
    }

    @Test func byteOrderMarkBlankLinesAndMissingFinalNewline() throws {
        let records = try CSV.parse(Array("\u{FEFF}h1,h2\n\nv1,v2".utf8))
        #expect(records.map(\.fields) == [["h1", "h2"], ["v1", "v2"]])
        #expect(records[1].line == 3)
        #expect(try CSV.parse("").isEmpty)
        #expect(try CSV.parse("\"\",x\n").first?.fields == ["", "x"])
    }

    @Test func malformedQuotesAreErrorsWithTheirLine() {
        #expect(throws: CSVError.self) { try CSV.parse("a,b\n\"open,1\n") }
        do {
            _ = try CSV.parse("a,b\nx\"y,1\n")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 2)
            #expect(error.description.contains("line 2"))
        }
        #expect(throws: CSVError.self) { try CSV.parse("\"a\"b,c\n") }
    }
}

@Suite struct DatasetTests {
    @Test func parsesRowsWithAndWithoutAStepColumn() throws {
        let withSteps = try GateDataset.parse(Array("domain,prompt,flash_correct,pro_correct\nmaths,\"1+1, twice?\",true,FALSE\n".utf8))
        #expect(withSteps.hasSteps)
        #expect(withSteps.rows == [GateBenchmarkRow(prompt: "1+1, twice?", step: "maths", flashCorrect: true, proCorrect: false, line: 2)])
        let plain = try GateDataset.parse(Array("prompt,flash_correct,pro_correct\nq,false,true\n".utf8))
        #expect(!plain.hasSteps)
        #expect(plain.rows.first?.step == GateDataset.sharedStep)
    }

    @Test func missingColumnsAndBadBooleansAreClearErrors() {
        #expect(throws: GateBenchmarkError.missingColumn("pro_correct", available: ["prompt", "flash_correct"])) {
            try GateDataset.parse(Array("prompt,flash_correct\nq,true\n".utf8))
        }
        #expect(throws: GateBenchmarkError.badBoolean(line: 3, column: "pro_correct", value: "maybe")) {
            try GateDataset.parse(Array("prompt,flash_correct,pro_correct\nq,true,true\nr,false,maybe\n".utf8))
        }
        #expect(
            GateBenchmarkError.badBoolean(line: 3, column: "pro_correct", value: "maybe").description
                == "line 3: 'maybe' in column pro_correct is not a boolean (expected true or false)")
        #expect(throws: GateBenchmarkError.missingColumn("task", available: ["prompt", "flash_correct", "pro_correct"])) {
            try GateDataset.parse(Array("prompt,flash_correct,pro_correct\nq,true,true\n".utf8), stepColumn: "task", requireStep: true)
        }
        #expect(throws: GateBenchmarkError.empty) { try GateDataset.parse([]) }
        #expect(throws: GateBenchmarkError.shortRecord(line: 2, expected: 3, found: 2)) {
            try GateDataset.parse(Array("prompt,flash_correct,pro_correct\nq,true\n".utf8))
        }
    }

    @Test func theSplitIsAlternatingStepsOrAlternatingRows() {
        let stepped = GateDataset(
            rows: ["d", "a", "c", "b", "a"].map { GateBenchmarkRow(prompt: $0, step: $0, flashCorrect: true, proCorrect: true) }, hasSteps: true)
        #expect(Set(stepped.subset(.tuning).rows.map(\.step)) == ["a", "c"])
        #expect(Set(stepped.subset(.holdout).rows.map(\.step)) == ["b", "d"])
        let plain = GateDataset(
            rows: (1...5).map { GateBenchmarkRow(prompt: "\($0)", step: "s", flashCorrect: true, proCorrect: true) }, hasSteps: false)
        #expect(plain.subset(.tuning).rows.map(\.prompt) == ["1", "3", "5"])
        #expect(plain.subset(.holdout).rows.map(\.prompt) == ["2", "4"])
        #expect(plain.subset(.all).rows.count == 5)
    }
}

@Suite struct PriceTests {
    @Test func decimalUSDParsesToMicroUSDIntegers() throws {
        #expect(GatePrices.microUSD("0.22") == 220_000)
        #expect(GatePrices.microUSD("1.74") == 1_740_000)
        #expect(GatePrices.microUSD("0.0028") == 2_800)
        #expect(GatePrices.microUSD("3") == 3_000_000)
        #expect(GatePrices.microUSD(".5") == 500_000)
        #expect(GatePrices.microUSD("0.0000001") == nil)
        #expect(GatePrices.microUSD("1e3") == nil)
        #expect(GatePrices.microUSD("-1") == nil)
        #expect(GatePrices.microUSD(".") == nil)
        let pair = try GatePrices.parsePair("0.66:1.98")
        #expect(pair.input == 660_000 && pair.output == 1_980_000)
        #expect(throws: GateBenchmarkError.badPrice("0.66")) { try GatePrices.parsePair("0.66") }
    }

    @Test func defaultsAreDeepSeekOffPeak() {
        #expect(GatePrices.deepSeekOffPeak == GatePrices(flashInput: 220_000, flashOutput: 660_000, proInput: 660_000, proOutput: 1_980_000))
    }
}

@Suite struct MetricTests {
    // Hand-computed: flash 0.5, pro 0.9 at shares 0 and 1; the router gives 0.8 at 0.4.
    let points: [(share: Double, accuracy: Double)] = [(0.4, 0.8)]

    @Test func proShareAt95IsInterpolated() {
        // Target 0.95 × 0.9 = 0.855, between (0.4, 0.8) and (1, 0.9): 0.4 + 0.055/0.1 × 0.6 = 0.73.
        let share = GateMetrics.proShare(reaching: 0.95, points: points, alwaysFlash: 0.5, alwaysPro: 0.9)
        #expect(abs(share - 0.73) < 1e-9)
        // Already reached by flash: 0.
        #expect(GateMetrics.proShare(reaching: 0.95, points: [], alwaysFlash: 0.9, alwaysPro: 0.9) == 0)
        // A random router (the straight line) needs (0.855 − 0.5) / 0.4 = 0.8875.
        #expect(abs(GateMetrics.proShare(reaching: 0.95, points: [], alwaysFlash: 0.5, alwaysPro: 0.9) - 0.8875) < 1e-9)
    }

    @Test func apgrIsTheAreaUnderTheRecoveredGap() {
        // PGR: 0 at 0, 0.75 at 0.4, 1 at 1 → 0.4 × 0.375 + 0.6 × 0.875 = 0.675.
        #expect(abs(GateMetrics.apgr(points: points, alwaysFlash: 0.5, alwaysPro: 0.9) - 0.675) < 1e-9)
        #expect(abs(GateMetrics.apgr(points: [], alwaysFlash: 0.5, alwaysPro: 0.9) - 0.5) < 1e-9)
        #expect(GateMetrics.apgr(points: [], alwaysFlash: 0.7, alwaysPro: 0.7) == 0)
    }

    /// Four rows; thresholds ±2 force all-flash and all-pro, so the sweep is exact.
    let tiny = GateDataset(
        rows: [
            GateBenchmarkRow(prompt: "aaaa", step: "s", flashCorrect: true, proCorrect: true),
            GateBenchmarkRow(prompt: "bbbb", step: "s", flashCorrect: false, proCorrect: true),
            GateBenchmarkRow(prompt: "cccc", step: "s", flashCorrect: false, proCorrect: false),
            GateBenchmarkRow(prompt: "dddd", step: "s", flashCorrect: true, proCorrect: false),
        ], hasSteps: false)

    @Test func replayOnATinyDataset() throws {
        let benchmark = GateBenchmark(thresholds: [-2, 2])
        let report = try benchmark.run(tiny)
        #expect(report.rows == 4)
        #expect(report.alwaysFlash == 0.5 && report.alwaysPro == 0.5)
        #expect(report.sweep.map(\.proShare) == [1, 0])
        #expect(report.sweep.map(\.accuracy) == [0.5, 0.5])
        #expect(report.sweep[0].costVsPro == 1)
        // Four bytes → one input token; 256 output tokens: flash is a third of pro's price.
        #expect(abs(report.sweep[1].costVsPro - 1.0 / 3.0) < 1e-12)
        #expect(report.proShareAt95 == 0)
        #expect(report.decisionMicrosecondsP50 >= 0)
    }

    @Test func onlineReplayOnlySeesTheChosenExpert() throws {
        // Flash always fails and pro always succeeds on one step: online, the gate learns
        // to send it to pro; offline it keeps its text prior.
        let rows = (0..<200).map { GateBenchmarkRow(prompt: "What is \($0) plus 1?", step: "s", flashCorrect: false, proCorrect: true) }
        let dataset = GateDataset(rows: rows, hasSteps: true)
        let threshold = Gate().score(GateRequest(prompt: rows[0].prompt, stepKey: "s"), history: .empty).score + 0.1
        let online = GateBenchmark(online: true, thresholds: [threshold])
        let offline = GateBenchmark(online: false, thresholds: [threshold])
        let rowsArray = dataset.rows
        let requests = rowsArray.map { GateRequest(prompt: $0.prompt, stepKey: $0.step) }
        let tokens = rowsArray.map { _ in 4 }
        let learned = online.replay(rowsArray, requests: requests, inputTokens: tokens, threshold: threshold, timed: false)
        let fixed = offline.replay(rowsArray, requests: requests, inputTokens: tokens, threshold: threshold, timed: false)
        #expect(fixed.proCalls == 0)
        #expect(learned.proCalls > 150)
        #expect(learned.correct == learned.proCalls)
    }

    @Test func seededShufflesAreReproducible() {
        let rows = (0..<50).map { GateBenchmarkRow(prompt: "\($0)", step: "s", flashCorrect: true, proCorrect: true) }
        let a = GateBenchmark(seed: 7).ordered(rows).map(\.prompt)
        #expect(a == GateBenchmark(seed: 7).ordered(rows).map(\.prompt))
        #expect(a != GateBenchmark(seed: 8).ordered(rows).map(\.prompt))
        #expect(a != rows.map(\.prompt))
        #expect(GateBenchmark().ordered(rows) == rows)
    }

    @Test func reportJSONHasTheDocumentedKeys() throws {
        let report = try GateBenchmark(thresholds: [0, 0.1]).run(tiny)
        let data = try JSONEncoder().encode(report)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["rows", "always_flash", "always_pro", "pro_share_at_95", "apgr", "decision_us_p50", "sweep"])
        let sweep = try #require(object["sweep"] as? [[String: Any]])
        #expect(sweep.count == 2)
        #expect(Set(sweep[0].keys) == ["threshold", "accuracy", "pro_share", "cost_vs_pro"])
    }

    @Test func emptySelectionIsAnError() {
        #expect(throws: GateBenchmarkError.noRows(split: "selected")) { try GateBenchmark().run(GateDataset(rows: [], hasSteps: false)) }
    }
}
