import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering
import SwitchyardStore

// `yard costs`, and the money figures every metering command shows. Money arrives as
// decimal strings and is parsed with `Money`, so no figure passes through floating point.

/// Money and percentages for tables.
enum CostText {
    /// A decimal-string amount (`cost_usd`), or nil for null or malformed text.
    static func money(_ text: String?) -> Money? {
        guard let text else { return nil }
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
    static func sum(_ calls: [APILedgerRow]) -> (total: Money, unpriced: Int, estimated: Int) {
        var total = Money.zero
        var unpriced = 0
        var estimated = 0
        for call in calls {
            if let cost = money(call.costUSD) {
                total = (try? total.adding(cost)) ?? total
            } else {
                unpriced += 1
            }
            if !call.usageKnown { estimated += 1 }
        }
        return (total, unpriced, estimated)
    }

    /// A step's cost cell from its calls: `0.001234`, `unpriced`, `≥ 0.001234 (2
    /// unpriced)`, with `~` for estimates.
    static func cell(_ calls: [APILedgerRow]) -> String {
        guard !calls.isEmpty else { return "-" }
        let (total, unpriced, estimated) = sum(calls)
        if unpriced == calls.count { return "unpriced" }
        var text = usd(total)
        if estimated > 0 { text = "~" + text }
        if unpriced > 0 { text = "≥ \(text) (\(unpriced) unpriced)" }
        return text
    }
}

enum CostsFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// `--by workflow,step`: the dimensions to group by, comma-separated, in the order given.
struct CostDimensions: ExpressibleByArgument {
    var names: [String]

    init?(argument: String) {
        guard let parsed = try? Self.parse(argument) else { return nil }
        self = parsed
    }

    private init(names: [String]) { self.names = names }

    /// Refuses an unknown dimension as the server would have (`bad_request`, the same
    /// text), so a script that matched the server's refusal still does.
    static func parse(_ text: String) throws -> CostDimensions {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for name in names where CostDimension(rawValue: name) == nil {
            throw ValidationError(
                "bad_request: group_by takes \(CostDimension.allCases.map(\.rawValue).joined(separator: ", ")), comma-separated; not \(name)")
        }
        return CostDimensions(names: names)
    }
}

struct Costs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Show spend from the ledger: calls, tokens (cache hit, miss, output, reasoning), cache-hit ratio and cost, grouped, with totals and pro's share.",
        discussion: """
            Examples:
              yard costs --by workflow,step --since 2026-11-01
              yard costs --by model --output csv > november.csv
              yard costs --by tenant --admin-key $YARD_ADMIN_KEY        # every tenant (admin key)
              yard costs --by step --tenant TENANT_ID                   # one tenant (admin key)
            """)

    @Option(
        name: .customLong("by"), help: "Group by workflow, step, expert, model, day, tenant (admin key); comma-separated.",
        transform: CostDimensions.parse)
    var by: CostDimensions?
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

    var dimensions: [String] { by?.names ?? [] }

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
        APIPath.v1(
            "costs",
            query: [
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
        let report = try await api.send(.GET, path(groupBy: dimensions)).decode(APICostReport.self)
        print(Self.table(report, dimensions: dimensions).render())
        print("")
        guard report.total.calls > 0 else {
            print("no model calls in this period")
            return
        }
        // The names of the models without a price, asked only when some call had none.
        var unpricedModels: [String] = []
        if report.total.unpricedCalls > 0 {
            let byModel = try await api.send(.GET, path(groupBy: ["model"])).decode(APICostReport.self)
            unpricedModels = byModel.groups.filter { $0.unpricedCalls > 0 }.compactMap { $0.key?["model"] }.sorted()
        }
        Self.printSummary(report.total, unpricedModels: unpricedModels)
    }

    /// One row per group (when grouped), then the total. A cost with unpriced calls is
    /// a lower bound (`≥`), or `unpriced` when no call had a price; `~` marks estimates.
    static func table(_ report: APICostReport, dimensions: [String]) -> Table {
        let figures = ["CALLS", "PROMPT", "HIT", "MISS", "OUTPUT", "REASONING", "CACHE HIT %", "COST USD"]
        var table = Table(headers: (dimensions.isEmpty ? [""] : dimensions.map { $0.uppercased() }) + figures)
        func cells(_ group: APICostFigures) -> [String] {
            let hit = group.cacheHitTokens
            let miss = group.cacheMissTokens
            var cost = CostText.money(group.costUSD).map(CostText.usd) ?? "-"
            if group.estimatedCalls > 0 { cost = "~" + cost }
            if group.unpricedCalls > 0 { cost = group.unpricedCalls >= group.calls ? "unpriced" : "≥ \(cost) (\(group.unpricedCalls) unpriced)" }
            return [
                String(group.calls), String(group.promptTokens), String(hit), String(miss), String(group.completionTokens),
                String(group.reasoningTokens), CostText.percent(Int64(hit), of: Int64(hit + miss)), cost,
            ]
        }
        if !dimensions.isEmpty {
            for group in report.groups {
                table.rows.append(dimensions.map { group.key?[$0] ?? "" } + cells(group))
            }
        }
        table.rows.append(["TOTAL"] + Array(repeating: "", count: max(0, dimensions.count - 1)) + cells(report.total))
        return table
    }

    /// Pro's share of the calls and the spend (the server's figures), the unpriced and
    /// estimated calls, and how to read the token columns.
    static func printSummary(_ total: APICostFigures, unpricedModels: [String]) {
        let totalCalls = Int64(total.calls)
        let proCalls = Int64(total.proCalls)
        let totalCost = CostText.money(total.costUSD) ?? .zero
        let proCost = CostText.money(total.proCostUSD) ?? .zero
        let unpricedCalls = total.unpricedCalls
        var share = "pro: \(proCalls) of \(totalCalls) calls (\(CostText.percent(proCalls, of: totalCalls)))"
        if unpricedCalls < totalCalls {
            share += ", \(CostText.usd(proCost)) of \(CostText.usd(totalCost)) USD (\(CostText.percent(proCost.picoUSD, of: totalCost.picoUSD)))"
            if unpricedCalls > 0 { share += " of the priced calls" }
        }
        print(share)
        if unpricedCalls > 0 {
            print(
                "unpriced: \(unpricedCalls) call\(unpricedCalls == 1 ? "" : "s") of \(unpricedModels.joined(separator: ", ")), made without a price: their tokens are counted, their cost is unknown and not in COST USD (yard prices set adds a price for later calls)"
            )
        }
        if total.estimatedCalls > 0 {
            let estimated = total.estimatedCalls
            print(
                "estimated (~): \(estimated) call\(estimated == 1 ? "" : "s") whose usage was never reported, billed at their upper-bound reservation"
            )
        }
        print("tokens: PROMPT = HIT + MISS when the provider reports the cache split; OUTPUT includes REASONING")
    }
}
