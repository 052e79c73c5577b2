import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore

// `yard prune` and `yard tenants retention` (admin key): retention on demand and per tenant.

/// `yard prune [--tenant ID|NAME] [--older-than 7d] [--dry-run]`: asks the server to
/// prune now (`POST /v1/admin/prune`) and prints what it deleted.
struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished runs past their retention, with their steps, events and signals (admin key).",
        discussion: """
            Prunes every tenant, or one with --tenant, by each tenant's retention (else the server's \
            retention.runs); --older-than replaces it for this pass (tenants set to 'forever' are never pruned). \
            The ledger is kept. --dry-run only counts.
            """)
    @Option(help: "A tenant id or name (default: every tenant).") var tenant: String?
    @Option(name: .customLong("older-than"), help: "Prune finished runs older than this (7d, 12h) instead of by retention.")
    var olderThan: String?
    @Flag(name: .customLong("dry-run"), help: "Count what would be deleted, delete nothing.") var dryRun = false
    @OptionGroup var admin: AdminOptions
    @OptionGroup var client: ClientOptions

    func validate() throws {
        if let olderThan, RetentionPeriod.parse(olderThan)?.milliseconds == nil {
            throw ValidationError("--older-than must be a number of days like 7d or a duration like 12h")
        }
    }

    func run() async throws {
        let api = client.client(admin: true, adminKey: admin.adminKey)
        var tenantID: String?
        if let tenant {
            tenantID = try await Self.resolve(tenant: tenant, api: api)
        }
        let age = olderThan.flatMap(RetentionPeriod.parse).flatMap { period -> TimeSpan? in
            if case .span(let span) = period { return span }
            return nil
        }
        let request = APIPruneRequest(tenant: tenantID, olderThan: age, dryRun: dryRun)
        let response = try await api.send(.POST, APIPath.v1("admin", "prune"), json: try WireEncoder.json(request), timeout: .hours(2))
        let counts = try response.decode(APIPruneResult.self).prune
        if client.output == .json { return Print.json(response.body) }
        let verb = counts.dryRun ? "would delete" : "deleted"
        print("\(verb) \(counts.runs) runs, \(counts.steps) steps, \(counts.events) events, \(counts.signals) signals (\(counts.tenants) tenants)")
        if counts.trimmedRuns > 0 { print("event logs cut to their final event: \(counts.trimmedRuns) runs") }
        if counts.ledgerRows > 0 { print("ledger rows past the ledger's retention: \(counts.ledgerRows)") }
    }

    /// A tenant id as given, or the id of the tenant with this name.
    static func resolve(tenant: String, api: APIClient) async throws -> String {
        if UUID(uuidString: tenant) != nil { return tenant.lowercased() }
        let tenants = try await api.send(.GET, APIPath.v1("admin", "tenants")).decode(APITenantList.self).tenants
        guard let found = tenants.first(where: { $0.name == tenant }) else { throw CLIError("no tenant is named \(tenant)") }
        return found.id
    }
}

extension Tenants {
    /// `yard tenants retention TENANT [--runs 30d|forever|default] [--events 7d|forever|default]`.
    struct Retention: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or set how long a tenant's finished runs and their event logs are kept (admin key).",
            discussion: "Without options, shows it. Values: a number of days (30d), a duration of at least 1h (12h), forever, or default.")
        @Argument(help: "The tenant id or name.") var tenant: String
        @Option(help: "Keep finished runs (with steps, events, signals) this long.") var runs: String?
        @Option(help: "Keep their event logs whole this long (then only the final event).") var events: String?
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func body() throws -> APISetRetentionRequest {
            func period(_ text: String?, _ name: String) throws -> RetentionPeriod?? {
                guard let text else { return .none }
                if text == "default" { return .some(nil) }
                guard let period = RetentionPeriod.parse(text), period.isValidSetting else {
                    throw ValidationError("\(name) must be forever, a number of days like 30d, a duration of at least 1h, or 'default'")
                }
                return .some(period)
            }
            return APISetRetentionRequest(runs: try period(runs, "--runs"), events: try period(events, "--events"))
        }

        func validate() throws {
            _ = try body()
        }

        func run() async throws {
            let api = client.client(admin: true, adminKey: admin.adminKey)
            let id = try await Prune.resolve(tenant: tenant, api: api)
            let path = APIPath.v1("admin", "tenants", id, "retention")
            let request = try body()
            let response =
                request == APISetRetentionRequest() ? try await api.send(.GET, path) : try await api.send(.PUT, path, body: request)
            let retention = try response.decode(APIRetentionEnvelope.self).retention
            if client.output == .json { return Print.json(response.body) }
            print("runs:   \(retention.effectiveRuns)\(retention.runs == nil ? " (server default)" : "")")
            print("events: \(retention.effectiveEvents)\(retention.events == nil ? " (server default)" : "")")
        }
    }
}
