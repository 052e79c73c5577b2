import Foundation
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering

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

    /// A short one-line rendering of a text for table cells; "-" when there is none.
    static func brief(_ text: String?, limit: Int = 60) -> String {
        brief(text.map(JSONValue.string), limit: limit)
    }

    /// `yard runs events`: one stored event as `seq, at, type, step, data` (tab-separated).
    static func eventLine(_ type: String, _ event: JSONValue) -> String {
        guard let event = try? WireDecoder.decode(APIRunEvent.self, from: event) else { return type }
        return "\(event.seq)\t\(event.at ?? "")\t\(type)\t\(event.step ?? "-")\t\(brief(event.data, limit: 100))"
    }

    /// `yard runs show`: the run, its steps, and token usage; with the run's ledger rows
    /// (`calls`, from `GET /v1/usage?run=`), each step's cost, a table of its calls and
    /// the run's total cost (the server's sum, in the run's `usage`).
    static func run(_ run: APIRun, calls: [APILedgerRow]? = nil) {
        print("Run \(run.id)  \(run.workflow) v\(run.version)  \(run.status)")
        print("created \(run.createdAt ?? "-")  finished \(run.finishedAt ?? "-")")
        if let error = run.error, error != .null {
            print("error: \(error["code"]?.stringValue ?? "?"): \(error["message"]?.stringValue ?? "")")
        }
        steps(run.steps ?? [], calls: calls)
        if let calls, !calls.isEmpty { callTable(calls) }
        if let usage = run.usage {
            print("")
            print("usage: \(usage.calls) model calls, \(usage.promptTokens) prompt tokens, \(usage.completionTokens) completion tokens")
            if calls != nil { print(costLine(usage)) }
        }
        if let output = run.output, output != .null {
            print("")
            print("output: \(brief(output, limit: 400))")
        }
    }

    /// The steps' table, then why each routed step went where it did and the verdicts on them.
    static func steps(_ steps: [APIStep], calls: [APILedgerRow]?) {
        var table = Table(headers: ["STEP", "STATUS", "ATTEMPTS", "EXPERT", "ROUTE"] + (calls == nil ? [] : ["COST USD"]) + ["OUTPUT"])
        var explained: [String] = []
        for step in steps {
            let output = step.error.flatMap { $0 == .null ? nil : "error: " + ($0["message"]?.stringValue ?? "") } ?? brief(step.output)
            // (Not `flatMap`: JSONValue is nil-literal-expressible, so `nil` would be `.null`.)
            var route: JSONValue? = step.route
            if route == .null { route = nil }
            let cost = calls.map { all in [CostText.cell(all.filter { $0.step == step.id })] } ?? []
            table.rows.append(
                [step.id, step.status.rawValue, String(step.attempts), step.expert ?? "-", route.map(Self.route) ?? "-"] + cost + [output])
            let reasons = route?["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard !reasons.isEmpty || step.feedback != nil else { continue }
            var heading = "  \(step.id)"
            if let route { heading += ": \(Self.route(route))" }
            if let feedback = step.feedback { heading += (route == nil ? ": " : "; ") + "feedback: \(feedback ? "good" : "bad")" }
            explained.append(heading)
            explained += reasons.map { "      \($0)" }
        }
        print("")
        print(table.render())
        if !explained.isEmpty {
            print("")
            print("routes:")
            for line in explained { print(line) }
        }
    }

    /// Every model call of a run, with its tokens and cost.
    static func callTable(_ calls: [APILedgerRow]) {
        var table = Table(headers: ["STEP", "ATTEMPT", "CALL", "EXPERT", "MODEL", "PROMPT", "HIT", "MISS", "OUTPUT", "REASONING", "COST USD", "NOTE"])
        for call in calls {
            var notes: [String] = []
            if !call.usageKnown { notes.append("estimated") }
            let cost = CostText.money(call.costUSD)
            if cost == nil { notes.append("unpriced") }
            table.rows.append([
                call.step, String(call.attempt), String(call.call), call.expert, call.model, String(call.promptTokens),
                String(call.cacheHitTokens), String(call.cacheMissTokens), String(call.completionTokens), String(call.reasoningTokens),
                cost.map(CostText.usd) ?? "-", notes.isEmpty ? "" : notes.joined(separator: ", "),
            ])
        }
        print("")
        print("calls:")
        print(table.render())
    }

    /// The run's cost from the server's sums: the priced calls' total, and the calls
    /// without a price or with estimated usage.
    static func costLine(_ usage: APIUsage) -> String {
        let total = CostText.money(usage.costUSD) ?? .zero
        let unpriced = usage.unpricedCalls
        let estimated = usage.estimatedCalls
        var line = "cost: \(CostText.usd(total)) USD"
        if usage.calls == 0 {
            line = "cost: 0.000000 USD (no model calls)"
        } else if unpriced == usage.calls {
            line = "cost: unpriced (\(unpriced) call\(unpriced == 1 ? "" : "s") of models without a price)"
        } else if unpriced > 0 {
            line += " for the priced calls; \(unpriced) unpriced call\(unpriced == 1 ? "" : "s") not included"
        }
        if estimated > 0 { line += "; \(estimated) estimated (usage unknown, billed at the upper bound)" }
        return line
    }

    /// A gate decision in a few words: `auto→pro (score 0.21 ≥ 0.06)`,
    /// `cascade→pro (escalated)`, `fixed→flash`.
    static func route(_ route: JSONValue) -> String {
        var text = "\(route["policy"]?.stringValue ?? "?")→\(route["expert"]?.stringValue ?? "?")"
        var details: [String] = []
        if let score = route["score"]?.doubleValue {
            if let threshold = route["threshold"]?.doubleValue {
                details.append("score \(number(score)) \(score >= threshold ? "≥" : "<") \(number(threshold))")
            } else {
                details.append("score \(number(score))")
            }
        }
        if route["escalated"]?.boolValue == true { details.append("escalated") }
        if !details.isEmpty { text += " (\(details.joined(separator: ", ")))" }
        return text
    }

    /// A score or threshold with two decimals (`0.21`, `-0.05`).
    static func number(_ value: Double) -> String {
        let text = String(format: "%.2f", value)
        return text == "-0.00" ? "0.00" : text
    }

    /// One progress line of `--watch`.
    static func progress(_ type: String, _ event: JSONValue) -> String? {
        let step = event["step"]?.stringValue ?? ""
        let data = event["data"] ?? .null
        switch RunEventType(rawValue: type) {
        case .runCreated: return "run created"
        case .stepStarted: return "  ▶ \(step) started (attempt \(data["attempt"]?.intValue ?? 1))"
        case .stepSucceeded: return "  ✔ \(step) succeeded"
        case .stepFailed: return "  ✘ \(step) failed: \(data["error"]?["message"]?.stringValue ?? "")"
        case .stepRetrying: return "  ↻ \(step) will retry in \(data["delay_ms"]?.intValue ?? 0) ms: \(data["error"]?["message"]?.stringValue ?? "")"
        case .stepSkipped: return "  ⤼ \(step) skipped: \(data["reason"]?.stringValue ?? "")"
        case .stepWaiting: return "  ⏸ \(step) waiting for signal \(data["signal"]?.stringValue ?? "")"
        case .modelCalled:
            var line =
                "    · \(step): \(data["expert"]?.stringValue ?? "?") (\(data["model"]?.stringValue ?? "?")) \(data["prompt_tokens"]?.intValue ?? 0)+\(data["completion_tokens"]?.intValue ?? 0) tokens, \(data["latency_ms"]?.intValue ?? 0) ms"
            if let tools = data["tool_calls"]?.arrayValue?.compactMap(\.stringValue), !tools.isEmpty {
                line += " → calls \(tools.joined(separator: ", "))"
            }
            if let error = data["error"]?.stringValue { line += ": failed: \(brief(.string(error), limit: 100))" }
            return line
        case .modelRouted:
            return "    ⇢ \(step): \(route(data))"
        case .toolCalled:
            let tool = data["tool"]?.stringValue ?? "?"
            let latency = "\(data["latency_ms"]?.intValue ?? 0) ms"
            if data["ok"]?.boolValue == false {
                let error = data["error"] ?? .null
                let message = error["message"]?.stringValue.map { ": " + brief(.string($0), limit: 100) } ?? ""
                return "    ⚒ \(step): \(tool) failed, \(latency) (\(error["code"]?.stringValue ?? "error")\(message))"
            }
            return "    ⚒ \(step): \(tool) ok, \(latency)"
        case .runSucceeded: return "run succeeded"
        case .runFailed: return "run failed: \(data["error"]?["message"]?.stringValue ?? "")"
        case .runCancelled: return "run cancelled"
        case .runSignalled: return "  signal \(data["signal"]?.stringValue ?? "") received"
        case .stepLeaseExpired: return "  ⚠ \(step) lease expired; it will run again"
        case .stepsCancelled, .childStarted, .modelDelta, .budgetAlert, nil: return "  \(type) \(step)"
        }
    }
}

/// Live model text (`--stream`) among progress lines: the text of each model call is
/// written as it arrives, on a line that starts once with `[step] ` (`[step #2] ` for a
/// step's later calls); reasoning goes on its own `[step] (thinking) ` line, dimmed on a
/// terminal. Any other line first ends the live one, so it keeps a line of its own.
struct LiveText {
    private struct Segment: Equatable {
        var step: String
        var call: Int
        var reasoning: Bool
    }

    /// The live line being written, if any.
    private var open: Segment?
    /// The live text ended with a newline: the next character starts an indented line.
    private var atLineStart = false
    let indent: String
    let dim: Bool

    init(indent: String = "") {
        self.indent = indent
        dim = isatty(STDOUT_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    /// The data of one `model.delta` event.
    mutating func delta(_ data: JSONValue) {
        let step = data["step"]?.stringValue ?? "?"
        let call = data["call"]?.intValue ?? 0
        if let reasoning = data["reasoning"]?.stringValue, !reasoning.isEmpty {
            write(reasoning, Segment(step: step, call: call, reasoning: true))
        }
        if let text = data["text"]?.stringValue, !text.isEmpty {
            write(text, Segment(step: step, call: call, reasoning: false))
        }
    }

    /// A line of its own.
    mutating func line(_ text: String) {
        end()
        print(text)
    }

    /// Ends the live line, if one is open.
    mutating func end() {
        guard open != nil else { return }
        if !atLineStart { print("") }
        open = nil
        atLineStart = false
        fflush(nil)
    }

    private mutating func write(_ piece: String, _ segment: Segment) {
        if open != segment {
            end()
            let label = segment.call == 0 ? segment.step : "\(segment.step) #\(segment.call + 1)"
            print("\(indent)[\(label)] " + (segment.reasoning ? "(thinking) " : ""), terminator: "")
            open = segment
        }
        var out = ""
        for character in piece {
            if character == "\n" {
                out.append("\n")
                atLineStart = true
                continue
            }
            if atLineStart {
                out += indent + "  "
                atLineStart = false
            }
            out.append(character)
        }
        if dim && segment.reasoning { out = "\u{1B}[2m" + out + "\u{1B}[0m" }
        print(out, terminator: "")
        fflush(nil)
    }
}

/// Puts live model text (`--stream`) in order among a run's progress lines. Deltas are
/// relayed at once while stored events are polled, so a step's text can arrive before
/// the lines that announce it; it is held until the step's `model.routed` (or at most
/// a second, for a stream resumed in the middle of a step), and a step's held text is
/// written before the line that ends its attempt.
struct LiveFollower {
    var text: LiveText
    private var streaming: Set<String> = []
    private var held: [String: (since: ContinuousClock.Instant, deltas: [JSONValue])] = [:]
    static let maxHold: Duration = .seconds(1)
    static let attemptEnds: Set<RunEventType> = [.stepSucceeded, .stepFailed, .stepRetrying, .stepSkipped, .stepWaiting, .stepLeaseExpired]

    init(indent: String = "") {
        text = LiveText(indent: indent)
    }

    /// A `model.delta` event's data.
    mutating func delta(_ data: JSONValue) {
        let step = data["step"]?.stringValue ?? "?"
        if streaming.contains(step) {
            text.delta(data)
            return
        }
        var entry = held[step] ?? (ContinuousClock.now, [])
        entry.deltas.append(data)
        held[step] = entry
        if ContinuousClock.now - entry.since >= Self.maxHold {
            streaming.insert(step)
            release(step)
        }
    }

    /// A stored event of `type` for `step`, shown as `line` (nil shows nothing).
    mutating func event(_ type: String, step: String?, line: String?) {
        let type = RunEventType(rawValue: type)
        if let step, let type, Self.attemptEnds.contains(type) {
            release(step)
            streaming.remove(step)
        } else if type?.isFinal == true {
            releaseAll()
        }
        if let line { text.line(line) }
        if let step, type == .modelRouted {
            streaming.insert(step)
            release(step)
        }
    }

    /// Writes everything held and ends the live line.
    mutating func end() {
        releaseAll()
        text.end()
    }

    private mutating func release(_ step: String) {
        guard let entry = held.removeValue(forKey: step) else { return }
        for data in entry.deltas { text.delta(data) }
    }

    private mutating func releaseAll() {
        for step in held.keys.sorted() { release(step) }
    }
}
