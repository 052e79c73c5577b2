import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering

// `yard costs`, `yard prices`, `yard budgets`, `yard tenants limits`, `yard plan`, and
// the cost figures of `yard runs show`. Money arrives as decimal strings and is parsed
// with `Money`, so no figure passes through floating point.

/// Money and percentages for tables.
enum CostText {
    /// A decimal-string amount (`cost_usd`), or nil for null or malformed text.
    static func money(_ value: JSONValue?) -> Money? {
        guard let text = value?.stringValue else { return nil }
        return try? Money(parsing: text)
    }

    /// USD with 6 decimals, rounded half away from zero.
    static func usd(_ amount: Money) -> String { amount.formatted(decimals: 6) }

    static let microUSD: Int64 = Money.picoPerUSD / 1_000_000

    /// USD with 6 decimals, rounded down (for the low end of a range).
    static func usdDown(_ amount: Money) -> String {
        let remainder = amount.picoUSD % microUSD
        let floored = amount.picoUSD - (remainder < 0 ? remainder + microUSD : remainder)
        return Money(picoUSD: floored).formatted(decimals: 6)
    }

    /// USD with 6 decimals, rounded up (for the high end of a range).
    static func usdUp(_ amount: Money) -> String {
        let remainder = amount.picoUSD % microUSD
        guard remainder != 0 else { return amount.formatted(decimals: 6) }
        let (ceiled, overflow) = (amount.picoUSD - remainder).addingReportingOverflow(remainder > 0 ? microUSD : 0)
        return Money(picoUSD: overflow ? amount.picoUSD : ceiled).formatted(decimals: 6)
    }

    /// `part / whole` as a percentage with one decimal (`37.5%`), in integer arithmetic; "-" when `whole` is 0.
    static func percent(_ part: Int64, of whole: Int64) -> String {
        guard whole > 0, part >= 0 else { return "-" }
        let product = part.multipliedFullWidth(by: 1000)
        guard product.high < whole else { return "-" }  // more than 100%: not a share
        var (tenths, remainder) = whole.dividingFullWidth(product)
        if remainder >= whole - remainder { tenths += 1 }
        return "\(tenths / 10).\(tenths % 10)%"
    }

    /// Sum of `cost_usd` of ledger rows: the known total and how many rows had no price.
    static func sum(_ calls: [JSONValue]) -> (total: Money, unpriced: Int, estimated: Int) {
        var total = Money.zero
        var unpriced = 0, estimated = 0
        for call in calls {
            if let cost = money(call["cost_usd"]) {
                total = (try? total.adding(cost)) ?? total
            } else {
                unpriced += 1
            }
            if call["usage_known"]?.boolValue == false { estimated += 1 }
        }
        return (total, unpriced, estimated)
    }

    /// A cost cell: `0.001234`, `unpriced`, `≥ 0.001234 (2 unpriced)`, with `~` for estimates.
    static func cell(_ calls: [JSONValue]) -> String {
        guard !calls.isEmpty else { return "-" }
        let (total, unpriced, estimated) = sum(calls)
        if unpriced == calls.count { return "unpriced" }
        var text = usd(total)
        if estimated > 0 { text = "~" + text }
        if unpriced > 0 { text = "≥ \(text) (\(unpriced) unpriced)" }
        return text
    }
}

/// Where the server is and the tenant key, for commands whose `--output` means something else.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Server URL (default: $YARD_URL or http://127.0.0.1:8080).")
    var url: String?

    @Option(name: .customLong("api-key"), help: "Tenant API key (default: $YARD_API_KEY).")
    var apiKey: String?

    var baseURL: String { APIClient.make(url: url, key: nil).baseURL }
    var tenantKey: String? { apiKey ?? ProcessInfo.processInfo.environment["YARD_API_KEY"] }
}

extension APIClient {
    /// A GET whose answer is text (CSV), not JSON; errors as `send` reports them.
    func text(_ path: String, accept: String) async throws -> String {
        var request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + path)
        request.method = .GET
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.headers.add(name: "Accept", value: accept)
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .seconds(330))
        } catch {
            throw CLIError("cannot reach the Switchyard server at \(baseURL): \(error) (start one with `yard serve`, or set --url / YARD_URL)")
        }
        let buffer = try await response.body.collect(upTo: 64 << 20)
        let text = String(buffer: buffer)
        guard (200..<300).contains(Int(response.status.code)) else {
            let body = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .null
            throw CLIError("\(body["error"]?["code"]?.stringValue ?? "http_\(response.status.code)"): \(body["error"]?["message"]?.stringValue ?? text)")
        }
        return text
    }

    /// Every ledger row of a run (`GET /v1/usage?run=ID`, all pages), oldest first.
    func usage(run id: String) async throws -> [JSONValue] {
        var calls: [JSONValue] = []
        var cursor: String?
        repeat {
            let body = try await send(.GET, "/v1/usage" + APIPath.queryString([("run", id), ("limit", "1000"), ("cursor", cursor)])).body
            calls += body["calls"]?.arrayValue ?? []
            cursor = body["next_cursor"]?.stringValue
        } while cursor != nil
        return calls
    }
}

// MARK: - yard costs

enum CostsFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

struct Costs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show spend from the ledger: calls, tokens (cache hit, miss, output, reasoning), cache-hit ratio and cost, grouped, with totals and pro's share.",
        discussion: """
            Examples:
              yard costs --by workflow,step --since 2026-11-01
              yard costs --by model --output csv > november.csv
              yard costs --by tenant --admin-key $YARD_ADMIN_KEY        # every tenant (admin key)
              yard costs --by step --tenant TENANT_ID                   # one tenant (admin key)
            """)

    @Option(name: .customLong("by"), help: "Group by workflow, step, expert, model, day, tenant (admin key); comma-separated.")
    var by: String?
    @Option(help: "From this UTC date (2026-11-01) or instant (2026-11-01T00:00:00Z), inclusive.")
    var since: String?
    @Option(help: "Until this UTC date or instant, exclusive.")
    var until: String?
    @Option(help: "Only this tenant's costs (admin key).")
    var tenant: String?
    @Option(help: "Output format: table, json (the API's body) or csv (the API's CSV).")
    var output: CostsFormat = .table
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var admin: AdminOptions

    var dimensions: [String] {
        (by ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, UTCTime.parse(value) == nil {
                throw ValidationError("\(name) must be a UTC date (2026-11-01) or instant (2026-11-01T00:00:00Z)")
            }
        }
    }

    /// The tenant key, unless the command needs the admin's (another tenant, or grouping by tenant).
    func client() -> APIClient {
        let adminKey = admin.adminKey ?? ProcessInfo.processInfo.environment["YARD_ADMIN_KEY"]
        let needsAdmin = admin.adminKey != nil || tenant != nil || dimensions.contains("tenant") || connection.tenantKey == nil
        return APIClient.make(url: connection.url, key: needsAdmin ? (adminKey ?? connection.tenantKey) : connection.tenantKey)
    }

    func path(groupBy: [String]) -> String {
        "/v1/costs" + APIPath.queryString([
            ("group_by", groupBy.isEmpty ? nil : groupBy.joined(separator: ",")), ("from", since), ("to", until), ("tenant", tenant),
        ])
    }

    func run() async throws {
        let api = client()
        switch output {
        case .csv:
            print(try await api.text(path(groupBy: dimensions), accept: "text/csv"), terminator: "")
            return
        case .json:
            Print.json(try await api.send(.GET, path(groupBy: dimensions)).body)
            return
        case .table:
            break
        }
        let body = try await api.send(.GET, path(groupBy: dimensions)).body
        let dims = dimensions
        // The same period split further by expert and model: pro's share, and the calls of
        // models without a price (the API sums their cost as nothing; the table says so).
        let detailDimensions = dims + ["expert", "model"].filter { !dims.contains($0) }
        let detail = try await api.send(.GET, path(groupBy: detailDimensions)).body
        let priceModels = try await api.send(.GET, "/v1/prices").body["prices"]?.arrayValue?.compactMap { $0["model"]?.stringValue } ?? []
        func isUnpriced(_ model: String) -> Bool { !priceModels.contains { model.hasPrefix($0) } }
        func rowKey(_ group: JSONValue) -> String { dims.map { group["key"]?[$0]?.stringValue ?? "" }.joined(separator: "\u{0}") }
        var unpricedByRow: [String: Int] = [:]
        var unpricedModels: Set<String> = []
        var unpricedCalls = 0
        var proCalls: Int64 = 0
        var proCost = Money.zero
        for group in detail["groups"]?.arrayValue ?? [] {
            let calls = group["calls"]?.intValue ?? 0
            let model = group["key"]?["model"]?.stringValue ?? ""
            // The server's count when it gives one (exact: the ledger rows without a cost);
            // else the calls of models no price row is a prefix of.
            let unpriced = group["unpriced_calls"]?.intValue ?? (isUnpriced(model) ? calls : 0)
            if unpriced > 0 {
                unpricedByRow[rowKey(group), default: 0] += unpriced
                unpricedModels.insert(model)
                unpricedCalls += unpriced
            }
            if group["key"]?["expert"]?.stringValue == "pro" {
                proCalls += Int64(calls)
                proCost = (try? proCost.adding(CostText.money(group["cost_usd"]) ?? .zero)) ?? proCost
            }
        }

        let groups = body["groups"]?.arrayValue ?? []
        let total = body["total"] ?? .null
        let figures = ["CALLS", "PROMPT", "HIT", "MISS", "OUTPUT", "REASONING", "CACHE HIT %", "COST USD"]
        var table = Table(headers: (dims.isEmpty ? [""] : dims.map { $0.uppercased() }) + figures)
        func cells(_ group: JSONValue, unpriced: Int) -> [String] {
            let calls = group["calls"]?.intValue ?? 0
            let hit = group["cache_hit_tokens"]?.intValue ?? 0, miss = group["cache_miss_tokens"]?.intValue ?? 0
            var cost = CostText.money(group["cost_usd"]).map(CostText.usd) ?? "-"
            if (group["estimated_calls"]?.intValue ?? 0) > 0 { cost = "~" + cost }
            if unpriced > 0 { cost = unpriced >= calls ? "unpriced" : "≥ \(cost) (\(unpriced) unpriced)" }
            return [
                String(calls), String(group["prompt_tokens"]?.intValue ?? 0), String(hit), String(miss), String(group["completion_tokens"]?.intValue ?? 0),
                String(group["reasoning_tokens"]?.intValue ?? 0), CostText.percent(Int64(hit), of: Int64(hit + miss)), cost,
            ]
        }
        if !dims.isEmpty {
            for group in groups {
                table.rows.append(dims.map { group["key"]?[$0]?.stringValue ?? "" } + cells(group, unpriced: unpricedByRow[rowKey(group)] ?? 0))
            }
        }
        table.rows.append(["TOTAL"] + Array(repeating: "", count: max(0, dims.count - 1)) + cells(total, unpriced: unpricedCalls))
        print(table.render())

        let totalCalls = Int64(total["calls"]?.intValue ?? 0)
        let totalCost = CostText.money(total["cost_usd"]) ?? .zero
        print("")
        guard totalCalls > 0 else {
            print("no model calls in this period")
            return
        }
        var share = "pro: \(proCalls) of \(totalCalls) calls (\(CostText.percent(proCalls, of: totalCalls)))"
        if unpricedCalls < totalCalls {
            share += ", \(CostText.usd(proCost)) of \(CostText.usd(totalCost)) USD (\(CostText.percent(proCost.picoUSD, of: totalCost.picoUSD)))"
            if unpricedCalls > 0 { share += " of the priced calls" }
        }
        print(share)
        if unpricedCalls > 0 {
            print("unpriced: \(unpricedCalls) call\(unpricedCalls == 1 ? "" : "s") of \(unpricedModels.sorted().joined(separator: ", ")), made without a price: their tokens are counted, their cost is unknown and not in COST USD (yard prices set adds a price for later calls)")
        }
        if let estimated = total["estimated_calls"]?.intValue, estimated > 0 {
            print("estimated (~): \(estimated) call\(estimated == 1 ? "" : "s") whose usage was never reported, billed at their upper-bound reservation")
        }
        print("tokens: PROMPT = HIT + MISS when the provider reports the cache split; OUTPUT includes REASONING")
    }
}

// MARK: - yard prices

struct Prices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The price book: per model, effective-dated USD per million tokens (cache hit, cache miss, output), with optional peak hours.",
        subcommands: [List.self, SetRow.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every price row (USD per million tokens).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let env = ProcessInfo.processInfo.environment
            let key = client.apiKey ?? env["YARD_API_KEY"] ?? env["YARD_ADMIN_KEY"]
            let api = APIClient.make(url: client.url, key: key)
            let body = try await api.send(.GET, "/v1/prices").body
            if client.output == .json { return Print.json(body) }
            var table = Table(headers: ["ID", "MODEL", "FROM", "HIT", "MISS", "OUTPUT", "PEAK (UTC: HIT/MISS/OUTPUT)"])
            for row in body["prices"]?.arrayValue ?? [] {
                table.rows.append([
                    row["id"]?.stringValue ?? "", row["model"]?.stringValue ?? "", row["effective_from"]?.stringValue ?? "",
                    row["input_cache_hit"]?.stringValue ?? "", row["input_cache_miss"]?.stringValue ?? "", row["output"]?.stringValue ?? "",
                    Self.peak(row["peak"]),
                ])
            }
            print(table.render())
            print("\nprices in USD per million tokens")
        }

        /// `mon-fri 01-04, sat 06-10: 0.014/0.44/1.32`, or `-`.
        static func peak(_ peak: JSONValue?) -> String {
            guard let peak, peak != .null else { return "-" }
            let windows = (peak["windows"]?.arrayValue ?? []).map { window in
                let days = (window["weekdays"]?.arrayValue ?? []).compactMap(PeakWindows.weekday).sorted()
                return "\(PeakWindows.days(days)) \(PeakWindows.two(window["start_hour"]?.intValue ?? 0))-\(PeakWindows.two(window["end_hour"]?.intValue ?? 0))"
            }
            let rates = [peak["input_cache_hit"], peak["input_cache_miss"], peak["output"]].map { $0?.stringValue ?? "?" }.joined(separator: "/")
            return "\(windows.joined(separator: ", ")): \(rates)"
        }
    }

    struct SetRow: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Add a price row (admin key). Rows are never edited: a new row takes over from its --from instant.",
            discussion: """
                Prices are USD per million tokens, as decimal text. Example:
                  yard prices set --model deepseek-v4-flash --from 2026-08-16 --hit 0.007 --miss 0.22 --output 0.66 \\
                    --peak-hit 0.014 --peak-miss 0.44 --peak-output 1.32 --peak-windows "mon-fri 01-04,mon-fri 06-10"
                Peak windows are UTC: days (mon-fri, sat+sun, daily) and hours START-END (end exclusive, up to 24).
                """)
        @Option(help: "The model name; it prices every billed model it is a prefix of.") var model: String
        @Option(name: .customLong("from"), help: "Effective from this UTC date (2026-08-16) or instant.") var from: String
        @Option(help: "Input cache-hit price.") var hit: String
        @Option(help: "Input cache-miss price.") var miss: String
        @Option(help: "Output price (reasoning included).") var output: String
        @Option(help: "The row's id (default: MODEL@DATE).") var id: String?
        @Option(name: .customLong("peak-hit"), help: "Peak input cache-hit price.") var peakHit: String?
        @Option(name: .customLong("peak-miss"), help: "Peak input cache-miss price.") var peakMiss: String?
        @Option(name: .customLong("peak-output"), help: "Peak output price.") var peakOutput: String?
        @Option(name: .customLong("peak-windows"), help: "Peak hours, UTC: \"mon-fri 01-04,mon-fri 06-10\".") var peakWindows: String?
        @Flag(help: "Print the API's answer as JSON.") var json = false
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var admin: AdminOptions

        var peakValues: [String?] { [peakHit, peakMiss, peakOutput, peakWindows] }

        func validate() throws {
            let given = peakValues.filter { $0 != nil }.count
            if given != 0 && given != 4 {
                throw ValidationError("peak pricing needs all of --peak-hit, --peak-miss, --peak-output and --peak-windows")
            }
            if let peakWindows { _ = try PeakWindows.parse(peakWindows) }
            var prices: [(String, String)] = [("--hit", hit), ("--miss", miss), ("--output", output)]
            if let peakHit { prices.append(("--peak-hit", peakHit)) }
            if let peakMiss { prices.append(("--peak-miss", peakMiss)) }
            if let peakOutput { prices.append(("--peak-output", peakOutput)) }
            for (name, value) in prices {
                do throws(MeteringError) {
                    _ = try TokenPrice(parsing: value)
                } catch {
                    throw ValidationError("\(name): \(error.message)")
                }
            }
            if UTCTime.parse(from) == nil { throw ValidationError("--from must be a UTC date (2026-08-16) or instant (2026-08-16T00:00:00Z)") }
        }

        func run() async throws {
            var body: [String: JSONValue] = [
                "model": .string(model), "effective_from": .string(from),
                "input_cache_hit": .string(hit), "input_cache_miss": .string(miss), "output": .string(output),
            ]
            if let id { body["id"] = .string(id) }
            if let peakHit, let peakMiss, let peakOutput, let peakWindows {
                body["peak"] = [
                    "windows": .array(try PeakWindows.parse(peakWindows)),
                    "input_cache_hit": .string(peakHit), "input_cache_miss": .string(peakMiss), "output": .string(peakOutput),
                ]
            }
            let key = admin.adminKey ?? ProcessInfo.processInfo.environment["YARD_ADMIN_KEY"]
            let reply = try await APIClient.make(url: connection.url, key: key).send(.POST, "/v1/admin/prices", json: .object(body)).body
            if json { return Print.json(reply) }
            let row = reply["price"] ?? .null
            print("price \(row["id"]?.stringValue ?? "?") added: \(row["model"]?.stringValue ?? model) from \(row["effective_from"]?.stringValue ?? from)")
            print("  hit \(row["input_cache_hit"]?.stringValue ?? hit), miss \(row["input_cache_miss"]?.stringValue ?? miss), output \(row["output"]?.stringValue ?? output) USD per million tokens")
            if let peak = row["peak"], peak != .null { print("  peak \(List.peak(peak))") }
        }
    }
}

/// `mon-fri 01-04,sat+sun 06-10` ↔ the price book's `{weekdays, start_hour, end_hour}` windows.
enum PeakWindows {
    static let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    /// An ISO weekday from the API: a number (1 = Monday) or a name (`mon`).
    static func weekday(_ value: JSONValue) -> Int? {
        if let number = value.intValue { return number }
        return value.stringValue.flatMap { names.firstIndex(of: $0.lowercased()) }.map { $0 + 1 }
    }

    static func parse(_ text: String) throws -> [JSONValue] {
        var windows: [JSONValue] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else { throw ValidationError("peak window '\(item)' must be DAYS HOURS, like 'mon-fri 01-04'") }
            var days: [Int] = []
            for piece in parts[0].lowercased().split(separator: "+") {
                if piece == "daily" {
                    days += Array(1...7)
                    continue
                }
                let ends = piece.split(separator: "-").map(String.init)
                guard (1...2).contains(ends.count), let first = names.firstIndex(of: ends[0]), let last = names.firstIndex(of: ends[ends.count - 1]), first <= last else {
                    throw ValidationError("peak window days '\(parts[0])' must be days mon…sun, ranges like mon-fri, joined by + (sat+sun), or daily")
                }
                days += Array((first + 1)...(last + 1))
            }
            let hours = parts[1].split(separator: "-").map { Int($0) }
            guard hours.count == 2, let start = hours[0], let end = hours[1], (0...23).contains(start), (1...24).contains(end), start < end else {
                throw ValidationError("peak window hours '\(parts[1])' must be START-END in UTC, 0 ≤ START < END ≤ 24, like 01-04")
            }
            windows.append([
                "weekdays": .array(Set(days).sorted().map { .string(names[$0 - 1]) }), "start_hour": .int(start), "end_hour": .int(end),
            ])
        }
        guard !windows.isEmpty else { throw ValidationError("--peak-windows needs at least one window, like 'mon-fri 01-04'") }
        return windows
    }

    /// ISO weekdays as `mon-fri`, `sat+sun`, `daily`.
    static func days(_ days: [Int]) -> String {
        guard days != Array(1...7) else { return "daily" }
        var runs: [String] = []
        var index = 0
        while index < days.count {
            var end = index
            while end + 1 < days.count, days[end + 1] == days[end] + 1 { end += 1 }
            let name = { (day: Int) in (1...7).contains(day) ? names[day - 1] : "?" }
            runs.append(end > index ? "\(name(days[index]))-\(name(days[end]))" : name(days[index]))
            index = end + 1
        }
        return runs.joined(separator: "+")
    }

    static func two(_ hour: Int) -> String { hour < 10 ? "0\(hour)" : "\(hour)" }
}

// MARK: - yard budgets

struct Budgets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Monthly budgets per tenant: model calls that would take spend past the limit are refused before they are sent.",
        subcommands: [SetBudget.self, Show.self, Clear.self])

    static func printBudget(_ budget: JSONValue) {
        let spent = CostText.money(budget["spent_usd"]) ?? .zero
        let reserved = CostText.money(budget["reserved_usd"]) ?? .zero
        guard let limit = CostText.money(budget["monthly_usd"]) else {
            print("no budget (spending is not limited)")
            print("spent this month: \(CostText.usd(spent)) USD")
            print("reserved:         \(CostText.usd(reserved)) USD (calls in flight)")
            return
        }
        print("monthly budget:   \(limit.formatted(decimals: 2)) USD (on budget: \(budget["on_budget"]?.stringValue ?? "fail"))")
        print("spent this month: \(CostText.usd(spent)) USD (\(CostText.percent(spent.picoUSD, of: limit.picoUSD)))")
        print("reserved:         \(CostText.usd(reserved)) USD (calls in flight)")
        if let committed = try? spent.adding(reserved), let left = try? limit.subtracting(committed) {
            print("remaining:        \(CostText.usd(left.isNegative ? .zero : left)) USD")
        }
    }

    struct SetBudget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a tenant's monthly budget (admin key).")
        @Option(help: "The tenant id.") var tenant: String
        @Option(help: "The limit per calendar month (UTC) in USD, as decimal text: 25.00.") var monthly: String
        @Option(name: .customLong("on-budget"), help: "When a call does not fit: fail (the step fails with budget_exceeded) or downgrade (pro becomes flash).")
        var onBudget: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func validate() throws {
            let amount: Money
            do throws(MeteringError) {
                amount = try Money(parsing: monthly)
            } catch {
                throw ValidationError("--monthly: \(error.message)")
            }
            if amount.isNegative { throw ValidationError("--monthly must not be negative") }
            if let onBudget, !["fail", "downgrade"].contains(onBudget) { throw ValidationError("--on-budget must be fail or downgrade") }
        }

        func run() async throws {
            var body: [String: JSONValue] = ["monthly_usd": .string(monthly)]
            if let onBudget { body["on_budget"] = .string(onBudget) }
            let reply = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "budget"), json: .object(body)).body
            if client.output == .json { return Print.json(reply) }
            Budgets.printBudget(reply["budget"] ?? .null)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a budget and this month's spend: your own with a tenant key, or --tenant's with the admin key.")
        @Option(help: "The tenant id (admin key).") var tenant: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let reply: JSONValue
            if let tenant {
                reply = try await client.client(admin: true, adminKey: admin.adminKey).send(.GET, APIPath.v1("admin", "tenants", tenant, "budget")).body
            } else {
                reply = try await client.client().send(.GET, "/v1/budget").body
            }
            if client.output == .json { return Print.json(reply) }
            Budgets.printBudget(reply["budget"] ?? .null)
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a tenant's budget (admin key).")
        @Option(help: "The tenant id.") var tenant: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            _ = try await client.client(admin: true, adminKey: admin.adminKey).send(.DELETE, APIPath.v1("admin", "tenants", tenant, "budget"))
            if client.output == .json { return Print.json(["budget": .null]) }
            print("budget of tenant \(tenant) removed")
        }
    }
}

// MARK: - yard tenants limits

extension Tenants {
    struct Limits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a tenant's fair-use limits (admin key): concurrently running steps, and the rate and burst of run creation.",
            discussion: "Options not given stay as they are; 'default' returns a limit to the server's default.")
        @Argument(help: "The tenant id.") var tenant: String
        @Option(name: .customLong("max-running-steps"), help: "Steps of this tenant running at once, across servers (or 'default').")
        var maxRunningSteps: String?
        @Option(name: .customLong("runs-per-second"), help: "Runs this tenant may start per second, sustained (or 'default').")
        var runsPerSecond: String?
        @Option(name: .customLong("run-burst"), help: "Runs it may start at once before the rate applies (or 'default').")
        var runBurst: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func body() throws -> [String: JSONValue] {
            var body: [String: JSONValue] = [:]
            func count(_ text: String?, _ name: String, _ key: String) throws {
                guard let text else { return }
                if text == "default" { body[key] = .null; return }
                guard let value = Int(text), value >= 1 else { throw ValidationError("\(name) must be a whole number of at least 1, or 'default'") }
                body[key] = .int(value)
            }
            try count(maxRunningSteps, "--max-running-steps", "max_running_steps")
            try count(runBurst, "--run-burst", "run_burst")
            if let runsPerSecond {
                if runsPerSecond == "default" {
                    body["runs_per_second"] = .null
                } else if let whole = Int(runsPerSecond), whole > 0 {
                    body["runs_per_second"] = .int(whole)
                } else if let rate = Double(runsPerSecond), rate > 0, rate.isFinite {
                    body["runs_per_second"] = .double(rate)
                } else {
                    throw ValidationError("--runs-per-second must be a positive number, or 'default'")
                }
            }
            return body
        }

        func validate() throws {
            if try body().isEmpty { throw ValidationError("give at least one of --max-running-steps, --runs-per-second, --run-burst") }
        }

        func run() async throws {
            let reply = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "limits"), json: .object(try body())).body
            if client.output == .json { return Print.json(reply) }
            let settings = reply["settings"] ?? .null
            func shown(_ value: JSONValue?) -> String {
                guard let value, value != .null else { return "server default" }
                if let number = value.doubleValue, value.intValue == nil { return String(number) }
                return value.intValue.map(String.init) ?? value.compactJSON
            }
            print("max running steps: \(shown(settings["max_running_steps"]))")
            print("runs per second:   \(shown(settings["runs_per_second"]))")
            print("run burst:         \(shown(settings["run_burst"]))")
        }
    }
}

// MARK: - yard plan

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Estimate a run's cost range before it runs: per model step, its experts, calls and min–max USD.",
        discussion: """
            min: the fewest calls with small prompts, all cache hits, at the cheapest rates; max: the runtime's
            reservation bound (prompt bytes × the highest input rate + max_tokens × the highest output rate, peak
            included) over every retry, agent turn and cascade escalation. A model without a price is 'unpriced'.
            """)
    @Argument(help: "The workflow name.") var workflow: String
    @Option(help: "The run's input as a JSON object.") var input: String = "{}"
    @OptionGroup var client: ClientOptions

    func run() async throws {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(input.utf8)), case .object = value else {
            throw ValidationError("--input must be a JSON object, like '{\"ticket\": \"My invoice is wrong\"}'")
        }
        let body = try await client.client().send(.POST, APIPath.v1("workflows", workflow, "plan"), json: ["input": value]).body
        if client.output == .json { return Print.json(body) }
        func range(_ low: JSONValue?, _ high: JSONValue?) -> (String, String) {
            guard let low = CostText.money(low), let high = CostText.money(high) else { return ("unpriced", "unpriced") }
            return (CostText.usdDown(low), CostText.usdUp(high))
        }
        var table = Table(headers: ["STEP", "EXPERTS", "CALLS", "MIN USD", "MAX USD"])
        var explained: [String] = []
        for step in body["steps"]?.arrayValue ?? [] {
            let name = step["step"]?.stringValue ?? "?"
            var experts = (step["experts"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
            if let expected = step["expected_expert"]?.stringValue { experts += " (expects \(expected))" }
            let calls = "\(step["calls"]?["min"]?.intValue ?? 0)–\(step["calls"]?["max"]?.intValue ?? 0)"
            let (low, high) = range(step["min_usd"], step["max_usd"])
            table.rows.append([name, experts.isEmpty ? "-" : experts, calls, low, high])
            let notes = (step["notes"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !notes.isEmpty {
                explained.append("  \(name):")
                explained += notes.map { "      \($0)" }
            }
        }
        let (low, high) = range(body["min_usd"], body["max_usd"])
        table.rows.append(["TOTAL", "", "", low, high])
        print("plan for \(body["workflow"]?.stringValue ?? workflow)")
        print("")
        print(table.render())
        if body["unpriced"]?.boolValue == true {
            print("")
            print("some steps run models without a price: the run's cost is unknown (yard prices set adds a price)")
        }
        if !explained.isEmpty {
            print("")
            print("how:")
            explained.forEach { print($0) }
        }
        let notes = (body["notes"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !notes.isEmpty {
            print("")
            print("assumptions:")
            notes.forEach { print("  \($0)") }
        }
    }
}
