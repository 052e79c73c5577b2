import Foundation
import Hummingbird
import SwitchyardAPI
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore

/// Retention, with the admin key: a tenant's retention (`GET|PUT
/// /v1/admin/tenants/{tenant}/retention`, beside its other settings) and pruning on
/// demand (`POST /v1/admin/prune`, what `yard prune` calls). The background pass is
/// ``RetentionService``; both go through the same ``Pruner``.
struct RetentionRoutes {
    let api: APIDependencies

    var pruner: Pruner { Pruner(database: api.database, configuration: api.retention) }

    func add(to group: RouterGroup<AdminRequestContext>) {
        group.get("tenants/:tenant/retention") { _, context in
            let id = try TenantRoutes.tenantID(context)
            guard let retention = try await pruner.repository.retention(tenant: id) else { throw APIError.notFound("tenant") }
            return try JSONBody.reply(APIRetentionEnvelope(retention: render(retention)))
        }
        group.put("tenants/:tenant/retention") { request, context in
            let id = try TenantRoutes.tenantID(context)
            let change = try await request.decode(as: APISetRetentionRequest.self, context: context)
            guard var retention = try await pruner.repository.retention(tenant: id) else { throw APIError.notFound("tenant") }
            if let runs = change.runs { retention.runs = runs }
            if let events = change.events { retention.events = events }
            guard try await pruner.repository.setRetention(tenant: id, retention) else { throw APIError.notFound("tenant") }
            return try JSONBody.reply(APIRetentionEnvelope(retention: render(retention)))
        }
        group.post("prune") { request, context in
            let body = try await request.decode(as: APIPruneRequest.self, context: context)
            var tenant: UUID?
            if let text = body.tenant {
                guard let id = UUID(uuidString: text), try await pruner.repository.retention(tenant: id) != nil else {
                    throw APIError.notFound("tenant")
                }
                tenant = id
            }
            let report = try await pruner.prune(tenant: tenant, olderThan: body.olderThan, dryRun: body.dryRun)
            let counts = report.counts
            return try JSONBody.reply(
                APIPruneResult(
                    prune: .init(
                        dryRun: report.dryRun, tenants: report.tenants, runs: counts.runs, steps: counts.steps, events: counts.events,
                        signals: counts.signals, trimmedRuns: counts.trimmedRuns, ledgerRows: counts.ledgerRows)))
        }
    }

    private func render(_ retention: TenantRetention) -> APIRetention {
        let effective = pruner.effective(retention)
        return APIRetention(
            runs: retention.runs?.description, events: retention.events?.description, effectiveRuns: effective.runs.description,
            effectiveEvents: effective.events.description)
    }
}
