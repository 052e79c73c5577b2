import ArgumentParser
import Foundation
import Logging
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardExperts
import SwitchyardMetering
import SwitchyardServer
import SwitchyardStore

/// `yard demo`: from nothing to a finished, inspected run. It starts an embedded
/// database and a server, creates a tenant, applies `Workflows/`, runs the example
/// over HTTP, follows it and shows it.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start a server with an embedded database, run the example workflow, and show it.")

    @OptionGroup var server: ServerOptions

    @Option(help: "Port for the demo server (default: a free one).")
    var port: Int = 0

    @Flag(help: "Keep serving after the demo run, and print the URL and key to go on with the CLI.")
    var serve = false

    @Flag(help: "Use the scripted experts (the deterministic tour of ticket-triage) even when a model is available.")
    var scripted = false

    @Option(help: "The workflow to run (default: ticket-triage; story when the experts are the local model).")
    var workflow: String?

    @Option(help: "The run's input as JSON (default: the chosen workflow's example).")
    var input: String?

    static let ticketInput = #"{"ticket": "I was charged twice for my March invoice, please refund one charge.", "customer_tier": "standard"}"#

    func run() async throws {
        Console.useLineBuffering()
        var logger = Logger(label: "switchyard")
        logger.logLevel = .warning
        let level: Logger.Level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var configuration = try server.load()
        configuration.port = port
        let workflowsDirectory = ProjectFiles.directory("Workflows", environmentVariable: "SWITCHYARD_WORKFLOWS")
        if scripted {
            configuration.experts = ServerConfiguration.scriptedExperts(workflowsDirectory: workflowsDirectory)
        }
        let experts =
            configuration.experts.isEmpty ? ServerConfiguration.defaultExperts(workflowsDirectory: workflowsDirectory) : configuration.experts
        // A small local base model cannot answer ticket-triage's JSON steps: it runs `story`.
        let onLocalModel = experts[ExpertTier.flash.rawValue]?.provider == .local
        let workflowName = workflow ?? (onLocalModel ? "story" : "ticket-triage")
        let inputText = input ?? (workflowName == "ticket-triage" ? Self.ticketInput : "{}")
        if onLocalModel { print("experts: the local model (\(experts[ExpertTier.flash.rawValue]?.model ?? "installed")), in-process") }
        let adminKey = "demo-admin-" + UUID().lowercasedString
        configuration.adminKey = adminKey
        guard let workflows = ProjectFiles.directory("Workflows", environmentVariable: "SWITCHYARD_WORKFLOWS") else {
            throw CLIError("cannot find the Workflows directory; run yard demo from the repository or set SWITCHYARD_WORKFLOWS")
        }
        print("starting PostgreSQL…")
        let database = try DatabaseBootstrap.resolve(url: configuration.databaseURL, dataDirectory: server.dataDir)
        defer { database.stop() }
        let app = try SwitchyardServer(configuration: configuration, database: database.configuration, logger: logger)
        let (portStream, portContinuation) = AsyncStream<Int>.makeStream()
        let (doneStream, doneContinuation) = AsyncStream<Void>.makeStream()
        let keepServing = serve
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { portContinuation.finish() }
                try await app.run(onListening: { port in portContinuation.yield(port) }, until: { for await _ in doneStream {} })
            }
            var iterator = portStream.makeAsyncIterator()
            guard let boundPort = await iterator.next() else {
                // The server stopped before listening: surface its error.
                try await group.next()
                throw CLIError("the server stopped before it was listening")
            }
            let url = "http://127.0.0.1:\(boundPort)"
            print("server listening on \(url)")
            let (api, key, runID) = try await Self.start(
                url: url, adminKey: adminKey, workflows: workflows, workflowName: workflowName, inputText: inputText)
            print("")
            var outcome: (any Error)?
            do {
                try await Watch.follow(run: runID, api: api, output: .table)
            } catch {
                outcome = error
            }
            if keepServing {
                print("")
                print("The server keeps running. Go on with the CLI:")
                print("  export YARD_URL=\(url)")
                print("  export YARD_API_KEY=\(key)")
                print("  export YARD_ADMIN_KEY=\(adminKey)")
                print("  yard runs list")
                print("Press Ctrl-C to stop.")
            } else {
                doneContinuation.finish()
            }
            try await group.waitForAll()
            if let outcome { throw outcome }
        }
    }

    /// Over HTTP, as a user would: creates a tenant, prices the scripted experts,
    /// applies `workflows` and starts a run of `workflowName`; returns the tenant's
    /// client, its key and the run's id.
    static func start(
        url: String, adminKey: String, workflows: String, workflowName: String, inputText: String
    ) async throws -> (api: APIClient, key: String, runID: String) {
        let admin = APIClient.make(url: url, key: adminKey)
        let tenantName = "demo-\(UUID().uuidString.prefix(8).lowercased())"
        let created = try await admin.send(.POST, APIPath.v1("admin", "tenants"), body: APICreateTenantRequest(name: tenantName))
        guard let key = try? created.decode(APITenantCreated.self).apiKey else { throw CLIError("creating the demo tenant failed") }
        print("created tenant \(tenantName)")
        try await priceScriptedExperts(admin: admin)
        let api = APIClient.make(url: url, key: key)
        var files: [APIApplyRequest.File] = []
        for path in try ResourceFiles.list(workflows) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8), ResourceFiles.declaresResources(text) else { continue }
            files.append(.init(name: path, content: text))
        }
        let applied = try await api.send(.POST, APIPath.v1("apply"), body: APIApplyRequest(files: files)).decode(APIApplyResult.self).applied
        print("applied \(applied.map { "\($0.kind) \($0.name)" }.joined(separator: ", ")) from \(workflows)")
        guard let input = try? JSONDecoder().decode(JSONValue.self, from: Data(inputText.utf8)) else { throw ValidationError("--input must be JSON") }
        let started = try await api.send(.POST, APIPath.v1("workflows", workflowName, "runs"), json: ["input": input])
        guard let runID = try? started.decode(APIRunEnvelope.self).run.id else { throw CLIError("the server answered without a run") }
        return (api, key, runID)
    }

    /// Adds `Data/demo-prices.yaml` (the scripted experts billed as DeepSeek's) to the
    /// price book when missing, so that the demo's run has a cost.
    static func priceScriptedExperts(admin: APIClient) async throws {
        guard let directory = ProjectFiles.directory("Data", environmentVariable: "SWITCHYARD_DATA"),
            let text = try? String(contentsOfFile: directory + "/demo-prices.yaml", encoding: .utf8)
        else { return }
        let existing = Set(try await admin.send(.GET, APIPath.v1("prices")).decode(APIPriceList.self).prices.compactMap(\.id))
        for row in try PriceBook.parseSeed(text) where !existing.contains(row.id) {
            _ = try await admin.send(.POST, APIPath.v1("admin", "prices"), body: try APIPrice(row))
        }
    }
}
