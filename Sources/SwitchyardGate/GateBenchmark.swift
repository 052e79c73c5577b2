import SwitchyardCore

/// Errors of `yard bench gate`'s data, each saying what to fix.
public enum GateBenchmarkError: Error, Sendable, Hashable, CustomStringConvertible {
    case csv(CSVError)
    case empty
    case missingColumn(String, available: [String])
    case badBoolean(line: Int, column: String, value: String)
    case shortRecord(line: Int, expected: Int, found: Int)
    case noRows(split: String)
    case badPrice(String)

    public var description: String {
        switch self {
        case .csv(let error):
            return error.description
        case .empty:
            return "the CSV file is empty: expected a header line `prompt,flash_correct,pro_correct` and one row per prompt"
        case .missingColumn(let name, let available):
            let columns = available.joined(separator: ", ")
            if name == "prompt" || name.hasSuffix("_correct") {
                return "the CSV has no column '\(name)' (columns: \(columns)); expected prompt, flash_correct, pro_correct"
            }
            return "the CSV has no step column '\(name)' (columns: \(columns)); name another with --step-column, or leave the option out"
        case .badBoolean(let line, let column, let value):
            return "line \(line): '\(value)' in column \(column) is not a boolean (expected true or false)"
        case .shortRecord(let line, let expected, let found):
            return "line \(line): \(found) field\(found == 1 ? "" : "s") where the header has \(expected)"
        case .noRows(let split):
            return "no rows in the \(split) split"
        case .badPrice(let text):
            return "'\(text)' is not a price: expected USD per million tokens as INPUT:OUTPUT, e.g. 0.22:0.66"
        }
    }
}

/// One prompt with the recorded outcome of each expert.
public struct GateBenchmarkRow: Sendable, Hashable {
    public var prompt: String
    /// The step key the gate learns under (the step column, or one shared step).
    public var step: String
    public var flashCorrect: Bool
    public var proCorrect: Bool
    /// The CSV line the row started on.
    public var line: Int

    public init(prompt: String, step: String, flashCorrect: Bool, proCorrect: Bool, line: Int = 0) {
        self.prompt = prompt
        self.step = step
        self.flashCorrect = flashCorrect
        self.proCorrect = proCorrect
        self.line = line
    }
}

/// Which rows to replay. The documented split keeps the gate honest: weights and constants
/// are tuned on `tuning` and reported on `holdout`.
///
/// - With a step column: the distinct step values in alphabetical order; the 1st, 3rd, 5th …
///   are tuning steps, the 2nd, 4th … held out (for mmlu.csv: 13 subjects each).
/// - Without one: data rows 1, 3, 5 … (in file order) are tuning rows, 2, 4, 6 … held out.
public enum GateSplit: String, Sendable, CaseIterable {
    case all, tuning, holdout
}

/// A benchmark data set: `prompt, flash_correct, pro_correct` and an optional step column.
public struct GateDataset: Sendable {
    public var rows: [GateBenchmarkRow]
    /// Whether the rows carry their own step keys.
    public var hasSteps: Bool

    public init(rows: [GateBenchmarkRow], hasSteps: Bool) {
        self.rows = rows
        self.hasSteps = hasSteps
    }

    /// The step key of every row when the file has no step column.
    public static let sharedStep = "benchmark/step"

    /// Parses CSV text. `stepColumn` names the step column; it is used when present, and
    /// an error only when `requireStep` (the user named it explicitly).
    public static func parse(_ bytes: [UInt8], stepColumn: String = "domain", requireStep: Bool = false) throws(GateBenchmarkError) -> GateDataset {
        let records: [CSVRecord]
        do {
            records = try CSV.parse(bytes)
        } catch {
            throw .csv(error)
        }
        guard let header = records.first else { throw .empty }
        let names = header.fields.map { $0.trimmingSpaces().lowercased() }
        func column(_ name: String) throws(GateBenchmarkError) -> Int {
            guard let index = names.firstIndex(of: name.lowercased()) else { throw .missingColumn(name, available: header.fields) }
            return index
        }
        let prompt = try column("prompt")
        let flash = try column("flash_correct")
        let pro = try column("pro_correct")
        let step: Int?
        if requireStep {
            step = try column(stepColumn)
        } else {
            step = names.firstIndex(of: stepColumn.lowercased())
        }
        var rows: [GateBenchmarkRow] = []
        rows.reserveCapacity(records.count - 1)
        for record in records.dropFirst() {
            guard record.fields.count == names.count else {
                throw .shortRecord(line: record.line, expected: names.count, found: record.fields.count)
            }
            rows.append(
                GateBenchmarkRow(
                    prompt: record.fields[prompt],
                    step: step.map { record.fields[$0] } ?? sharedStep,
                    flashCorrect: try boolean(record.fields[flash], line: record.line, column: names[flash]),
                    proCorrect: try boolean(record.fields[pro], line: record.line, column: names[pro]),
                    line: record.line))
        }
        return GateDataset(rows: rows, hasSteps: step != nil)
    }

    static func boolean(_ text: String, line: Int, column: String) throws(GateBenchmarkError) -> Bool {
        switch text.trimmingSpaces().lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw .badBoolean(line: line, column: column, value: text)
        }
    }

    /// The rows of one side of the documented split (see `GateSplit`).
    public func subset(_ split: GateSplit) -> GateDataset {
        guard split != .all else { return self }
        let wantTuning = split == .tuning
        if hasSteps {
            let steps = Set(rows.map(\.step)).sorted()
            var tuning = Set<String>()
            for (index, step) in steps.enumerated() where index % 2 == 0 { tuning.insert(step) }
            return GateDataset(rows: rows.filter { tuning.contains($0.step) == wantTuning }, hasSteps: true)
        }
        return GateDataset(rows: rows.enumerated().filter { ($0.offset % 2 == 0) == wantTuning }.map(\.element), hasSteps: false)
    }

    /// The distinct step keys, in alphabetical order.
    public var steps: [String] { Set(rows.map(\.step)).sorted() }
}

/// Prices in micro-USD per million tokens: integers, so money is never parsed into floating
/// point. Defaults are DeepSeek V4's off-peak prices from 2026-08-16 (cache-miss input and
/// output, as in the seeded price book, `Deploy/config.example.yaml`): flash 0.22/0.66, pro 0.66/1.98 USD per 1M tokens.
public struct GatePrices: Sendable, Hashable {
    public var flashInput: Int
    public var flashOutput: Int
    public var proInput: Int
    public var proOutput: Int

    public init(flashInput: Int, flashOutput: Int, proInput: Int, proOutput: Int) {
        self.flashInput = flashInput
        self.flashOutput = flashOutput
        self.proInput = proInput
        self.proOutput = proOutput
    }

    public static let deepSeekOffPeak = GatePrices(flashInput: 220_000, flashOutput: 660_000, proInput: 660_000, proOutput: 1_980_000)

    /// "0.22:0.66" (USD per 1M tokens, input:output) as micro-USD integers.
    public static func parsePair(_ text: String) throws(GateBenchmarkError) -> (input: Int, output: Int) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let input = microUSD(String(parts[0])), let output = microUSD(String(parts[1])) else {
            throw .badPrice(text)
        }
        return (input, output)
    }

    /// A decimal USD amount ("1.74", "0.0028", "3") as micro-USD, or nil. At most six decimals.
    public static func microUSD(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }),
            !(parts[0].isEmpty && (parts.count == 1 || parts[1].isEmpty))
        else { return nil }
        let fraction = parts.count == 2 ? String(parts[1]) : ""
        guard fraction.count <= 6, parts[0].count <= 9 else { return nil }
        let whole = parts[0].isEmpty ? 0 : Int(parts[0]) ?? 0
        let padded = fraction + String(repeating: "0", count: 6 - fraction.count)
        return whole * 1_000_000 + (Int(padded) ?? 0)
    }

    /// Price of one call in micro-USD per million (i.e. pico-USD): exact integers.
    func cost(_ tier: ExpertTier, inputTokens: Int, outputTokens: Int) -> Int {
        switch tier {
        case .flash: inputTokens * flashInput + outputTokens * flashOutput
        case .pro: inputTokens * proInput + outputTokens * proOutput
        }
    }
}

/// One threshold of the sweep.
public struct GateSweepPoint: Sendable, Hashable, Codable {
    public var threshold: Double
    public var accuracy: Double
    public var proShare: Double
    public var costVsPro: Double

    public init(threshold: Double, accuracy: Double, proShare: Double, costVsPro: Double) {
        self.threshold = threshold
        self.accuracy = accuracy
        self.proShare = proShare
        self.costVsPro = costVsPro
    }

    enum CodingKeys: String, CodingKey {
        case threshold, accuracy
        case proShare = "pro_share"
        case costVsPro = "cost_vs_pro"
    }
}

/// What `yard bench gate --output json` prints.
public struct GateBenchmarkReport: Sendable, Hashable, Codable {
    public var rows: Int
    public var alwaysFlash: Double
    public var alwaysPro: Double
    /// The pro share at which accuracy first reaches 95% of always-pro, interpolated along
    /// the sweep (0 when always-flash already does).
    public var proShareAt95: Double
    /// Average performance gap recovered over pro share 0…1 (RouteLLM): 0.5 is random.
    public var apgr: Double
    public var decisionMicrosecondsP50: Double
    public var sweep: [GateSweepPoint]

    enum CodingKeys: String, CodingKey {
        case rows, apgr, sweep
        case alwaysFlash = "always_flash"
        case alwaysPro = "always_pro"
        case proShareAt95 = "pro_share_at_95"
        case decisionMicrosecondsP50 = "decision_us_p50"
    }
}

/// Routing metrics over a curve of (pro share, accuracy) points.
public enum GateMetrics {
    /// The curve with its anchors: always-flash at share 0 and always-pro at share 1,
    /// sorted by share (ties by accuracy).
    static func curve(_ points: [(share: Double, accuracy: Double)], alwaysFlash: Double, alwaysPro: Double) -> [(share: Double, accuracy: Double)] {
        ([(0, alwaysFlash)] + points + [(1, alwaysPro)]).sorted { $0.share != $1.share ? $0.share < $1.share : $0.accuracy < $1.accuracy }
    }

    /// The smallest pro share at which the curve reaches `fraction` of always-pro accuracy,
    /// linearly interpolated between neighbouring points.
    public static func proShare(
        reaching fraction: Double, points: [(share: Double, accuracy: Double)], alwaysFlash: Double, alwaysPro: Double
    ) -> Double {
        let target = fraction * alwaysPro
        let curve = curve(points, alwaysFlash: alwaysFlash, alwaysPro: alwaysPro)
        guard curve[0].accuracy < target else { return 0 }
        for index in 1..<curve.count where curve[index].accuracy >= target {
            let (s0, a0) = curve[index - 1]
            let (s1, a1) = curve[index]
            guard a1 > a0, s1 > s0 else { return s1 }
            return s0 + (target - a0) / (a1 - a0) * (s1 - s0)
        }
        return 1
    }

    /// APGR: the mean over pro share 0…1 of (accuracy − always-flash) / (always-pro −
    /// always-flash), by the trapezoid rule on the curve. 0 when the experts tie.
    public static func apgr(points: [(share: Double, accuracy: Double)], alwaysFlash: Double, alwaysPro: Double) -> Double {
        let gap = alwaysPro - alwaysFlash
        guard abs(gap) > 1e-12 else { return 0 }
        let curve = curve(points, alwaysFlash: alwaysFlash, alwaysPro: alwaysPro)
        var area = 0.0
        for index in 1..<curve.count {
            let width = curve[index].share - curve[index - 1].share
            area += width * ((curve[index].accuracy + curve[index - 1].accuracy) / 2 - alwaysFlash) / gap
        }
        return area
    }
}

/// Replays a data set through the production `Gate` and measures it.
public struct GateBenchmark: Sendable {
    public var gate: Gate
    /// The gate is told the outcome of the expert it chose (and only that one) after each
    /// decision, under the row's step key.
    public var online: Bool
    /// Shuffles the rows (deterministically) before replaying; nil keeps file order.
    public var seed: UInt64?
    public var thresholds: [Double]
    public var prices: GatePrices
    /// Output tokens assumed per call (input tokens are estimated as prompt bytes / 4).
    public var outputTokens: Int

    /// −0.30 … 0.50 in steps of 0.02.
    public static let defaultThresholds: [Double] = (0...40).map { Double($0 - 15) / 50 }

    public init(
        gate: Gate = Gate(), online: Bool = false, seed: UInt64? = nil, thresholds: [Double] = GateBenchmark.defaultThresholds,
        prices: GatePrices = .deepSeekOffPeak, outputTokens: Int = 256
    ) {
        self.gate = gate
        self.online = online
        self.seed = seed
        self.thresholds = thresholds
        self.prices = prices
        self.outputTokens = outputTokens
    }

    /// The outcome of one replay at one threshold.
    public struct Replay: Sendable {
        public var correct: Int
        public var proCalls: Int
        public var cost: Int
        public var decisionNanoseconds: [Int64]
    }

    public func run(_ dataset: GateDataset) throws(GateBenchmarkError) -> GateBenchmarkReport {
        let rows = ordered(dataset.rows)
        guard !rows.isEmpty else { throw .noRows(split: "selected") }
        let requests = rows.map { GateRequest(prompt: $0.prompt, stepKey: $0.step) }
        let inputTokens = rows.map { ($0.prompt.utf8.count + 3) / 4 }
        let count = Double(rows.count)
        let alwaysFlash = Double(rows.count { $0.flashCorrect }) / count
        let alwaysPro = Double(rows.count { $0.proCorrect }) / count
        var proCost = 0
        for tokens in inputTokens { proCost += prices.cost(.pro, inputTokens: tokens, outputTokens: outputTokens) }

        var sweep: [GateSweepPoint] = []
        for threshold in thresholds {
            let replay = replay(rows, requests: requests, inputTokens: inputTokens, threshold: threshold, timed: false)
            sweep.append(
                GateSweepPoint(
                    threshold: threshold, accuracy: Double(replay.correct) / count, proShare: Double(replay.proCalls) / count,
                    costVsPro: proCost == 0 ? 0 : Double(replay.cost) / Double(proCost)))
        }
        let timing = replay(rows, requests: requests, inputTokens: inputTokens, threshold: Gate.defaultThreshold, timed: true)
        let times = timing.decisionNanoseconds.sorted()
        let p50 = times.isEmpty ? 0 : Double(times[times.count / 2]) / 1000

        let points = sweep.map { (share: $0.proShare, accuracy: $0.accuracy) }
        return GateBenchmarkReport(
            rows: rows.count, alwaysFlash: alwaysFlash, alwaysPro: alwaysPro,
            proShareAt95: GateMetrics.proShare(reaching: 0.95, points: points, alwaysFlash: alwaysFlash, alwaysPro: alwaysPro),
            apgr: GateMetrics.apgr(points: points, alwaysFlash: alwaysFlash, alwaysPro: alwaysPro), decisionMicrosecondsP50: p50,
            sweep: sweep)
    }

    /// One pass over the rows at one threshold, fresh histories.
    public func replay(_ rows: [GateBenchmarkRow], requests: [GateRequest], inputTokens: [Int], threshold: Double, timed: Bool) -> Replay {
        var histories: [String: StepHistory] = [:]
        var result = Replay(correct: 0, proCalls: 0, cost: 0, decisionNanoseconds: [])
        if timed { result.decisionNanoseconds.reserveCapacity(rows.count) }
        let clock = ContinuousClock()
        for index in rows.indices {
            let row = rows[index]
            let history = online ? histories[row.step] ?? .empty : .empty
            let decision: RouteDecision
            if timed {
                let start = clock.now
                decision = gate.decide(requests[index], history: history, threshold: threshold)
                let elapsed = clock.now - start
                result.decisionNanoseconds.append(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
            } else {
                decision = gate.decide(requests[index], history: history, threshold: threshold)
            }
            let tier: ExpertTier = decision.expert == ExpertTier.pro.rawValue ? .pro : .flash
            let succeeded = tier == .pro ? row.proCorrect : row.flashCorrect
            if succeeded { result.correct += 1 }
            if tier == .pro { result.proCalls += 1 }
            result.cost += prices.cost(tier, inputTokens: inputTokens[index], outputTokens: outputTokens)
            if online { histories[row.step, default: .empty].record(tier, succeeded: succeeded) }
        }
        return result
    }

    /// File order, or a seeded Fisher–Yates shuffle (SplitMix64), the same on every platform.
    func ordered(_ rows: [GateBenchmarkRow]) -> [GateBenchmarkRow] {
        guard let seed else { return rows }
        var generator = SplitMix64(seed: seed)
        var shuffled = rows
        if shuffled.count > 1 {
            for index in stride(from: shuffled.count - 1, to: 0, by: -1) {
                let other = Int(generator.next() % UInt64(index + 1))
                shuffled.swapAt(index, other)
            }
        }
        return shuffled
    }
}

/// A small, portable, seedable generator.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    /// Without Foundation: strips spaces and tabs at both ends.
    func trimmingSpaces() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view.removeFirst() }
        while let last = view.last, last == " " || last == "\t" { view.removeLast() }
        return String(view)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
