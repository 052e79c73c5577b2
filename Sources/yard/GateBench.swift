import ArgumentParser
import Foundation
import SwitchyardGate

extension GateSplit: ExpressibleByArgument {}

/// `yard bench gate`: replays recorded outcomes of flash and pro through the production gate
/// and prints accuracy, pro share and cost over a threshold sweep. A benchmark, not a test:
/// figures to compare, on data the gate was not tuned on (`--split holdout`).
struct GateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "Measure the flash/pro gate on a CSV of recorded outcomes (prompt, flash_correct, pro_correct).",
        discussion: """
            Each row is routed by the same Gate code the engine uses; accuracy counts the chosen expert's \
            recorded outcome. With --online the gate is told that outcome (and only that one) after each \
            decision, under the row's step key (the step column, e.g. MMLU's domain), as the engine learns \
            per step. --split tuning|holdout selects the documented split the gate was tuned on / judged on: \
            with a step column, alphabetical steps 1, 3, 5 … are tuning steps and 2, 4, 6 … held out; without \
            one, data rows 1, 3, 5 … tune and 2, 4, 6 … are held out.
            """)

    @Option(help: "CSV file with columns prompt, flash_correct, pro_correct and optionally a step column.")
    var data: String

    @Option(help: "The column holding each row's step key (default: 'domain' when the file has it).")
    var stepColumn: String?

    @Flag(help: "Learn online: after each decision the gate sees the outcome of the expert it chose.")
    var online = false

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    @Option(help: "Shuffle the rows with this seed before replaying (default: file order).")
    var seed: UInt64?

    @Option(help: "Rows to replay: all, tuning or holdout (see the discussion above).")
    var split: GateSplit = .all

    @Option(help: "Flash price in USD per 1M tokens, cache-miss input:output (default: DeepSeek off-peak 0.22:0.66).")
    var flashPrice: String?

    @Option(help: "Pro price in USD per 1M tokens, cache-miss input:output (default: DeepSeek off-peak 0.66:1.98).")
    var proPrice: String?

    @Option(help: "Output tokens assumed per call (input tokens are prompt bytes / 4).")
    var outputTokens = 256

    @Option(help: "Tuning: override the gate's prior strength (outcomes the text prior is worth).")
    var priorStrength: Double?

    @Option(help: "Tuning: override the gate's exploration weight.")
    var exploration: Double?

    @Option(help: "Tuning: write each row's gate features to this CSV (for Scripts/gate/fit.py) and exit.")
    var featuresOut: String?

    func run() throws {
        guard let bytes = FileManager.default.contents(atPath: data) else {
            throw CLIError(
                FileManager.default.fileExists(atPath: data)
                    ? "cannot read \(data) (check its permissions)" : "no such file: \(data) (give the CSV with --data)")
        }
        let dataset: GateDataset
        do {
            dataset = try GateDataset.parse([UInt8](bytes), stepColumn: stepColumn ?? "domain", requireStep: stepColumn != nil)
        } catch {
            throw CLIError("\(data): \(error)")
        }
        if let featuresOut {
            try writeFeatures(dataset, to: featuresOut)
            return
        }
        var model = GateModel.default
        if let priorStrength { model.priorStrength = priorStrength }
        if let exploration { model.exploration = exploration }
        var prices = GatePrices.deepSeekOffPeak
        do {
            if let flashPrice { (prices.flashInput, prices.flashOutput) = try GatePrices.parsePair(flashPrice) }
            if let proPrice { (prices.proInput, prices.proOutput) = try GatePrices.parsePair(proPrice) }
        } catch {
            throw CLIError("\(error)")
        }
        let selected = dataset.subset(split)
        let benchmark = GateBenchmark(gate: Gate(model: model), online: online, seed: seed, prices: prices, outputTokens: outputTokens)
        let report: GateBenchmarkReport
        do {
            report = try benchmark.run(selected)
        } catch .noRows {
            throw CLIError("\(data): no rows in the \(split.rawValue) split")
        } catch {
            throw CLIError("\(data): \(error)")
        }
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        case .table:
            printTable(report, dataset: selected)
        }
    }

    func printTable(_ report: GateBenchmarkReport, dataset: GateDataset) {
        func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
        let steps = dataset.hasSteps ? "\(dataset.steps.count) steps" : "one step"
        print(
            "gate benchmark: \(data), \(split.rawValue) split, \(report.rows) rows (\(steps)), \(online ? "online" : "offline")"
                + (seed.map { ", seed \($0)" } ?? ", file order"))
        var table = Table(headers: ["THRESHOLD", "ACCURACY", "PRO SHARE", "COST VS PRO"])
        for point in report.sweep {
            table.rows.append([String(format: "%+.2f", point.threshold), percent(point.accuracy), percent(point.proShare), percent(point.costVsPro)])
        }
        print(table.render())
        print("")
        print(
            "always flash: \(percent(report.alwaysFlash))   always pro: \(percent(report.alwaysPro))   95% of pro: \(percent(0.95 * report.alwaysPro))"
        )
        print("pro share at 95% of always-pro accuracy: \(percent(report.proShareAt95))")
        print(String(format: "APGR: %.3f (random 0.5)", report.apgr))
        print(String(format: "decision time p50: %.2f µs (threshold %+.2f)", report.decisionMicrosecondsP50, Gate.defaultThreshold))
    }

    /// One line per row: split side, step, outcomes, then the features in `GateFeatures.names` order.
    func writeFeatures(_ dataset: GateDataset, to path: String) throws {
        let tuning = Set(dataset.subset(.tuning).rows.map(\.line))
        var text = "split,step,flash,pro," + GateFeatures.names.joined(separator: ",") + "\n"
        for row in dataset.rows {
            let features = GateFeatures(row.prompt)
            let step =
                row.step.contains(",") || row.step.contains("\"") ? "\"" + row.step.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : row.step
            text += "\(tuning.contains(row.line) ? "tuning" : "holdout"),\(step),\(row.flashCorrect ? 1 : 0),\(row.proCorrect ? 1 : 0),"
            text += features.values.map { String($0) }.joined(separator: ",") + "\n"
        }
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw CLIError("cannot write \(path): \(error.localizedDescription)")
        }
        print("wrote \(dataset.rows.count) feature rows to \(path)")
    }
}
