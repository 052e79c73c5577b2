import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore

// `yard tenants …` and `yard keys create` (admin key): tenants, their keys and settings.

struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage tenants (admin key).",
        subcommands: [Create.self, List.self, Show.self, Gate.self, Egress.self, Limits.self, Retention.self])

    /// Prints a tenant's settings as `yard tenants show` does.
    static func printSettings(_ settings: APITenantSettings) {
        let threshold = settings.gateThreshold.map { Print.number($0) } ?? "server default"
        let allow = settings.egressAllow
        print("gate threshold: \(threshold)")
        print("egress allow:   \(allow.isEmpty ? "(none beyond the server's list)" : allow.joined(separator: ", "))")
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant and print its first API key (shown once).")
        @Argument var name: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.POST, APIPath.v1("admin", "tenants"), body: APICreateTenantRequest(name: name))
            let created = try response.decode(APITenantCreated.self)
            if client.output == .json { return Print.json(response.body) }
            print("tenant \(created.tenant.name) \(created.tenant.id)")
            print("api key (shown once): \(created.apiKey)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey).send(.GET, APIPath.v1("admin", "tenants"))
            let tenants = try response.decode(APITenantList.self).tenants
            if client.output == .json { return Print.json(response.body) }
            var table = Table(headers: ["ID", "NAME"])
            for tenant in tenants { table.rows.append([tenant.id, tenant.name]) }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a tenant and its settings (gate threshold, egress allow list).")
        @Argument(help: "The tenant id.") var tenant: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey).send(.GET, APIPath.v1("admin", "tenants", tenant))
            let found = try response.decode(APITenantDetail.self).tenant
            if client.output == .json { return Print.json(response.body) }
            print("tenant \(found.name) \(found.id)")
            Tenants.printSettings(found.settings)
        }
    }

    struct Gate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the tenant's auto-gate threshold (-1 to 1; higher sends fewer steps to pro), or --default for the server's.")
        @Argument(help: "The tenant id.") var tenant: String
        @Option(parsing: .unconditional, help: "The threshold, from -1 to 1.") var threshold: Double?
        @Flag(name: .customLong("default"), help: "Use the server's default threshold.") var useDefault = false
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func validate() throws {
            if threshold != nil && useDefault { throw ValidationError("give either --threshold X or --default, not both") }
            if threshold == nil && !useDefault { throw ValidationError("give --threshold X (from -1 to 1) or --default") }
        }

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "gate"), body: APISetGateRequest(threshold: threshold))
            let settings = try response.decode(APITenantSettingsEnvelope.self).settings
            if client.output == .json { return Print.json(response.body) }
            Tenants.printSettings(settings)
        }
    }

    struct Egress: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the hosts, IP addresses and CIDRs the tenant's tools may reach, on top of the server's list.",
            discussion:
                "Replaces the whole list: yard tenants egress TENANT --allow 10.0.0.0/8,kb.internal (or --allow repeated); --clear empties it.")
        @Argument(help: "The tenant id.") var tenant: String
        @Option(help: "Allowed entries, comma-separated or repeated.") var allow: [String] = []
        @Flag(help: "Empty the tenant's list.") var clear = false
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        var entries: [String] {
            allow.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }

        func validate() throws {
            if clear && !allow.isEmpty { throw ValidationError("give either --allow or --clear, not both") }
            if !clear && entries.isEmpty {
                throw ValidationError("give the entries with --allow a,b,c (the list is replaced), or --clear to empty it")
            }
        }

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "egress"), body: APISetEgressRequest(allow: entries))
            let settings = try response.decode(APITenantSettingsEnvelope.self).settings
            if client.output == .json { return Print.json(response.body) }
            Tenants.printSettings(settings)
        }
    }

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

        /// The request: each option given is a value, or null for 'default'; the others are left out.
        func body() throws -> APISetLimitsRequest {
            func count(_ text: String?, _ name: String) throws -> Int?? {
                guard let text else { return .none }
                if text == "default" { return .some(nil) }
                guard let value = Int(text), value >= 1 else { throw ValidationError("\(name) must be a whole number of at least 1, or 'default'") }
                return .some(value)
            }
            var body = APISetLimitsRequest()
            body.maxRunningSteps = try count(maxRunningSteps, "--max-running-steps")
            body.runBurst = try count(runBurst, "--run-burst")
            if let runsPerSecond {
                if runsPerSecond == "default" {
                    body.runsPerSecond = .some(nil)
                } else if let rate = Double(runsPerSecond), rate > 0, rate.isFinite {
                    body.runsPerSecond = .some(rate)
                } else {
                    throw ValidationError("--runs-per-second must be a positive number, or 'default'")
                }
            }
            return body
        }

        func validate() throws {
            if try body() == APISetLimitsRequest() {
                throw ValidationError("give at least one of --max-running-steps, --runs-per-second, --run-burst")
            }
        }

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "limits"), body: try body())
            let settings = try response.decode(APITenantSettingsEnvelope.self).settings
            if client.output == .json { return Print.json(response.body) }
            func shown(_ value: Double?) -> String {
                guard let value else { return "server default" }
                return value.rounded() == value && abs(value) < 9.0e15 ? String(Int(value)) : String(value)
            }
            print("max running steps: \(settings.maxRunningSteps.map(String.init) ?? "server default")")
            print("runs per second:   \(shown(settings.runsPerSecond))")
            print("run burst:         \(settings.runBurst.map(String.init) ?? "server default")")
        }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage API keys (admin key).", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create another API key for a tenant (shown once).")
        @Option(help: "The tenant id.") var tenant: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client(admin: true, adminKey: admin.adminKey).send(.POST, APIPath.v1("admin", "tenants", tenant, "keys"))
            let key = try response.decode(APIKeyCreated.self).apiKey
            if client.output == .json { return Print.json(response.body) }
            print("api key (shown once): \(key)")
        }
    }
}
