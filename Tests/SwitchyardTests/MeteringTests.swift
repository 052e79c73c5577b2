import Foundation
import NIOHTTP1
import PostgresNIO
import SwitchyardCore
import SwitchyardExperts
import SwitchyardMetering
import SwitchyardStore
import Testing

/// DeepSeek's published prices since 2026-08-16, written out by hand in
/// pico-USD per token (= µUSD per million tokens), and its peak hours: 01–04 and 06–10
/// UTC, Monday to Friday. Independent of the implementation's price book on purpose.
enum HandTariff {
    struct Rates {
        var hit: Int64
        var miss: Int64
        var output: Int64
    }

    static let flashOffPeak = Rates(hit: 7_000, miss: 220_000, output: 660_000)
    static let flashPeak = Rates(hit: 14_000, miss: 440_000, output: 1_320_000)
    static let proOffPeak = Rates(hit: 22_000, miss: 660_000, output: 1_980_000)
    static let proPeak = Rates(hit: 44_000, miss: 1_320_000, output: 3_960_000)

    static func isPeak(_ date: Date) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let weekday = calendar.component(.weekday, from: date)  // 1 = Sunday … 7 = Saturday
        let hour = calendar.component(.hour, from: date)
        return (2...6).contains(weekday) && ((1..<4).contains(hour) || (6..<10).contains(hour))
    }

    static func cost(hit: Int64, miss: Int64, completion: Int64, _ rates: Rates) -> Money {
        Money(picoUSD: hit * rates.hit + miss * rates.miss + completion * rates.output)
    }
}

private func money(_ value: JSONValue?) -> Money? {
    value?.stringValue.flatMap { try? Money(parsing: $0) }
}

// MARK: - The ledger

@Suite("Metering: the ledger")
struct MeteringLedgerTests {
    @Test("a call's ledger row has the hand-computed cost at the price row in force at its start, found by the billed model's longest prefix")
    func ledgerExactness() async throws {
        let flash = FakeDeepSeek.completion(
            content: "Paris.", reasoning: "France's capital is Paris.", model: "deepseek-v4-flash-0731",
            usage: FakeDeepSeek.usage(prompt: 1200, completion: 300, hit: 1024, reasoning: 220))
        let pro = FakeDeepSeek.completion(
            content: "QED.", reasoning: "By induction.", model: "deepseek-v4-pro-0801",
            usage: FakeDeepSeek.usage(prompt: 2000, completion: 800, hit: 1500, reasoning: 600))
        let unpriced = FakeDeepSeek.completion(
            content: "Local.", model: "mystery-model-q4", usage: FakeDeepSeek.usage(prompt: 50, completion: 20, hit: 0))
        // A stream cut before its usage chunk: billed, usage unknown.
        let cut = FakeDeepSeek.sse(
            [FakeDeepSeek.chunk(delta: ["role": "assistant", "content": "Par"]), FakeDeepSeek.chunk(delta: ["content": "is"])], done: false)
        let replies: [FakeDeepSeek.Reply] = [.json(body: flash), .json(body: pro), .json(body: unpriced), .stream(pieces: [cut], cut: true)]
        try await FakeDeepSeek.with(replies) { fake in
            let experts = [
                "flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro"),
                "mystery": fakeExpert(fake, model: "mystery-model"),
            ]
            try await withMeteredServer(experts: experts) { server in
                try await server.store.apply(
                    """
                    kind: Workflow
                    name: exact
                    steps:
                      - id: quick
                        prompt: "Capital of France?"
                        model: flash
                        max_tokens: 1000
                      - id: deep
                        needs: [quick]
                        prompt: "Prove it."
                        model: pro
                        max_tokens: 1000
                      - id: odd
                        needs: [deep]
                        prompt: "Say something."
                        model: mystery
                        max_tokens: 100
                    ---
                    kind: Workflow
                    name: dropped
                    steps:
                      - id: cut
                        prompt: "Stream, then drop."
                        model: flash
                        max_tokens: 700
                    """)
                let run = try await server.startRun("exact")
                let finished = try await server.finishedRun(run)
                #expect(finished["status"] == "succeeded", "\(finished.compactJSON)")
                let cutRun = try await server.startRun("dropped")
                let failed = try await server.finishedRun(cutRun)
                #expect(failed["status"] == "failed")

                let api = try await server.usageRows()
                #expect(api.count == 4)
                func row(_ step: String) throws -> JSONValue { try #require(api.first { $0["step"]?.stringValue == step }) }
                let table = try await server.store.database.meteredCalls()
                func start(_ step: String) throws -> Date { try #require(table.first { $0.step == step }).startedAt }

                // Flash, billed as deepseek-v4-flash-0731: 1024 hit + 176 miss + 300 output (220 of them reasoning).
                let quick = try row("quick")
                let quickPeak = HandTariff.isPeak(try start("quick"))
                // Off-peak: 1024 × 0.007 + 176 × 0.22 + 300 × 0.66 µUSD = 7.168 + 38.72 + 198 = 243.888 µUSD;
                // peak: 1024 × 0.014 + 176 × 0.44 + 300 × 1.32 = 14.336 + 77.44 + 396 = 487.776 µUSD.
                #expect(quick["cost_usd"] == .string(quickPeak ? "0.000487776" : "0.000243888"))
                #expect(
                    money(quick["cost_usd"])
                        == HandTariff.cost(hit: 1024, miss: 176, completion: 300, quickPeak ? HandTariff.flashPeak : HandTariff.flashOffPeak))
                #expect(quick["price_id"] == "deepseek-v4-flash@2026-08-16")
                #expect(quick["model"] == "deepseek-v4-flash-0731")
                #expect(quick["expert"] == "flash")
                #expect(quick["usage_known"] == true)
                #expect(quick["prompt_tokens"] == 1200)
                #expect(quick["cache_hit_tokens"] == 1024)
                #expect(quick["cache_miss_tokens"] == 176)
                #expect(quick["completion_tokens"] == 300)
                #expect(quick["reasoning_tokens"] == 220)
                #expect(quick["attempt"] == 1)
                #expect(quick["run"] == .string(run.uuidString.lowercased()))

                // Pro, billed as deepseek-v4-pro-0801: 1500 hit + 500 miss + 800 output.
                let deep = try row("deep")
                let deepPeak = HandTariff.isPeak(try start("deep"))
                // Off-peak: 1500 × 0.022 + 500 × 0.66 + 800 × 1.98 = 33 + 330 + 1584 = 1947 µUSD; peak: twice that, 3894 µUSD.
                #expect(deep["cost_usd"] == .string(deepPeak ? "0.003894" : "0.001947"))
                #expect(
                    money(deep["cost_usd"])
                        == HandTariff.cost(hit: 1500, miss: 500, completion: 800, deepPeak ? HandTariff.proPeak : HandTariff.proOffPeak))
                #expect(deep["price_id"] == "deepseek-v4-pro@2026-08-16")
                #expect(deep["reasoning_tokens"] == 600)

                // A model with no price: tokens metered, cost unknown (null), never 0.
                let odd = try row("odd")
                #expect(odd["cost_usd"] == .null)
                #expect(odd["price_id"] == .null)
                #expect(odd["model"] == "mystery-model-q4")
                #expect(odd["prompt_tokens"] == 50)
                #expect(odd["completion_tokens"] == 20)
                #expect(odd["usage_known"] == true)

                // The cut stream: usage unknown, billed at its reservation, the upper bound
                // (prompt bytes × the highest input rate + max_tokens × the highest output rate).
                let dropped = try row("cut")
                #expect(dropped["usage_known"] == false)
                let bound = worstCase(prompt: "Stream, then drop.", maxTokens: 700, inputRate: 440_000, outputRate: 1_320_000)
                #expect(money(dropped["cost_usd"]) == bound)
                #expect(dropped["price_id"] == "deepseek-v4-flash@2026-08-16")

                // The table agrees with the API, and nothing is left reserved.
                #expect(Set(table.map { $0.cost?.decimalString ?? "null" }) == Set(api.map { $0["cost_usd"]?.stringValue ?? "null" }))
                #expect(try await server.store.database.reservationCount() == 0)
                #expect(fake.requestCount == 4)

                // Reports show the estimated and the unpriced call apart.
                let costs = try await server.request(.GET, "/v1/costs", key: server.tenantKey)
                #expect(costs.json["total"]?["calls"] == 4)
                #expect(costs.json["total"]?["estimated_calls"] == 1)
                #expect(costs.json["total"]?["unpriced_calls"] == 1)
            }
        }
    }
}

// MARK: - Exactly once

@Suite("Metering: every call is in the ledger exactly once")
struct MeteringExactlyOnceTests {
    static let answer = FakeDeepSeek.completion(
        content: "Paris.", model: "deepseek-v4-flash-0731", usage: FakeDeepSeek.usage(prompt: 1200, completion: 300, hit: 1024, reasoning: 220))

    @Test("a step retried after a provider 500: one row per attempt's call, never duplicated")
    func retriedStep() async throws {
        let error = #"{"error":{"message":"internal error","type":"server_error","code":"internal_error"}}"#
        try await FakeDeepSeek.with([.json(status: 500, body: error), .json(body: Self.answer)]) { fake in
            try await withMeteredServer(experts: [
                "flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro"),
            ]) { server in
                try await server.store.apply(
                    """
                    kind: Workflow
                    name: flaky
                    steps:
                      - id: ask
                        prompt: "Capital of France?"
                        model: flash
                        max_tokens: 1000
                        retry: { max_attempts: 2, initial: 10ms }
                    """)
                let run = try await server.startRun("flaky")
                let finished = try await server.finishedRun(run)
                #expect(finished["status"] == "succeeded", "\(finished.compactJSON)")
                // Let maintenance sweep a few times: nothing may be added later.
                try await Task.sleep(for: .milliseconds(400))
                let rows = try await server.store.database.meteredCalls(run: run)
                #expect(rows.map(\.attempt) == [1, 2])
                #expect(rows.map(\.call) == [0, 0] || rows.map(\.call) == [1, 1])
                let first = try #require(rows.first)
                let second = try #require(rows.last)
                // The 500 was not billed: known usage of nothing, at no cost.
                #expect(first.outcome == "error")
                #expect(first.usageKnown)
                #expect(first.cost == .zero)
                #expect(second.outcome == "ok")
                let peak = HandTariff.isPeak(second.startedAt)
                #expect(second.cost == HandTariff.cost(hit: 1024, miss: 176, completion: 300, peak ? HandTariff.flashPeak : HandTariff.flashOffPeak))
                #expect(fake.requestCount == 2)
                #expect(try await server.store.database.eventCount("model.called", tenant: server.store.tenant.id) == 2)
                #expect(try await server.store.database.reservationCount() == 0)
                #expect(try await server.usageRows().count == 2)
            }
        }
    }

    @Test("a run cancelled mid-call: exactly one row for that call, settled by the call itself at its reservation, and no reservation left")
    func cancelledMidCall() async throws {
        try await FakeDeepSeek.with([.json(body: Self.answer, delay: .seconds(3))]) { fake in
            try await withMeteredServer(experts: [
                "flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro"),
            ]) { server in
                try await server.store.apply(
                    """
                    kind: Workflow
                    name: long
                    steps:
                      - id: ask
                        prompt: "Take your time."
                        model: flash
                        max_tokens: 2000
                    """)
                let run = try await server.startRun("long")
                let deadline = ContinuousClock.now + .seconds(20)
                while fake.requestCount == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                #expect(fake.requestCount == 1)
                let cancel = try await server.request(.POST, "/v1/runs/\(run.uuidString.lowercased())/cancel", key: server.tenantKey)
                #expect(cancel.status == 202, "\(cancel.text)")
                let finished = try await server.finishedRun(run)
                #expect(finished["status"] == "cancelled")

                var rows: [MeteredCall] = []
                let settled = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < settled {
                    rows = try await server.store.database.meteredCalls(run: run)
                    if rows.count == 1, try await server.store.database.reservationCount() == 0 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                // Past the sweep's grace period: still one row.
                try await Task.sleep(for: .milliseconds(2500))
                rows = try await server.store.database.meteredCalls(run: run)
                #expect(rows.count == 1)
                let row = try #require(rows.first)
                #expect(!row.usageKnown)
                #expect(row.cost == worstCase(prompt: "Take your time.", maxTokens: 2000, inputRate: 440_000, outputRate: 1_320_000))
                #expect(row.priceID == "deepseek-v4-flash@2026-08-16")
                #expect(try await server.store.database.reservationCount() == 0)
                // Written by the cancelled call's own settle, not left for the maintenance
                // sweep to estimate; the run's final event stays its last.
                let events = try await server.store.events(of: run)
                #expect(events.last?.type == "run.cancelled")
                #expect(!(row.error ?? "").hasPrefix("the call ended without reporting its usage"), "\(row.error ?? "")")
            }
        }
    }

    @Test(
        "a yard serve killed with SIGKILL mid-call: the killed attempt's reservation becomes exactly one estimated row, the new attempt one exact row"
    )
    func sigkillMidCall() async throws {
        let slowFirst: [FakeDeepSeek.Reply] = [.json(body: Self.answer, delay: .seconds(3)), .json(body: Self.answer)]
        try await FakeDeepSeek.with(slowFirst) { fake in
            try await withTestStore { store in
                let directory = NSTemporaryDirectory() + "switchyard-metering-crash-\(UUID().uuidString)"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: directory) }
                try """
                port: 0
                admin_key: crash-test
                engine: { lease: 2s, heartbeat: 500ms, poll: 100ms }
                experts:
                  flash: { provider: openai, model: deepseek-v4-flash, base_url: "\(fake.url)", max_retries: 0 }
                  pro: { provider: openai, model: deepseek-v4-pro, base_url: "\(fake.url)", max_retries: 0 }
                """.write(toFile: directory + "/config.yaml", atomically: true, encoding: .utf8)
                try await store.apply(
                    """
                    kind: Workflow
                    name: crashy
                    steps:
                      - id: ask
                        prompt: "Capital of France?"
                        model: flash
                        max_tokens: 1500
                        retry: { max_attempts: 3, initial: 10ms }
                    """)
                let log = directory + "/server.log"
                let first = try await YardServe.start(config: directory + "/config.yaml", database: store.database.configuration, log: log)
                let run = try await store.start("crashy")
                let deadline = ContinuousClock.now + .seconds(30)
                while fake.requestCount == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                #expect(fake.requestCount == 1)
                #expect(try await store.database.reservationCount() == 1)
                first.kill()

                let second = try await YardServe.start(config: directory + "/config.yaml", database: store.database.configuration, log: log)
                defer { second.stop() }
                let finished = try await store.wait(for: run.id, timeout: .seconds(30))
                #expect(finished.status == .succeeded, "server log: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                var rows: [MeteredCall] = []
                let settled = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < settled {
                    rows = try await store.database.meteredCalls(run: run.id)
                    if rows.count >= 2, try await store.database.reservationCount() == 0 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                try await Task.sleep(for: .milliseconds(300))
                rows = try await store.database.meteredCalls(run: run.id)
                #expect(rows.map(\.attempt).sorted() == [1, 2])
                let killed = try #require(rows.first { $0.attempt == 1 })
                let retried = try #require(rows.first { $0.attempt == 2 })
                #expect(!killed.usageKnown)
                #expect(killed.cost == worstCase(prompt: "Capital of France?", maxTokens: 1500, inputRate: 440_000, outputRate: 1_320_000))
                #expect(killed.priceID == "deepseek-v4-flash@2026-08-16")
                #expect(retried.usageKnown)
                let peak = HandTariff.isPeak(retried.startedAt)
                #expect(retried.cost == HandTariff.cost(hit: 1024, miss: 176, completion: 300, peak ? HandTariff.flashPeak : HandTariff.flashOffPeak))
                #expect(try await store.database.reservationCount() == 0)
                #expect(fake.requestCount == 2)
            }
        }
    }
}

// MARK: - Reports

@Suite("Metering: cost reports")
struct MeteringReportTests {
    static let script = """
        - match: "alpha"
          reply: "a"
          usage: { prompt_tokens: 120, completion_tokens: 30 }
        - match: "beta"
          reply: "b"
          usage: { prompt_tokens: 200, completion_tokens: 55 }
        """

    static func workflow(_ name: String) -> String {
        """
        kind: Workflow
        name: \(name)
        steps:
          - id: first
            prompt: "alpha"
            model: flash
            max_tokens: 100
          - id: second
            prompt: "beta"
            model: pro
            max_tokens: 100
          - id: third
            needs: [first]
            prompt: "beta"
            model: flash
            max_tokens: 100
        """
    }

    /// Parses the CSV of `GET /v1/costs` (no quoted fields in these tests).
    static func csvRows(_ text: String) -> [[String: String]] {
        let lines = text.split(separator: "\r\n").map(String.init)
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
        return lines.dropFirst().map { line in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return Dictionary(uniqueKeysWithValues: zip(header, cells))
        }
    }

    @Test(
        "JSON and CSV totals of GET /v1/costs equal the sums of the ledger rows; another tenant's never appear; only the admin key groups by tenant")
    func totalsAreSumsOfRows() async throws {
        try await withMeteredServer(script: Self.script) { server in
            // Flash is priced, pro is not: its rows count tokens but no cost.
            try await server.addPrice(model: "scripted-flash", hit: "0.5", miss: "1.25", output: "2.5")
            try await server.store.apply(Self.workflow("report"))
            let (other, otherKey) = try await server.store.tenants.createTenant(name: "other-\(UUID().uuidString.prefix(6).lowercased())")
            try await server.apply(Self.workflow("theirs"), key: otherKey)
            let runs = [try await server.startRun("report"), try await server.startRun("report")]
            let theirs = try await server.startRun("theirs", key: otherKey)
            for run in runs { #expect(try await server.finishedRun(run)["status"] == "succeeded") }
            #expect(try await server.finishedRun(theirs, key: otherKey)["status"] == "succeeded")

            // The ledger, page by page (2 a page) and at once: the same six rows.
            let paged = try await server.usageRows(pageSize: 2)
            let whole = try await server.usageRows()
            #expect(paged.count == 6)
            #expect(paged == whole)
            let keys = paged.map {
                "\($0["run"]?.stringValue ?? "")/\($0["step"]?.stringValue ?? "")/\($0["attempt"]?.intValue ?? 0)/\($0["call"]?.intValue ?? 0)"
            }
            #expect(Set(keys).count == 6)
            #expect(Set(paged.compactMap { $0["run"]?.stringValue }) == Set(runs.map { $0.uuidString.lowercased() }))
            // Per run, and by period.
            #expect(try await server.usageRows(query: "run=\(runs[0].uuidString.lowercased())").count == 3)
            #expect(try await server.usageRows(key: otherKey).count == 3)
            #expect(try await server.usageRows(query: "to=2026-01-01").isEmpty)
            #expect(try await server.usageRows(query: "from=2026-01-01", pageSize: 4).count == 6)

            func sum(_ field: String) -> Int { paged.reduce(0) { $0 + ($1[field]?.intValue ?? 0) } }
            let cost = try Money.sum(paged.compactMap { money($0["cost_usd"]) })
            #expect(paged.filter { $0["cost_usd"] == .null }.count == 2)
            // Flash: first (120 × 1.25 + 30 × 2.5 = 225 µUSD) and third (200 × 1.25 + 55 × 2.5 = 387.5 µUSD), twice.
            #expect(cost == (try Money(parsing: "0.001225")))
            let fields = ["calls", "prompt_tokens", "cache_hit_tokens", "cache_miss_tokens", "completion_tokens", "reasoning_tokens"]
            let expected: [String: Int] = [
                "calls": paged.count, "prompt_tokens": sum("prompt_tokens"), "cache_hit_tokens": sum("cache_hit_tokens"),
                "cache_miss_tokens": sum("cache_miss_tokens"), "completion_tokens": sum("completion_tokens"),
                "reasoning_tokens": sum("reasoning_tokens"),
            ]
            #expect(expected["prompt_tokens"] == 2 * (120 + 200 + 200))

            for groupBy in ["", "model", "expert,step", "workflow,day", "step,model,expert,workflow,day"] {
                let path = "/v1/costs" + (groupBy.isEmpty ? "" : "?group_by=\(groupBy)")
                let json = try await server.request(.GET, path, key: server.tenantKey)
                #expect(json.status == 200, "\(json.text)")
                let total = json.json["total"] ?? .null
                let groups = json.json["groups"]?.arrayValue ?? []
                for field in fields {
                    #expect(total[field]?.intValue == expected[field], "\(path) total \(field)")
                    #expect(groups.reduce(0) { $0 + ($1[field]?.intValue ?? 0) } == expected[field], "\(path) groups \(field)")
                }
                #expect(money(total["cost_usd"]) == cost, "\(path)")
                #expect(try Money.sum(groups.compactMap { money($0["cost_usd"]) }) == cost, "\(path)")
                // Only this tenant's workflow is in any key.
                #expect(!json.text.contains("theirs"))
                if groupBy.contains("workflow") {
                    #expect(Set(groups.compactMap { $0["key"]?["workflow"]?.stringValue }) == ["report"])
                }

                let csv = try await server.request(.GET, path, key: server.tenantKey, headers: [("Accept", "text/csv")])
                #expect(csv.status == 200)
                #expect(csv.headers.first(name: "Content-Type")?.hasPrefix("text/csv") == true)
                let rows = Self.csvRows(csv.text)
                let csvTotal = try #require(rows.last)
                let csvGroups = rows.dropLast()
                #expect(csvGroups.count == groups.count)
                for field in fields {
                    #expect(Int(csvTotal[field] ?? "") == expected[field], "\(path) CSV total \(field)")
                    #expect(csvGroups.reduce(0) { $0 + (Int($1[field] ?? "") ?? 0) } == expected[field], "\(path) CSV groups \(field)")
                }
                #expect((try? Money(parsing: csvTotal["cost_usd"] ?? "")) == cost)
                #expect(try Money.sum(csvGroups.compactMap { try? Money(parsing: $0["cost_usd"] ?? "") }) == cost)
                #expect(!csv.text.contains("theirs"))
            }

            // The admin key sees every tenant and groups by tenant; a tenant key may not.
            let byTenant = try await server.request(.GET, "/v1/costs?group_by=tenant", key: server.adminKey)
            #expect(byTenant.status == 200, "\(byTenant.text)")
            let tenantGroups = byTenant.json["groups"]?.arrayValue ?? []
            let mine = try #require(tenantGroups.first { $0["key"]?["tenant"]?.stringValue == server.store.tenant.name })
            #expect(mine["calls"]?.intValue == 6)
            #expect(money(mine["cost_usd"]) == cost)
            #expect(tenantGroups.first { $0["key"]?["tenant"]?.stringValue == other.name }?["calls"] == 3)
            #expect(byTenant.json["total"]?["calls"] == 9)
            let scoped = try await server.request(.GET, "/v1/costs?tenant=\(other.id.uuidString.lowercased())", key: server.adminKey)
            #expect(scoped.json["total"]?["calls"] == 3)
            let refused = try await server.request(.GET, "/v1/costs?group_by=tenant", key: server.tenantKey)
            #expect(refused.status == 403)
            let peeking = try await server.request(.GET, "/v1/costs?tenant=\(other.id.uuidString.lowercased())", key: server.tenantKey)
            #expect(peeking.status == 403)
        }
    }
}

// MARK: - Budgets

@Suite("Metering: budgets")
struct MeteringBudgetTests {
    /// Prices of the scripted experts: flash 1 µUSD per input token and 2 per output
    /// token; pro ten times that.
    static func pricePlainModels(_ server: LiveServer) async throws {
        try await server.addPrice(model: "scripted-flash", hit: "1", miss: "1", output: "2")
        try await server.addPrice(model: "scripted-pro", hit: "10", miss: "10", output: "20")
    }

    /// A flash call of `prompt` with max_tokens 100 reserves this; the script bills it exactly this.
    static func flashWorstCase(_ prompt: String) -> Money {
        worstCase(prompt: prompt, maxTokens: 100, inputRate: 1_000_000, outputRate: 2_000_000)
    }

    static func script(_ prompt: String) -> String {
        """
        - match: "\(prompt)"
          reply: "done"
          usage: { prompt_tokens: \(promptBound(prompt)), completion_tokens: 100 }
        """
    }

    static func oneStep(_ name: String, prompt: String, model: String = "flash") -> String {
        """
        kind: Workflow
        name: \(name)
        steps:
          - id: ask
            prompt: "\(prompt)"
            model: \(model)
            max_tokens: 100
        """
    }

    @Test("alerts at 50, 80 and 100% of the budget are each raised once, as budget.alert events; then calls are refused")
    func alertsOnce() async throws {
        try await withMeteredServer(script: Self.script("tick")) { server in
            try await Self.pricePlainModels(server)
            let each = Self.flashWorstCase("tick")
            let limit = try each.multiplied(by: 10)
            try await server.setBudget(limit)
            try await server.store.apply(Self.oneStep("tick", prompt: "tick"))
            // Ten calls that each cost exactly a tenth of the budget, all at once.
            var runs: [UUID] = []
            for _ in 0..<10 { runs.append(try await server.startRun("tick")) }
            for run in runs { #expect(try await server.finishedRun(run)["status"] == "succeeded") }
            #expect(try await server.store.database.budgetAlerts(tenant: server.store.tenant.id).sorted() == [50, 80, 100])

            let refused = try await server.finishedRun(try await server.startRun("tick"))
            #expect(refused["status"] == "failed")
            #expect(refused["steps"]?.arrayValue?.first?["error"]?["code"] == "budget_exceeded")
            #expect(try await server.store.database.budgetAlerts(tenant: server.store.tenant.id).sorted() == [50, 80, 100])
            let budget = try await server.request(.GET, "/v1/budget", key: server.tenantKey).json["budget"] ?? .null
            #expect(money(budget["spent_usd"]) == limit)
            #expect(money(budget["reserved_usd"]) == .zero)
            #expect(try await server.store.database.meteredCalls().count == 10)
        }
    }

    @Test("a budget above 92,233 USD raises no alert for a small spend (limit × percent does not overflow)")
    func largeBudgetNoFalseAlert() async throws {
        try await withMeteredServer(script: Self.script("tick")) { server in
            try await Self.pricePlainModels(server)
            try await server.setBudget(try Money(parsing: "200000"))
            try await server.store.apply(Self.oneStep("tick", prompt: "tick"))
            #expect(try await server.finishedRun(try await server.startRun("tick"))["status"] == "succeeded")
            #expect(try await server.store.database.budgetAlerts(tenant: server.store.tenant.id) == [])
        }
    }

    @Test("on_budget: downgrade sends pro's call to flash when only flash fits (the route says why); budget_exceeded when neither fits")
    func downgrade() async throws {
        try await withMeteredServer(script: Self.script("think")) { server in
            try await Self.pricePlainModels(server)
            let flash = Self.flashWorstCase("think")
            // Pro's worst case is ten times flash's: five flash calls' worth fits flash only.
            try await server.setBudget(try flash.multiplied(by: 5), onBudget: "downgrade")
            try await server.store.apply(Self.oneStep("deep", prompt: "think", model: "pro"))
            let downgraded = try await server.finishedRun(try await server.startRun("deep"))
            #expect(downgraded["status"] == "succeeded", "\(downgraded.compactJSON)")
            let step = downgraded["steps"]?.arrayValue?.first ?? .null
            #expect(step["expert"] == "flash")
            #expect(step["route"]?["expert"] == "flash")
            let reasons = step["route"]?["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(reasons.contains { $0.contains("budget") }, "\(reasons)")
            let calls = try await server.store.database.meteredCalls()
            #expect(calls.map(\.expert) == ["flash"])
            #expect(calls.first?.cost == flash)

            // Half a flash call left: neither fits.
            try await server.setBudget(try flash.adding(Money(picoUSD: flash.picoUSD / 2)), onBudget: "downgrade")
            let refused = try await server.finishedRun(try await server.startRun("deep"))
            #expect(refused["status"] == "failed")
            #expect(refused["steps"]?.arrayValue?.first?["error"]?["code"] == "budget_exceeded")
            #expect(try await server.store.database.meteredCalls().count == 1)
            #expect(try await server.store.database.reservationCount() == 0)
        }
    }

    @Test("a JSON-mode call that DeepSeek answers blank, asked again and billed each time, still cannot take spend past the limit")
    func blankJSONRetriesStayInBudget() async throws {
        let blank = FakeDeepSeek.completion(content: "", model: "deepseek-v4-flash", usage: FakeDeepSeek.usage(prompt: 10, completion: 1000, hit: 0))
        try await FakeDeepSeek.with([.json(body: blank)]) { fake in
            try await withMeteredServer(experts: [
                "flash": fakeExpert(fake, model: "deepseek-v4-flash"), "pro": fakeExpert(fake, model: "deepseek-v4-pro"),
            ]) { server in
                // One attempt's worst case (≈ 1.4 mUSD) fits; the four billed attempts
                // (1 + max_retries 3, at least 4 × 0.662 mUSD) do not.
                let limit = try Money(parsing: "0.002")
                try await server.setBudget(limit)
                try await server.store.apply(
                    """
                    kind: Workflow
                    name: shaped
                    steps:
                      - id: ask
                        prompt: "Give me an object."
                        model: flash
                        max_tokens: 1000
                        output: { type: object }
                    """)
                let run = try await server.finishedRun(try await server.startRun("shaped"))
                #expect(run["status"] == "failed")
                let budget = try await server.request(.GET, "/v1/budget", key: server.tenantKey).json["budget"] ?? .null
                let spent = try #require(money(budget["spent_usd"]))
                #expect(spent <= limit, "spent \(spent) of \(limit)")
                // Its worst case covers every billed attempt, so it is refused before anything is sent.
                #expect(run["steps"]?.arrayValue?.first?["error"]?["code"] == "budget_exceeded")
                #expect(fake.requestCount == 0)
                #expect(try await server.store.database.reservationCount() == 0)
            }
        }
    }
}

// MARK: - Fair use

@Suite("Metering: fair use between tenants")
struct MeteringFairUseTests {
    @Test(
        "with 0.05 runs/s and a burst of 2, the third immediate POST answers 429 with Retry-After ≥ 1 and creates no run; other tenants are not limited"
    )
    func runRateLimit() async throws {
        try await withMeteredServer { server in
            let workflow = """
                kind: Workflow
                name: ping
                steps:
                  - id: only
                    transform: "pong"
                """
            try await server.store.apply(workflow)
            let id = server.store.tenant.id.uuidString.lowercased()
            let limits = try await server.request(
                .PUT, "/v1/admin/tenants/\(id)/limits", key: server.adminKey, json: ["runs_per_second": 0.05, "run_burst": 2])
            // A token every 20 s: a loaded machine cannot refill the bucket between the posts.
            #expect(limits.status == 200, "\(limits.text)")
            let (_, otherKey) = try await server.store.tenants.createTenant(name: "other-\(UUID().uuidString.prefix(6).lowercased())")
            try await server.apply(workflow, key: otherKey)

            var statuses: [Int] = []
            var last: LiveServer.Reply?
            for _ in 0..<3 {
                last = try await server.request(.POST, "/v1/workflows/ping/runs", key: server.tenantKey, json: ["input": [:]])
                statuses.append(last?.status ?? 0)
            }
            #expect(statuses == [202, 202, 429])
            let limited = try #require(last)
            #expect(limited.errorCode == "rate_limited")
            let retryAfter = Int(limited.headers.first(name: "Retry-After") ?? "")
            #expect((retryAfter ?? 0) >= 1, "Retry-After: \(limited.headers.first(name: "Retry-After") ?? "none")")
            var created = 0
            for try await count in try await server.store.database.client.query(
                "SELECT count(*)::int8 FROM runs WHERE tenant_id = \(server.store.tenant.id)", logger: server.store.database.logger
            ).decode(Int.self) {
                created = count
            }
            #expect(created == 2)
            // Another tenant's bucket is its own.
            let other = try await server.request(.POST, "/v1/workflows/ping/runs", key: otherKey, json: ["input": [:]])
            #expect(other.status == 202)
        }
    }

    @Test("max_running_steps 2: never more than two of the tenant's steps run at once, while another tenant's run all of theirs")
    func runningStepCap() async throws {
        let script = """
            - match: "slow"
              reply: "done"
              delay: 300ms
            """
        var workflow = "kind: Workflow\nname: wide\nsteps:\n"
        for index in 1...6 { workflow += "  - id: s\(index)\n    prompt: \"slow \(index)\"\n" }
        let yaml = workflow
        try await withMeteredServer(script: script) { server in
            try await server.store.apply(yaml)
            let id = server.store.tenant.id.uuidString.lowercased()
            let limits = try await server.request(.PUT, "/v1/admin/tenants/\(id)/limits", key: server.adminKey, json: ["max_running_steps": 2])
            #expect(limits.status == 200, "\(limits.text)")
            let (other, otherKey) = try await server.store.tenants.createTenant(name: "other-\(UUID().uuidString.prefix(6).lowercased())")
            try await server.apply(yaml, key: otherKey)

            let capped = try await server.startRun("wide")
            let free = try await server.startRun("wide", key: otherKey)
            var most: [UUID: Int] = [:]
            var finished: Set<UUID> = []
            let deadline = ContinuousClock.now + .seconds(30)
            while finished.count < 2, ContinuousClock.now < deadline {
                for try await (tenant, running) in try await server.store.database.client.query(
                    "SELECT tenant_id, count(*)::int8 FROM steps WHERE status = 'running' GROUP BY tenant_id", logger: server.store.database.logger
                ).decode((UUID, Int).self) {
                    most[tenant] = max(most[tenant, default: 0], running)
                }
                for (run, tenant) in [(capped, server.store.tenant.id), (free, other.id)] {
                    if let record = try await server.store.runs.run(run, tenant: tenant), record.status.isFinal { finished.insert(run) }
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(finished.count == 2)
            #expect(try await server.finishedRun(capped)["status"] == "succeeded")
            #expect(try await server.finishedRun(free, key: otherKey)["status"] == "succeeded")
            #expect(most[server.store.tenant.id, default: 0] <= 2, "\(most)")
            #expect(most[server.store.tenant.id, default: 0] >= 1)
            #expect(most[other.id, default: 0] > 2, "the other tenant's steps ran at most \(most[other.id, default: 0]) at once")
        }
    }
}
