import Foundation
import SwitchyardCore

/// Plain-text tables for humans.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}

enum Print {
    static func json(_ value: JSONValue) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
    }

    /// A short one-line rendering of a JSON value for table cells.
    static func brief(_ value: JSONValue?, limit: Int = 60) -> String {
        guard let value, value != .null else { return "-" }
        let text = value.stringValue ?? value.compactJSON
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > limit ? String(flat.prefix(limit - 1)) + "…" : flat
    }

    /// `yard runs show`: the run, its steps, and token usage.
    static func run(_ run: JSONValue) {
        let id = run["id"]?.stringValue ?? "?"
        print("Run \(id)  \(run["workflow"]?.stringValue ?? "?") v\(run["version"]?.intValue ?? 0)  \(run["status"]?.stringValue ?? "?")")
        print("created \(run["created_at"]?.stringValue ?? "-")  finished \(run["finished_at"]?.stringValue ?? "-")")
        if let error = run["error"], error != .null {
            print("error: \(error["code"]?.stringValue ?? "?"): \(error["message"]?.stringValue ?? "")")
        }
        var table = Table(headers: ["STEP", "STATUS", "ATTEMPTS", "EXPERT", "OUTPUT"])
        for step in run["steps"]?.arrayValue ?? [] {
            let output = step["error"].flatMap { $0 == .null ? nil : "error: " + ($0["message"]?.stringValue ?? "") } ?? brief(step["output"])
            table.rows.append([
                step["id"]?.stringValue ?? "?", step["status"]?.stringValue ?? "?", String(step["attempts"]?.intValue ?? 0),
                step["expert"]?.stringValue ?? "-", output,
            ])
        }
        print("")
        print(table.render())
        if let usage = run["usage"] {
            print("")
            print("usage: \(usage["calls"]?.intValue ?? 0) model calls, \(usage["prompt_tokens"]?.intValue ?? 0) prompt tokens, \(usage["completion_tokens"]?.intValue ?? 0) completion tokens")
        }
        if let output = run["output"], output != .null {
            print("")
            print("output: \(brief(output, limit: 400))")
        }
    }

    /// One progress line of `--watch`.
    static func progress(_ type: String, _ event: JSONValue) -> String? {
        let step = event["step"]?.stringValue ?? ""
        let data = event["data"] ?? .null
        switch type {
        case "run.created": return "run created"
        case "step.started": return "  ▶ \(step) started (attempt \(data["attempt"]?.intValue ?? 1))"
        case "step.succeeded": return "  ✔ \(step) succeeded"
        case "step.failed": return "  ✘ \(step) failed: \(data["error"]?["message"]?.stringValue ?? "")"
        case "step.retrying": return "  ↻ \(step) will retry in \(data["delay_ms"]?.intValue ?? 0) ms: \(data["error"]?["message"]?.stringValue ?? "")"
        case "step.skipped": return "  ⤼ \(step) skipped: \(data["reason"]?.stringValue ?? "")"
        case "step.waiting": return "  ⏸ \(step) waiting for signal \(data["signal"]?.stringValue ?? "")"
        case "model.called":
            return "    · \(step): \(data["expert"]?.stringValue ?? "?") (\(data["model"]?.stringValue ?? "?")) \(data["prompt_tokens"]?.intValue ?? 0)+\(data["completion_tokens"]?.intValue ?? 0) tokens, \(data["latency_ms"]?.intValue ?? 0) ms"
        case "run.succeeded": return "run succeeded"
        case "run.failed": return "run failed: \(data["error"]?["message"]?.stringValue ?? "")"
        case "run.cancelled": return "run cancelled"
        case "run.signalled": return "  signal \(data["signal"]?.stringValue ?? "") received"
        case "step.lease_expired": return "  ⚠ \(step) lease expired; it will run again"
        default: return "  \(type) \(step)"
        }
    }
}
