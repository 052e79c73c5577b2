import ArgumentParser
import Foundation

/// `yard`: the one executable of Switchyard, the server and its command-line client.
@main
struct Yard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yard",
        abstract: "Switchyard: multi-tenant agent workflows with a durable engine and metered model routing.",
        subcommands: [
            Serve.self, Migrate.self, Demo.self,
            Apply.self, RunWorkflow.self, Runs.self, Workflows.self,
            Tenants.self, Keys.self, Secrets.self, Tools.self, Bench.self, Local.self,
            Costs.self, Prices.self, Budgets.self, Plan.self, Prune.self,
        ])
}

/// Where the server is and who is calling: `--url`/`YARD_URL`, `--api-key`/`YARD_API_KEY`.
struct ClientOptions: ParsableArguments {
    @Option(help: "Server URL (default: $YARD_URL or http://127.0.0.1:8080).")
    var url: String?

    @Option(name: .customLong("api-key"), help: "Tenant API key (default: $YARD_API_KEY).")
    var apiKey: String?

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    func client(admin: Bool = false, adminKey: String? = nil) -> APIClient {
        let env = ProcessInfo.processInfo.environment
        return APIClient.make(url: url, key: admin ? (adminKey ?? env["YARD_ADMIN_KEY"]) : (apiKey ?? env["YARD_API_KEY"]))
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// The admin key: `--admin-key`, else `YARD_ADMIN_KEY`.
struct AdminOptions: ParsableArguments {
    @Option(name: .customLong("admin-key"), help: "The admin key (default: $YARD_ADMIN_KEY).")
    var adminKey: String?
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
