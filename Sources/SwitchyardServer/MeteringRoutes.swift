import Foundation
import Hummingbird
import NIOCore
import SwitchyardAPI
import SwitchyardCore
import SwitchyardMetering
import SwitchyardStore

/// Usage, costs, budgets and prices. Money is always a decimal string: JSON numbers
/// would invite floating point into billing.
struct MeteringRoutes {
    let api: APIDependencies

    // MARK: Tenant routes

    func add(tenant group: RouterGroup<TenantRequestContext>) {
        group.get("usage") { request, context in
            let query = request.uri.queryParameters
            var run: UUID?
            if let text = query.get("run") {
                guard let id = UUID(uuidString: text) else { throw APIError.badRequest("run must be a run id") }
                run = id
            }
            let (from, to) = try Self.period(request)
            var limit = 100
            if let text = query.get("limit") {
                guard let parsed = Int(text), (1...1000).contains(parsed) else {
                    throw APIError.badRequest("limit must be an integer from 1 to 1000")
                }
                limit = parsed
            }
            var cursor: LedgerCursor?
            if let text = query.get("cursor"), !text.isEmpty {
                guard let parsed = LedgerCursor(token: text) else { throw APIError.badRequest("cursor is not one this server gave out") }
                cursor = parsed
            }
            let page = try await api.metering.calls(tenant: context.tenant.id, run: run, from: from, to: to, limit: limit, after: cursor)
            return try JSONBody.reply(APIUsagePage(calls: page.calls.map(Self.render), nextCursor: page.next?.token))
        }
        group.get("budget") { _, context in
            try await Self.budgetResponse(api: api, tenant: context.tenant.id)
        }
    }

    // MARK: Routes for a tenant key or the admin key

    func add(any group: RouterGroup<AppRequestContext>) {
        group.get("costs") { request, context in
            guard context.isAdmin || context.tenant != nil else { throw APIError.unauthorized }
            let query = request.uri.queryParameters
            var dimensions: [CostDimension] = []
            for name in (query.get("group_by") ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
                guard let dimension = CostDimension(rawValue: name) else {
                    throw APIError.badRequest(
                        "group_by takes \(CostDimension.allCases.map(\.rawValue).joined(separator: ", ")), comma-separated; not \(name)")
                }
                if !dimensions.contains(dimension) { dimensions.append(dimension) }
            }
            var tenant = context.tenant?.id
            if context.isAdmin {
                if let text = query.get("tenant") {
                    guard let id = UUID(uuidString: text) else { throw APIError.badRequest("tenant must be a tenant id") }
                    tenant = id
                }
            } else if dimensions.contains(.tenant) || query.get("tenant") != nil {
                throw APIError(.forbidden, code: .forbidden, "only the admin key can see or group by other tenants")
            }
            let (from, to) = try Self.period(request)
            let groups = try await api.metering.costs(tenant: tenant, groupBy: dimensions, from: from, to: to)
            let total = try CostGroup.total(of: groups)
            if (request.headers[.accept] ?? "").contains("text/csv") {
                return Self.csv(groups: groups, total: total, dimensions: dimensions)
            }
            return try JSONBody.reply(APICostReport(groups: groups.map { Self.figures($0, key: $0.key) }, total: Self.figures(total, key: nil)))
        }
        group.get("prices") { _, context in
            guard context.isAdmin || context.tenant != nil else { throw APIError.unauthorized }
            let book = try await api.metering.priceBook()
            return try JSONBody.reply(APIPriceList(prices: try book.rows.map(APIPrice.init)))
        }
    }

    // MARK: Admin routes

    func add(admin group: RouterGroup<AdminRequestContext>) {
        group.get("tenants/:tenant/budget") { _, context in
            try await Self.budgetResponse(api: api, tenant: try TenantRoutes.tenantID(context))
        }
        group.put("tenants/:tenant/budget") { request, context in
            let id = try TenantRoutes.tenantID(context)
            let body = try await request.decode(as: APISetBudgetRequest.self, context: context)
            let limit: Money
            do throws(MeteringError) {
                limit = try Money(parsing: body.monthlyUSD)
            } catch {
                throw APIError(.unprocessableContent, code: .invalidRequest, "monthly_usd: \(error.message)")
            }
            guard !limit.isNegative else { throw APIError(.unprocessableContent, code: .invalidRequest, "monthly_usd must not be negative") }
            var policy = BudgetPolicy.fail
            if let value = body.onBudget {
                guard let text = value.stringValue, let parsed = BudgetPolicy(rawValue: text) else {
                    throw APIError(.unprocessableContent, code: .invalidRequest, "on_budget must be fail or downgrade")
                }
                policy = parsed
            }
            guard try await api.metering.setBudget(tenant: id, Budget(monthlyLimit: limit, onBudget: policy)) else {
                throw APIError.notFound("tenant")
            }
            return try await Self.budgetResponse(api: api, tenant: id)
        }
        group.delete("tenants/:tenant/budget") { _, context in
            let id = try TenantRoutes.tenantID(context)
            guard try await api.tenants.tenant(id: id) != nil else { throw APIError.notFound("tenant") }
            _ = try await api.metering.setBudget(tenant: id, nil)
            return Response(status: .noContent)
        }
        group.post("prices") { request, _ in
            let text = try await JSONBody.text(of: request)
            let parsed = try await ResourceRoutes.parse(api.yamlParsing) {
                Result { () throws(MeteringError) in try PriceBook.parseRow(text) }
            }
            let row: PriceRow
            do throws(MeteringError) {
                row = try parsed.get()
            } catch {
                throw APIError(.unprocessableContent, code: .invalidPrice, error.description)
            }
            try await api.metering.addPrice(row)
            return try JSONBody.reply(APIPriceEnvelope(price: try APIPrice(row)), status: .created)
        }
    }

    // MARK: - Rendering and parsing

    static func render(_ row: LedgerRow) -> APILedgerRow {
        APILedgerRow(
            run: Render.id(row.run), step: row.step, attempt: row.attempt, call: row.call, expert: row.expert, model: row.model,
            promptTokens: row.promptTokens, cacheHitTokens: row.cacheHitTokens, cacheMissTokens: row.cacheMissTokens,
            completionTokens: row.completionTokens, reasoningTokens: row.reasoningTokens, costUSD: row.cost?.decimalString,
            priceID: row.priceID, usageKnown: row.usageKnown)
    }

    /// A group's figures. Shown apart: calls of unpriced models (cost unknown, not in
    /// cost_usd) and calls whose usage was never reported (in cost_usd at their estimate).
    static func figures(_ group: CostGroup, key: [String: String]?) -> APICostFigures {
        APICostFigures(
            key: key, calls: group.calls, promptTokens: group.promptTokens, cacheHitTokens: group.cacheHitTokens,
            cacheMissTokens: group.cacheMissTokens, completionTokens: group.completionTokens, reasoningTokens: group.reasoningTokens,
            costUSD: group.cost.decimalString, unpricedCalls: group.unpricedCalls, estimatedCalls: group.estimatedCalls,
            proCalls: group.proCalls, proCostUSD: group.proCost.decimalString)
    }

    static let figureColumns = [
        "calls", "prompt_tokens", "cache_hit_tokens", "cache_miss_tokens", "completion_tokens", "reasoning_tokens", "cost_usd",
    ]

    /// CSV (RFC 4180): one row per group, then a `total` row.
    static func csv(groups: [CostGroup], total: CostGroup, dimensions: [CostDimension]) -> Response {
        func field(_ text: String) -> String {
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        func cells(_ group: CostGroup) -> [String] {
            [
                String(group.calls), String(group.promptTokens), String(group.cacheHitTokens), String(group.cacheMissTokens),
                String(group.completionTokens), String(group.reasoningTokens), group.cost.decimalString,
            ]
        }
        var lines = [(dimensions.map(\.rawValue) + figureColumns).joined(separator: ",")]
        for group in groups {
            lines.append((dimensions.map { field(group.key[$0.rawValue] ?? "") } + cells(group)).joined(separator: ","))
        }
        let totalKey = dimensions.isEmpty ? [] : ["total"] + Array(repeating: "", count: dimensions.count - 1)
        lines.append((totalKey + cells(total)).joined(separator: ","))
        let text = lines.joined(separator: "\r\n") + "\r\n"
        return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// `from` (inclusive) and `to` (exclusive): dates or RFC 3339 instants.
    static func period(_ request: Request) throws -> (Date?, Date?) {
        func parse(_ name: String) throws -> Date? {
            guard let text = request.uri.queryParameters.get(name) else { return nil }
            guard let date = UTCTime.parse(text) else {
                throw APIError.badRequest("\(name) must be a UTC date (2026-11-01) or instant (2026-11-01T00:00:00Z)")
            }
            return date
        }
        let from = try parse("from")
        let to = try parse("to")
        if let from, let to, to <= from { throw APIError.badRequest("to must be after from") }
        return (from, to)
    }

    static func budgetResponse(api: APIDependencies, tenant: UUID) async throws -> Response {
        guard try await api.tenants.tenant(id: tenant) != nil else { throw APIError.notFound("tenant") }
        let budget = try await api.metering.budget(tenant: tenant)
        let (spent, reserved) = try await api.metering.spend(tenant: tenant)
        let alerts = try await api.metering.alertsThisMonth(tenant: tenant)
        return try JSONBody.reply(
            APIBudgetEnvelope(
                budget: APIBudget(
                    monthlyUSD: budget?.monthlyLimit.formatted(decimals: 2), onBudget: budget?.onBudget.rawValue,
                    spentUSD: spent.decimalString, reservedUSD: reserved.decimalString, alerts: alerts)))
    }
}

extension APIPrice {
    /// A price row in its seed shape: the metering module renders it, the wire type
    /// reads it, so the API and the seed file can never disagree on a row's fields.
    public init(_ row: PriceRow) throws {
        self = try WireDecoder.decode(APIPrice.self, from: row.seedJSON)
    }
}
