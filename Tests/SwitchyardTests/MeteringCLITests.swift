import Foundation
import NIOHTTP1
import SwitchyardCore
import SwitchyardMetering
import SwitchyardStore
import Testing

/// `yard costs`, `yard prices`, `yard budgets`, `yard tenants limits`, `yard plan` and the
/// costs of `yard runs show`, with the real binary against a live server whose scripted
/// experts (`scripted-flash`, `scripted-pro`) are given prices through the admin API.
@Suite("CLI: metering (costs, prices, budgets, limits, plan)")
struct MeteringCLITests {
    /// A small workflow: an input-only prompt, a map over the input, an `auto` step, and a
    /// `cascade` step reading another step's output whose flash draft fails its check.
    static let workflow = """
        kind: Workflow
        name: quote
        inputs:
          item: { type: string, required: true }
          colors: { type: array, default: [red, blue] }
        steps:
          - id: describe
            model: flash
            prompt: "Describe the item {{ inputs.item }} in one line"
            max_tokens: 100
          - id: paint
            map:
              over: "{{ inputs.colors }}"
              as: color
              step: { model: flash, prompt: "Paint it {{ color }}", max_tokens: 50 }
          - id: judge
            model: auto
            difficulty: easy
            prompt: "Judge the description of {{ inputs.item }}"
            max_tokens: 60
          - id: pitch
            needs: [describe]
            model: cascade
            prompt: "Write a pitch from: {{ steps.describe.output }}"
            check: "{{ output | length > 40 }}"
            max_tokens: 80
          - id: wrap
            needs: [pitch, paint]
            transform: "{{ steps.pitch.output }}"
        """

    static let script = """
        - match: "Describe the item"
          reply: "A sturdy oak table."
          usage: { prompt_tokens: 9, completion_tokens: 6 }
        - match: "Paint it"
          reply: "painted"
          usage: { prompt_tokens: 4, completion_tokens: 2 }
        - match: "Judge the description"
          reply: "fine"
          usage: { prompt_tokens: 7, completion_tokens: 1 }
        - match: "Write a pitch"
          expert: flash
          reply: "Buy it."
          usage: { prompt_tokens: 12, completion_tokens: 3 }
        - match: "Write a pitch"
          reply: "This sturdy oak table will last a lifetime and anchor your dining room."
          usage: { prompt_tokens: 12, completion_tokens: 16 }
        """

    static let input: JSONValue = ["item": "oak table"]
    static let inputText = #"{"item": "oak table"}"#

    static func yard(_ server: LiveServer, _ arguments: [String], admin: Bool = false, withoutKey: Bool = false) async throws -> YardCLI.Result {
        try await CLITests.yard(server, arguments, withoutKey: withoutKey, admin: admin)
    }

    /// Prices for the scripted models, through `yard prices set` (admin): pro with peak
    /// rates at every hour, so peak pricing is exercised.
    static func setPrices(_ server: LiveServer) async throws {
        let flash = try await yard(
            server, ["prices", "set", "--model", "scripted-flash", "--from", "2020-01-01", "--hit", "1", "--miss", "10", "--output", "20"],
            admin: true,
            withoutKey: true)
        #expect(flash.status == 0, "\(flash)")
        #expect(flash.stdout.contains("price scripted-flash@2020-01-01 added"), "\(flash)")
        let pro = try await yard(
            server,
            [
                "prices", "set", "--model", "scripted-pro", "--from", "2020-01-01", "--hit", "5", "--miss", "50", "--output", "100",
                "--peak-hit", "10", "--peak-miss", "100", "--peak-output", "200", "--peak-windows", "daily 00-24", "--id", "pro-test",
            ], admin: true, withoutKey: true)
        #expect(pro.status == 0, "\(pro)")
        #expect(pro.stdout.contains("price pro-test added"), "\(pro)")
        #expect(pro.stdout.contains("peak daily 00-24: 10/100/200"), "\(pro)")
    }

    /// Every ledger row of the tenant (or of one run), read in small pages.
    static func usage(_ server: LiveServer, run: String? = nil) async throws -> [JSONValue] {
        var rows: [JSONValue] = []
        var cursor: String?
        repeat {
            var path = "/v1/usage?limit=3"
            if let run { path += "&run=\(run)" }
            if let cursor { path += "&cursor=\(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor)" }
            let reply = try await server.request(.GET, path, key: server.tenantKey)
            try #require(reply.status == 200, "\(reply.text)")
            rows += reply.json["calls"]?.arrayValue ?? []
            cursor = reply.json["next_cursor"]?.stringValue
        } while cursor != nil
        return rows
    }

    static func total(_ rows: [JSONValue]) throws -> Money {
        try Money.sum(rows.map { row in try Money(parsing: try #require(row["cost_usd"]?.stringValue, "an unpriced row: \(row)")) })
    }

    /// Peak windows as ISO weekdays → hours, whether the API names weekdays (`mon`) or numbers them.
    static func windows(_ peak: JSONValue?) -> [[Int]: Range<Int>] {
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        var result: [[Int]: Range<Int>] = [:]
        for window in peak?["windows"]?.arrayValue ?? [] {
            let days = (window["weekdays"]?.arrayValue ?? []).compactMap { day in
                day.intValue ?? day.stringValue.flatMap { names.firstIndex(of: $0) }.map { $0 + 1 }
            }
            result[days.sorted()] = (window["start_hour"]?.intValue ?? -1)..<(window["end_hour"]?.intValue ?? -1)
        }
        return result
    }

    static func runQuote(_ server: LiveServer) async throws -> String {
        let reply = try await server.request(.POST, "/v1/workflows/quote/runs?wait=30", key: server.tenantKey, json: ["input": input])
        try #require(reply.json["run"]?["status"] == "succeeded", "\(reply.text)")
        return try #require(reply.json["run"]?["id"]?.stringValue)
    }

    @Test("yard costs: JSON, table and CSV totals equal the sum of GET /v1/usage rows; pro's share; only the admin key groups by tenant")
    func costsEqualLedger() async throws {
        try await withLiveServer(script: Self.script) { server in
            try await Self.setPrices(server)
            try await APIFixture.apply(server, Self.workflow)
            _ = try await Self.runQuote(server)
            _ = try await Self.runQuote(server)
            let rows = try await Self.usage(server)
            // describe, 2 × paint, judge, flash and pro for pitch: 6 calls a run.
            #expect(rows.count == 12)
            let sum = try Self.total(rows)
            #expect(sum > .zero)
            let proRows = rows.filter { $0["expert"] == "pro" }
            let proSum = try Self.total(proRows)

            let json = try await Self.yard(server, ["costs", "--by", "step,expert", "--output", "json"])
            #expect(json.status == 0, "\(json)")
            let body = try CLITests.json(json.stdout)
            #expect(body["total"]?["cost_usd"]?.stringValue == sum.decimalString)
            #expect(body["total"]?["calls"]?.intValue == rows.count)
            #expect(body["total"]?["completion_tokens"]?.intValue == rows.reduce(0) { $0 + ($1["completion_tokens"]?.intValue ?? 0) })
            let groupSum = try Money.sum((body["groups"]?.arrayValue ?? []).map { try Money(parsing: $0["cost_usd"]?.stringValue ?? "x") })
            #expect(groupSum == sum)

            let table = try await Self.yard(server, ["costs"])
            #expect(table.status == 0, "\(table)")
            let lines = CLITests.lines(table.stdout)
            #expect(
                lines.first?.contains("CALLS") == true && lines.first?.contains("CACHE HIT %") == true && lines.first?.contains("COST USD") == true,
                "\(table)")
            let totalLine = try #require(lines.first { $0.hasPrefix("TOTAL") }, "\(table)")
            let cells = totalLine.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            #expect(cells.first == "TOTAL")
            #expect(cells.dropFirst().first == String(rows.count), "\(table)")
            #expect(cells.last == sum.formatted(decimals: 6), "\(table)")
            #expect(table.stdout.contains("pro: \(proRows.count) of \(rows.count) calls"), "\(table)")
            #expect(table.stdout.contains("\(proSum.formatted(decimals: 6)) of \(sum.formatted(decimals: 6)) USD"), "\(table)")
            #expect(!table.stdout.contains("unpriced"), "\(table)")

            let byStep = try await Self.yard(server, ["costs", "--by", "step,expert"])
            #expect(byStep.status == 0, "\(byStep)")
            let stepLines = CLITests.lines(byStep.stdout)
            #expect(stepLines.first?.hasPrefix("STEP") == true, "\(byStep)")
            let pitchPro = try #require(stepLines.first { $0.hasPrefix("pitch") && $0.contains(" pro ") }, "\(byStep)")
            let pitchProCost = try Self.total(rows.filter { $0["step"] == "pitch" && $0["expert"] == "pro" })
            #expect(pitchPro.hasSuffix(pitchProCost.formatted(decimals: 6)), "\(byStep)")
            #expect(stepLines.contains { $0.hasPrefix("TOTAL") && $0.hasSuffix(sum.formatted(decimals: 6)) }, "\(byStep)")

            let csv = try await Self.yard(server, ["costs", "--by", "model", "--output", "csv"])
            #expect(csv.status == 0, "\(csv)")
            let csvLines = csv.stdout.split(separator: "\r\n").map(String.init).filter { !$0.isEmpty }
            #expect(
                csvLines.first == "model,calls,prompt_tokens,cache_hit_tokens,cache_miss_tokens,completion_tokens,reasoning_tokens,cost_usd", "\(csv)"
            )
            #expect(csvLines.last?.hasPrefix("total,\(rows.count),") == true, "\(csv)")
            #expect(csvLines.last?.hasSuffix(",\(sum.decimalString)") == true, "\(csv)")
            #expect(csvLines.count == 4, "two models and the total: \(csv)")

            // Only the admin key sees other tenants.
            let denied = try await Self.yard(server, ["costs", "--by", "tenant"])
            #expect(denied.status != 0, "\(denied)")
            #expect(denied.stderr.contains("forbidden"), "\(denied)")
            let deniedTenant = try await Self.yard(server, ["costs", "--tenant", server.store.tenant.id.uuidString.lowercased()])
            #expect(deniedTenant.status != 0, "\(deniedTenant)")
            let byTenant = try await Self.yard(server, ["costs", "--by", "tenant", "--output", "json"], admin: true, withoutKey: true)
            #expect(byTenant.status == 0, "\(byTenant)")
            let tenantGroups = try CLITests.json(byTenant.stdout)["groups"]?.arrayValue ?? []
            #expect(tenantGroups.map { $0["key"]?["tenant"]?.stringValue } == [server.store.tenant.name])
            let oneTenant = try await Self.yard(
                server, ["costs", "--by", "step", "--tenant", server.store.tenant.id.uuidString.lowercased()], admin: true, withoutKey: true)
            #expect(oneTenant.status == 0, "\(oneTenant)")
            #expect(CLITests.lines(oneTenant.stdout).contains { $0.hasPrefix("TOTAL") && $0.hasSuffix(sum.formatted(decimals: 6)) }, "\(oneTenant)")
        }
    }

    @Test("yard prices list shows the book with peak windows; prices set refuses bad prices and duplicate rows")
    func pricesListAndSet() async throws {
        try await withLiveServer(script: Self.script) { server in
            try await Self.setPrices(server)
            let list = try await Self.yard(server, ["prices", "list"])
            #expect(list.status == 0, "\(list)")
            let lines = CLITests.lines(list.stdout)
            #expect(lines.first?.hasPrefix("ID") == true, "\(list)")
            let flash = try #require(lines.first { $0.hasPrefix("scripted-flash@2020-01-01") }, "\(list)")
            #expect(flash.split(separator: " ", omittingEmptySubsequences: true).suffix(4) == ["1", "10", "20", "-"], "\(list)")
            #expect(lines.contains { $0.hasPrefix("pro-test") && $0.hasSuffix("daily 00-24: 10/100/200") }, "\(list)")
            let json = try await Self.yard(server, ["prices", "list", "--output", "json"])
            let rows = try CLITests.json(json.stdout)["prices"]?.arrayValue ?? []
            let pro = try #require(rows.first { $0["id"] == "pro-test" })
            #expect(pro["model"] == "scripted-pro")
            #expect(pro["output"] == "100")
            #expect(Self.windows(pro["peak"]) == [[1, 2, 3, 4, 5, 6, 7]: 0..<24])
            #expect(pro["peak"]?["output"] == "200")

            let weekdays = try await Self.yard(
                server,
                [
                    "prices", "set", "--model", "scripted-pro", "--from", "2020-02-01", "--hit", "0.5", "--miss", "0.75", "--output", "1.5",
                    "--peak-hit", "1", "--peak-miss", "1.5", "--peak-output", "3", "--peak-windows", "mon-fri 01-04,sat+sun 06-10", "--json",
                ], admin: true, withoutKey: true)
            #expect(weekdays.status == 0, "\(weekdays)")
            let added = try CLITests.json(weekdays.stdout)["price"] ?? .null
            #expect(added["id"] == "scripted-pro@2020-02-01")
            #expect(Self.windows(added["peak"]) == [[1, 2, 3, 4, 5]: 1..<4, [6, 7]: 6..<10])

            let floating = try await Self.yard(
                server, ["prices", "set", "--model", "m", "--from", "2020-01-01", "--hit", "1e-3", "--miss", "1", "--output", "1"], admin: true)
            #expect(floating.status != 0, "\(floating)")
            #expect(floating.stderr.contains("exponents"), "\(floating)")
            let halfPeak = try await Self.yard(
                server, ["prices", "set", "--model", "m", "--from", "2020-01-01", "--hit", "1", "--miss", "1", "--output", "1", "--peak-hit", "2"],
                admin: true)
            #expect(halfPeak.status != 0, "\(halfPeak)")
            let duplicate = try await Self.yard(
                server, ["prices", "set", "--model", "scripted-flash", "--from", "2020-01-01", "--hit", "1", "--miss", "1", "--output", "1"],
                admin: true)
            #expect(duplicate.status != 0, "\(duplicate)")
            #expect(duplicate.stderr.contains("conflict"), "\(duplicate)")
            let tenantKey = try await Self.yard(
                server,
                [
                    "prices", "set", "--model", "m", "--from", "2020-01-01", "--hit", "1", "--miss", "1", "--output", "1", "--admin-key",
                    server.tenantKey,
                ])
            #expect(tenantKey.status != 0, "\(tenantKey)")
            #expect(tenantKey.stderr.contains("forbidden"), "\(tenantKey)")
        }
    }

    @Test("yard budgets set, show (tenant and admin) and clear; yard tenants limits sets and resets limits")
    func budgetsAndLimits() async throws {
        try await withLiveServer { server in
            let tenant = server.store.tenant.id.uuidString.lowercased()
            let none = try await Self.yard(server, ["budgets", "show"])
            #expect(none.status == 0, "\(none)")
            #expect(none.stdout.contains("no budget"), "\(none)")

            let set = try await Self.yard(
                server, ["budgets", "set", "--tenant", tenant, "--monthly", "25.00", "--on-budget", "downgrade"], admin: true)
            #expect(set.status == 0, "\(set)")
            #expect(set.stdout.contains("monthly budget:   25.00 USD (on budget: downgrade)"), "\(set)")
            let own = try await Self.yard(server, ["budgets", "show"])
            #expect(own.stdout.contains("monthly budget:   25.00 USD (on budget: downgrade)"), "\(own)")
            #expect(own.stdout.contains("spent this month: 0.000000 USD (0.0%)"), "\(own)")
            #expect(own.stdout.contains("remaining:        25.000000 USD"), "\(own)")
            let admin = try await Self.yard(server, ["budgets", "show", "--tenant", tenant, "--output", "json"], admin: true)
            #expect(admin.status == 0, "\(admin)")
            #expect(try CLITests.json(admin.stdout)["budget"]?["monthly_usd"] == "25.00", "\(admin)")
            #expect(try CLITests.json(admin.stdout)["budget"]?["on_budget"] == "downgrade", "\(admin)")

            let floating = try await Self.yard(server, ["budgets", "set", "--tenant", tenant, "--monthly", "2.5e1"], admin: true)
            #expect(floating.status != 0, "\(floating)")
            let badPolicy = try await Self.yard(
                server, ["budgets", "set", "--tenant", tenant, "--monthly", "5", "--on-budget", "ignore"], admin: true)
            #expect(badPolicy.status != 0, "\(badPolicy)")
            let notAdmin = try await Self.yard(server, ["budgets", "set", "--tenant", tenant, "--monthly", "1000"])
            #expect(notAdmin.status != 0, "\(notAdmin)")

            let cleared = try await Self.yard(server, ["budgets", "clear", "--tenant", tenant], admin: true)
            #expect(cleared.status == 0, "\(cleared)")
            #expect(try await Self.yard(server, ["budgets", "show"]).stdout.contains("no budget"))

            let limits = try await Self.yard(
                server, ["tenants", "limits", tenant, "--max-running-steps", "4", "--runs-per-second", "2.5", "--run-burst", "10"], admin: true)
            #expect(limits.status == 0, "\(limits)")
            #expect(limits.stdout.contains("max running steps: 4"), "\(limits)")
            #expect(limits.stdout.contains("runs per second:   2.5"), "\(limits)")
            #expect(limits.stdout.contains("run burst:         10"), "\(limits)")
            let reset = try await Self.yard(server, ["tenants", "limits", tenant, "--run-burst", "default", "--output", "json"], admin: true)
            #expect(reset.status == 0, "\(reset)")
            let settings = try CLITests.json(reset.stdout)["settings"] ?? .null
            #expect(settings["run_burst"] == .null)
            #expect(settings["max_running_steps"] == 4)
            let nothing = try await Self.yard(server, ["tenants", "limits", tenant], admin: true)
            #expect(nothing.status != 0, "\(nothing)")
            let zero = try await Self.yard(server, ["tenants", "limits", tenant, "--max-running-steps", "0"], admin: true)
            #expect(zero.status != 0, "\(zero)")
            let tenantKey = try await Self.yard(server, ["tenants", "limits", tenant, "--run-burst", "3", "--admin-key", server.tenantKey])
            #expect(tenantKey.status != 0, "\(tenantKey)")
        }
    }

    @Test("yard plan: unpriced models give null totals; priced, the range contains the actual cost of a run; runs show shows costs per step and call")
    func planAndRunsShow() async throws {
        try await withLiveServer(script: Self.script) { server in
            try await APIFixture.apply(server, Self.workflow)
            // Without prices: the run's calls are unpriced, and so is the plan.
            let unpricedRun = try await Self.runQuote(server)
            let unpricedShow = try await Self.yard(server, ["runs", "show", unpricedRun])
            #expect(unpricedShow.status == 0, "\(unpricedShow)")
            #expect(unpricedShow.stdout.contains("cost: unpriced (6 calls of models without a price)"), "\(unpricedShow)")
            #expect(CLITests.lines(unpricedShow.stdout).contains { $0.hasPrefix("describe") && $0.contains("unpriced") }, "\(unpricedShow)")
            let unpricedPlan = try await Self.yard(server, ["plan", "quote", "--input", Self.inputText, "--output", "json"])
            #expect(unpricedPlan.status == 0, "\(unpricedPlan)")
            let nothing = try CLITests.json(unpricedPlan.stdout)
            #expect(nothing["min_usd"] == .null && nothing["max_usd"] == .null, "\(nothing)")
            #expect(nothing["unpriced"] == true)
            for step in nothing["steps"]?.arrayValue ?? [] {
                #expect(step["min_usd"] == .null && step["max_usd"] == .null, "\(step)")
                #expect(step["notes"]?.arrayValue?.contains { $0.stringValue?.hasPrefix("unpriced") == true } == true, "\(step)")
            }
            let unpricedCosts = try await Self.yard(server, ["costs"])
            #expect(CLITests.lines(unpricedCosts.stdout).contains { $0.hasPrefix("TOTAL") && $0.hasSuffix("unpriced") }, "\(unpricedCosts)")
            #expect(unpricedCosts.stdout.contains("unpriced: 6 calls of scripted-flash, scripted-pro"), "\(unpricedCosts)")
            let unpricedTable = try await Self.yard(server, ["plan", "quote", "--input", Self.inputText])
            #expect(CLITests.lines(unpricedTable.stdout).contains { $0.hasPrefix("TOTAL") && $0.hasSuffix("unpriced") }, "\(unpricedTable)")

            try await Self.setPrices(server)
            // The engine re-reads the price book at most every 5 seconds.
            try await Task.sleep(for: .milliseconds(5_500))
            let before = try await Self.yard(server, ["plan", "quote", "--input", Self.inputText, "--output", "json"])
            #expect(before.status == 0, "\(before)")
            let plan = try CLITests.json(before.stdout)
            #expect(
                Set((plan["steps"]?.arrayValue ?? []).compactMap { $0["step"]?.stringValue }) == ["describe", "paint", "judge", "pitch"], "\(plan)")
            let steps = Dictionary(uniqueKeysWithValues: (plan["steps"]?.arrayValue ?? []).map { ($0["step"]?.stringValue ?? "", $0) })
            #expect(steps["paint"]?["calls"] == ["min": 2, "max": 2], "\(plan)")
            #expect(steps["pitch"]?["calls"] == ["min": 1, "max": 2], "\(plan)")
            #expect(steps["pitch"]?["experts"] == ["flash", "pro"], "\(plan)")
            #expect(steps["judge"]?["expected_expert"]?.stringValue != nil, "\(plan)")

            let run = try await Self.runQuote(server)
            let rows = try await Self.usage(server, run: run)
            #expect(rows.count == 6)
            let actual = try Self.total(rows)
            let after = try CLITests.json(try await Self.yard(server, ["plan", "quote", "--input", Self.inputText, "--output", "json"]).stdout)
            for estimate in [plan, after] {
                let low = try Money(parsing: try #require(estimate["min_usd"]?.stringValue, "\(estimate)"))
                let high = try Money(parsing: try #require(estimate["max_usd"]?.stringValue, "\(estimate)"))
                #expect(low <= actual && actual <= high, "actual \(actual) outside [\(low), \(high)]: \(estimate)")
                // Step by step too.
                for step in estimate["steps"]?.arrayValue ?? [] {
                    let name = step["step"]?.stringValue ?? ""
                    let spent = try Self.total(rows.filter { $0["step"]?.stringValue == name })
                    let stepLow = try Money(parsing: step["min_usd"]?.stringValue ?? "x")
                    let stepHigh = try Money(parsing: step["max_usd"]?.stringValue ?? "x")
                    #expect(stepLow <= spent && spent <= stepHigh, "\(name): \(spent) outside [\(stepLow), \(stepHigh)]")
                }
            }
            let table = try await Self.yard(server, ["plan", "quote", "--input", Self.inputText])
            #expect(table.status == 0, "\(table)")
            #expect(CLITests.lines(table.stdout).first { $0.hasPrefix("STEP") }?.contains("MAX USD") == true, "\(table)")
            #expect(CLITests.lines(table.stdout).contains { $0.hasPrefix("TOTAL") }, "\(table)")
            let missing = try await Self.yard(server, ["plan", "nope"])
            #expect(missing.status != 0 && missing.stderr.contains("not_found"), "\(missing)")

            // runs show: cost per step (the sum of its calls), the calls, and the total.
            let shown = try await Self.yard(server, ["runs", "show", run])
            #expect(shown.status == 0, "\(shown)")
            let lines = CLITests.lines(shown.stdout)
            #expect(lines.first { $0.hasPrefix("STEP") && $0.contains("STATUS") }?.contains("COST USD") == true, "\(shown)")
            for step in ["describe", "paint", "judge", "pitch"] {
                let cost = try Self.total(rows.filter { $0["step"]?.stringValue == step }).formatted(decimals: 6)
                #expect(lines.contains { $0.hasPrefix(step) && $0.contains("succeeded") && $0.contains(cost) }, "\(step) \(cost): \(shown)")
            }
            #expect(lines.contains { $0.hasPrefix("STEP") && $0.contains("ATTEMPT") && $0.contains("REASONING") }, "\(shown)")
            #expect(lines.filter { $0.hasPrefix("pitch") && $0.contains("scripted-") }.count == 2, "\(shown)")
            #expect(shown.stdout.contains("cost: \(actual.formatted(decimals: 6)) USD"), "\(shown)")

            // yard costs over both runs: the unpriced calls of the first are shown apart, never as zero.
            let mixed = try await Self.yard(server, ["costs", "--by", "step"])
            #expect(mixed.status == 0, "\(mixed)")
            let describeCost = try Self.total(rows.filter { $0["step"] == "describe" }).formatted(decimals: 6)
            #expect(CLITests.lines(mixed.stdout).contains { $0.hasPrefix("describe") && $0.hasSuffix("≥ \(describeCost) (1 unpriced)") }, "\(mixed)")
            #expect(
                CLITests.lines(mixed.stdout).contains { $0.hasPrefix("TOTAL") && $0.hasSuffix("≥ \(actual.formatted(decimals: 6)) (6 unpriced)") },
                "\(mixed)")
            #expect(mixed.stdout.contains("unpriced: 6 calls of scripted-flash, scripted-pro"), "\(mixed)")
        }
    }
}
