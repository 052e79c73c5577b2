import Foundation
import Hummingbird
import SwitchyardAPI
import SwitchyardCore
import SwitchyardStore
import SwitchyardTools

/// `/v1/admin/tenants…`: creating and listing tenants, their keys, and the settings an
/// operator sets per tenant (the gate's threshold, the egress allow list, the limits).
/// Budgets are with the metering routes.
struct TenantRoutes {
    let api: APIDependencies

    func add(to group: RouterGroup<AdminRequestContext>) {
        group.post("tenants") { request, context in
            let name = try await request.decode(as: APICreateTenantRequest.self, context: context).name
            guard Self.isValidTenantName(name) else {
                throw APIError(
                    .unprocessableContent, code: .invalidRequest,
                    "tenant names are 1-63 characters of a-z, 0-9, - and _, starting with a letter or digit")
            }
            let (tenant, key) = try await api.tenants.createTenant(name: name)
            return try JSONBody.reply(APITenantCreated(tenant: APITenant(id: Render.id(tenant.id), name: tenant.name), apiKey: key), status: .created)
        }
        group.get("tenants") { _, _ in
            let tenants = try await api.tenants.tenants()
            return try JSONBody.reply(APITenantList(tenants: tenants.map { APITenant(id: Render.id($0.id), name: $0.name) }))
        }
        group.post("tenants/:tenant/keys") { _, context in
            guard let id = UUID(uuidString: context.parameters.get("tenant") ?? ""), let key = try await api.tenants.createKey(tenant: id) else {
                throw APIError.notFound("tenant")
            }
            return try JSONBody.reply(APIKeyCreated(apiKey: key), status: .created)
        }
        group.get("tenants/:tenant") { _, context in
            let id = try Self.tenantID(context)
            guard let tenant = try await api.tenants.tenant(id: id), let settings = try await api.tenants.settings(tenant: id) else {
                throw APIError.notFound("tenant")
            }
            let detail = APITenantDetail.Tenant(id: Render.id(tenant.id), name: tenant.name, settings: Render.tenantSettings(settings))
            return try JSONBody.reply(APITenantDetail(tenant: detail))
        }
        addSettings(to: group)
    }

    /// `PUT /v1/admin/tenants/{tenant}/egress|gate|limits`.
    private func addSettings(to group: RouterGroup<AdminRequestContext>) {
        group.put("tenants/:tenant/egress") { request, context in
            let id = try Self.tenantID(context)
            let allow = try Self.egressEntries(try await request.decode(as: APISetEgressRequest.self, context: context).allow)
            return try await update(id) { $0.egressAllow = allow }
        }
        group.put("tenants/:tenant/gate") { request, context in
            let id = try Self.tenantID(context)
            let threshold = try await request.decode(as: APISetGateRequest.self, context: context).threshold
            if let threshold, !(-1...1).contains(threshold) {
                throw APIError(.unprocessableContent, code: .invalidRequest, "`threshold` must be from -1 to 1 (higher sends fewer steps to pro)")
            }
            return try await update(id) { $0.gateThreshold = threshold }
        }
        // Each limit a positive number, or null for the server's default; absent ones stay.
        group.put("tenants/:tenant/limits") { request, context in
            let id = try Self.tenantID(context)
            let limits = try await request.decode(as: APISetLimitsRequest.self, context: context)
            return try await update(id) { settings in
                if let steps = limits.maxRunningSteps { settings.maxRunningSteps = steps }
                if let burst = limits.runBurst { settings.runBurst = burst }
                if let rate = limits.runsPerSecond { settings.runsPerSecond = rate }
            }
        }
    }

    /// The egress allow list's entries, each checked; every bad one is reported by index.
    static func egressEntries(_ items: [JSONValue]) throws -> [String] {
        var allow: [String] = []
        var problems: [APIProblem] = []
        for (index, item) in items.enumerated() {
            guard let text = item.stringValue else {
                problems.append(APIProblem(path: "allow[\(index)]", message: "expected a string"))
                continue
            }
            do {
                _ = try EgressPolicy.parseEntry(text)
                allow.append(text)
            } catch {
                problems.append(APIProblem(path: "allow[\(index)]", message: "\(error)"))
            }
        }
        guard problems.isEmpty else {
            throw APIError(.unprocessableContent, code: .invalidRequest, "the egress allow list has invalid entries", details: problems)
        }
        return allow
    }

    private func update(_ id: UUID, _ change: (inout TenantSettings) -> Void) async throws -> Response {
        guard var settings = try await api.tenants.settings(tenant: id) else { throw APIError.notFound("tenant") }
        change(&settings)
        guard try await api.tenants.updateSettings(tenant: id, settings) else { throw APIError.notFound("tenant") }
        return try JSONBody.reply(APITenantSettingsEnvelope(settings: Render.tenantSettings(settings)))
    }

    static func tenantID(_ context: AdminRequestContext) throws -> UUID {
        guard let id = UUID(uuidString: context.parameters.get("tenant") ?? "") else { throw APIError.notFound("tenant") }
        return id
    }

    static func isValidTenantName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 63 else { return false }
        let allowed = CharacterSet.lowercaseLetters.union(.decimalDigits).union(CharacterSet(charactersIn: "-_"))
        return name.unicodeScalars.allSatisfy { $0.isASCII && allowed.contains($0) } && first != "-" && first != "_"
    }
}
