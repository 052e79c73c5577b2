import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore
import SwitchyardStore

// `yard run` and `yard runs …`: starting, following, listing, inspecting, cancelling
// and signalling runs, and feedback on their steps.

/// `--status` takes the statuses the server knows (the store's own enum).
extension RunStatus: ExpressibleByArgument {
    /// Refuses an unknown status as the server would have (`bad_request`, the same text),
    /// so a script that matched the server's refusal still does.
    static func parse(_ text: String) throws -> RunStatus {
        guard let status = RunStatus(rawValue: text) else {
            throw ValidationError("bad_request: status must be one of \(RunStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }
}

/// Reads `--input`: a JSON object.
func inputObject(_ text: String) throws -> [String: JSONValue] {
    guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)), case .object(let object) = value else {
        throw ValidationError("--input must be a JSON object, like '{\"ticket\": \"My invoice is wrong\"}'")
    }
    return object
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
        let object = try inputObject(input)
        let api = client.client()
        var headers: [(String, String)] = []
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        let response = try await api.send(.POST, APIPath.v1("workflows", workflow, "runs"), body: APIStartRunRequest(input: object), headers: headers)
        guard let run = try? response.decode(APIRunEnvelope.self).run else { throw CLIError("the server answered without a run") }
        guard watch else {
            if client.output == .json { Print.json(response.body) } else { print("run \(run.id) \(run.status)") }
            return
        }
        try await Watch.follow(run: run.id, api: api, output: client.output, stream: stream)
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
            if type == RunEventType.modelDelta.rawValue {
                live.delta(event)
            } else {
                live.event(type, step: event["step"]?.stringValue, line: Print.progress(type, event))
            }
        }
        live.end()
        let response = try await api.send(.GET, APIPath.v1("runs", id))
        let run = try response.decode(APIRunEnvelope.self).run
        if output == .json {
            Print.json(response.body)
        } else {
            print("")
            Print.run(run)
        }
        guard run.status == .succeeded else { throw ExitCode(1) }
    }
}

struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, inspect, follow, cancel and signal runs.",
        subcommands: [List.self, Show.self, Events.self, Cancel.self, Signal.self, Feedback.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runs, newest first.")
        @Option(help: "Only runs with this status.", transform: RunStatus.parse) var status: RunStatus?
        @Option(help: "Only runs of this workflow.") var workflow: String?
        @Option(help: "At most this many runs.") var limit: Int = 20
        @Option(help: "The next_cursor of a previous page.") var cursor: String?
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let query = [("limit", String(limit)), ("status", status?.rawValue), ("workflow", workflow), ("cursor", cursor)]
            let response = try await client.client().send(.GET, APIPath.v1("runs", query: query))
            let page = try response.decode(APIRunList.self)
            if client.output == .json { return Print.json(response.body) }
            var table = Table(headers: ["ID", "WORKFLOW", "VERSION", "STATUS", "CREATED"])
            for run in page.runs {
                table.rows.append([run.id, run.workflow, String(run.version), run.status.rawValue, run.createdAt ?? ""])
            }
            print(table.render())
            if let next = page.nextCursor { print("\nmore: --cursor \(next)") }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a run with its steps and usage.")
        @Argument var id: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let api = client.client()
            let response = try await api.send(.GET, APIPath.v1("runs", id))
            let run = try response.decode(APIRunEnvelope.self).run
            if client.output == .json { return Print.json(response.body) }
            Print.run(run, calls: try await api.usage(run: id))
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
                    if type == RunEventType.modelDelta.rawValue {
                        // Not a stored event: no seq or time, and the delta as its data.
                        print(JSONValue.object(["type": .string(type), "step": event["step"] ?? .null, "data": event]).compactJSON)
                    } else {
                        print(event.compactJSON)
                    }
                } else if type == RunEventType.modelDelta.rawValue {
                    live.delta(event)
                } else {
                    live.event(type, step: event["step"]?.stringValue, line: Print.eventLine(type, event))
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
            let response = try await client.client().send(.POST, APIPath.v1("runs", id, "cancel"))
            let result = try response.decode(APICancelResult.self)
            if client.output == .json { return Print.json(response.body) }
            print("run \(id) \(result.run.status)")
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
            let response = try await client.client().send(.POST, APIPath.v1("runs", id, "signals", name), body: APISignalRequest(data: value))
            let resumed = try response.decode(APISignalResult.self).resumedSteps
            if client.output == .json { return Print.json(response.body) }
            print("signal \(name) delivered" + (resumed.isEmpty ? "" : "; resumed \(resumed.joined(separator: ", "))"))
        }
    }

    struct Feedback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tell the gate whether a finished model step's answer was good (--good) or bad (--bad).")
        @Argument(help: "The run id.") var id: String
        @Argument(help: "The step id.") var step: String
        @Flag(help: "The step's answer was good.") var good = false
        @Flag(help: "The step's answer was bad.") var bad = false
        @OptionGroup var client: ClientOptions

        func validate() throws {
            if good && bad { throw ValidationError("give one verdict: --good or --bad, not both") }
            if !good && !bad { throw ValidationError("say whether the answer was good or bad: --good or --bad") }
        }

        func run() async throws {
            let response = try await client.client().send(
                .POST, APIPath.v1("runs", id, "steps", step, "feedback"), body: APIFeedbackRequest(good: good))
            let feedback = try response.decode(APIFeedbackResult.self).feedback
            if client.output == .json { return Print.json(response.body) }
            let learned = feedback.learned ? "the gate learned from it" : "the gate already knew this verdict"
            print("feedback on \(step): \(good ? "good" : "bad") (expert \(feedback.expert)); \(learned)")
        }
    }
}
