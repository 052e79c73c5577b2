import ArgumentParser
import Foundation
import SwitchyardAPI
import SwitchyardCore

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply workflows, agents and tools from a YAML file or a directory of them.")

    @Option(name: .shortAndLong, help: "A YAML file, or a directory whose .yaml/.yml files are applied.")
    var file: String

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let api = client.client()
        var files: [JSONValue] = []
        for path in try ResourceFiles.list(file) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("cannot read \(path)") }
            // In a directory, other YAML (a scripted expert's rules) is skipped; a file
            // named on its own is always sent, so its mistakes are reported.
            if path != file && !ResourceFiles.declaresResources(text) {
                FileHandle.standardError.write(Data("skipped \(path): no `kind:` documents (not a Switchyard resource file)\n".utf8))
                continue
            }
            files.append(["name": .string(path), "content": .string(text)])
        }
        guard !files.isEmpty else { throw CLIError("no resource files in \(file)") }
        // One request, applied all or nothing: files may refer to each other.
        let response = try await api.send(.POST, "/v1/apply", json: ["files": .array(files)])
        let all = response.body["applied"]?.arrayValue ?? []
        if client.output == .json {
            Print.json(["applied": .array(all)])
            return
        }
        var table = Table(headers: ["KIND", "NAME", "VERSION", "CHANGED"])
        for item in all {
            table.rows.append([item["kind"]?.stringValue ?? "", item["name"]?.stringValue ?? "", String(item["version"]?.intValue ?? 0), item["changed"]?.boolValue == true ? "yes" : "no"])
        }
        print(table.render())
    }
}

/// Finding resource files on disk.
enum ResourceFiles {
    static func list(_ path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw CLIError("\(path) does not exist") }
        guard isDirectory.boolValue else { return [path] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { path.trimmingSuffix("/") + "/" + $0 }
    }

    /// Whether a file holds Switchyard resources (a top-level `kind:` line); other YAML
    /// in a directory, such as a scripted expert's rules, is skipped.
    static func declaresResources(_ text: String) -> Bool {
        text.split(separator: "\n").contains { $0.hasPrefix("kind:") }
    }
}

struct RunWorkflow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Start a run of a workflow.")

    @Argument(help: "The workflow name.")
    var workflow: String

    @Option(help: "The input as a JSON object.")
    var input: String = "{}"

    @Option(name: .customLong("idempotency-key"), help: "Return the existing run when this key was used before.")
    var idempotencyKey: String?

    @Flag(help: "Show live step progress until the run ends; exit 0 only if it succeeded.")
    var watch = false

    @Flag(help: "With --watch: also print the text of model answers as it streams in.")
    var stream = false

    @OptionGroup var client: ClientOptions

    func validate() throws {
        if stream && !watch { throw ValidationError("--stream shows a run's live progress: use it with --watch") }
    }

    func run() async throws {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(input.utf8)), case .object = value else {
            throw ValidationError("--input must be a JSON object, like '{\"ticket\": \"My invoice is wrong\"}'")
        }
        let api = client.client()
        var headers: [(String, String)] = []
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        let response = try await api.send(.POST, APIPath.v1("workflows", workflow, "runs"), json: ["input": value], headers: headers)
        guard let run = response.body["run"], let id = run["id"]?.stringValue else { throw CLIError("the server answered without a run") }
        guard watch else {
            if client.output == .json { Print.json(response.body) } else { print("run \(id) \(run["status"]?.stringValue ?? "")") }
            return
        }
        try await Watch.follow(run: id, api: api, output: client.output, stream: stream)
    }
}

/// Following a run live, then showing it; the exit status says whether it succeeded.
enum Watch {
    /// With `stream` (table output only), model text is printed as it arrives.
    static func follow(run id: String, api: APIClient, output: OutputFormat, stream: Bool = false) async throws {
        Console.useLineBuffering()
        if output == .table { print("run \(id)") }
        var live = LiveFollower(indent: "    ")
        try await api.streamEvents(run: id, deltas: stream && output == .table) { type, event in
            guard output == .table else { return }
            if type == "model.delta" {
                live.delta(event)
            } else {
                live.event(type, step: event["step"]?.stringValue, line: Print.progress(type, event))
            }
        }
        live.end()
        let final = try await api.send(.GET, APIPath.v1("runs", id)).body
        if output == .json {
            Print.json(final)
        } else {
            print("")
            Print.run(final["run"] ?? .null)
        }
        guard final["run"]?["status"]?.stringValue == "succeeded" else { throw ExitCode(1) }
    }
}

struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, inspect, follow, cancel and signal runs.",
        subcommands: [List.self, Show.self, Events.self, Cancel.self, Signal.self, Feedback.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runs, newest first.")
        @Option(help: "Only runs with this status.") var status: String?
        @Option(help: "Only runs of this workflow.") var workflow: String?
        @Option(help: "At most this many runs.") var limit: Int = 20
        @Option(help: "The next_cursor of a previous page.") var cursor: String?
        @OptionGroup var client: ClientOptions

        func run() async throws {
            var query = ["limit=\(limit)"]
            if let status { query.append("status=\(status)") }
            if let workflow { query.append("workflow=\(workflow.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? workflow)") }
            if let cursor { query.append("cursor=\(cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor)") }
            let body = try await client.client().send(.GET, "/v1/runs?" + query.joined(separator: "&")).body
            if client.output == .json { return Print.json(body) }
            var table = Table(headers: ["ID", "WORKFLOW", "VERSION", "STATUS", "CREATED"])
            for run in body["runs"]?.arrayValue ?? [] {
                table.rows.append([
                    run["id"]?.stringValue ?? "", run["workflow"]?.stringValue ?? "", String(run["version"]?.intValue ?? 0),
                    run["status"]?.stringValue ?? "", run["created_at"]?.stringValue ?? "",
                ])
            }
            print(table.render())
            if let next = body["next_cursor"]?.stringValue { print("\nmore: --cursor \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a run with its steps and usage.")
        @Argument var id: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let api = client.client()
            let body = try await api.send(.GET, APIPath.v1("runs", id)).body
            if client.output == .json { return Print.json(body) }
            Print.run(body["run"] ?? .null, calls: try await api.usage(run: id))
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a run's events, following it until it ends.")
        @Argument var id: String
        @Option(help: "Start after this event sequence number.") var after: Int64 = 0
        @Flag(help: "Also show model text live as it streams (model.delta events; with --output json, one line each, without seq).")
        var stream = false
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let output = client.output
            Console.useLineBuffering()
            var live = LiveFollower()
            try await client.client().streamEvents(run: id, after: after, deltas: stream) { type, event in
                if output == .json {
                    if type == "model.delta" {
                        // Not a stored event: no seq or time, and the delta as its data.
                        print(JSONValue.object(["type": .string(type), "step": event["step"] ?? .null, "data": event]).compactJSON)
                    } else {
                        print(event.compactJSON)
                    }
                } else if type == "model.delta" {
                    live.delta(event)
                } else {
                    live.event(type, step: event["step"]?.stringValue, line: "\(event["seq"]?.intValue ?? 0)\t\(event["at"]?.stringValue ?? "")\t\(type)\t\(event["step"]?.stringValue ?? "-")\t\(Print.brief(event["data"], limit: 100))")
                }
            }
            live.end()
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a run.")
        @Argument var id: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client().send(.POST, APIPath.v1("runs", id, "cancel")).body
            if client.output == .json { return Print.json(body) }
            print("run \(id) \(body["run"]?["status"]?.stringValue ?? "")")
        }
    }

    struct Signal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a named signal to a run (resumes its wait_for steps).")
        @Argument var id: String
        @Argument var name: String
        @Option(help: "The signal's data as JSON.") var data: String = "null"
        @OptionGroup var client: ClientOptions

        func run() async throws {
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8)) else {
                throw ValidationError("--data must be JSON")
            }
            let body = try await client.client().send(.POST, APIPath.v1("runs", id, "signals", name), json: ["data": value]).body
            if client.output == .json { return Print.json(body) }
            let resumed = body["resumed_steps"]?.arrayValue?.compactMap(\.stringValue) ?? []
            print("signal \(name) delivered" + (resumed.isEmpty ? "" : "; resumed \(resumed.joined(separator: ", "))"))
        }
    }
}

struct Workflows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List workflows or show one.", subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the latest version of each workflow.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client().send(.GET, "/v1/workflows").body
            if client.output == .json { return Print.json(body) }
            var table = Table(headers: ["NAME", "VERSION", "STEPS", "DESCRIPTION"])
            for w in body["workflows"]?.arrayValue ?? [] {
                table.rows.append([w["name"]?.stringValue ?? "", String(w["version"]?.intValue ?? 0), String(w["steps"]?.intValue ?? 0), Print.brief(w["description"])])
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a workflow's YAML source.")
        @Argument var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client().send(.GET, APIPath.v1("workflows", name)).body
            if client.output == .json { return Print.json(body) }
            print("# \(name) v\(body["workflow"]?["version"]?.intValue ?? 0)")
            print(body["workflow"]?["source"]?.stringValue ?? "")
        }
    }
}

struct AdminOptions: ParsableArguments {
    @Option(name: .customLong("admin-key"), help: "The admin key (default: $YARD_ADMIN_KEY).")
    var adminKey: String?
}

struct Tenants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage tenants (admin key).", subcommands: [Create.self, List.self, Show.self, Gate.self, Egress.self, Limits.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant and print its first API key (shown once).")
        @Argument var name: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client(admin: true, adminKey: admin.adminKey).send(.POST, "/v1/admin/tenants", json: ["name": .string(name)]).body
            if client.output == .json { return Print.json(body) }
            print("tenant \(body["tenant"]?["name"]?.stringValue ?? "") \(body["tenant"]?["id"]?.stringValue ?? "")")
            print("api key (shown once): \(body["api_key"]?.stringValue ?? "")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client(admin: true, adminKey: admin.adminKey).send(.GET, "/v1/admin/tenants").body
            if client.output == .json { return Print.json(body) }
            var table = Table(headers: ["ID", "NAME"])
            for t in body["tenants"]?.arrayValue ?? [] { table.rows.append([t["id"]?.stringValue ?? "", t["name"]?.stringValue ?? ""]) }
            print(table.render())
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
            let body = try await client.client(admin: true, adminKey: admin.adminKey).send(.POST, APIPath.v1("admin", "tenants", tenant, "keys")).body
            if client.output == .json { return Print.json(body) }
            print("api key (shown once): \(body["api_key"]?.stringValue ?? "")")
        }
    }
}
