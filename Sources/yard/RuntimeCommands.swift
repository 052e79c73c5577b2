import ArgumentParser
import Foundation
import SwitchyardAPI
import SwitchyardCore

// MARK: - Feedback

extension Runs {
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
            let body = try await client.client().send(
                .POST, APIPath.v1("runs", id, "steps", step, "feedback"), json: ["good": .bool(good)]
            ).body
            if client.output == .json { return Print.json(body) }
            let feedback = body["feedback"] ?? .null
            let expert = feedback["expert"]?.stringValue ?? "?"
            let learned = feedback["learned"]?.boolValue == true
                ? "the gate learned from it" : "the gate already knew this verdict"
            print("feedback on \(step): \(good ? "good" : "bad") (expert \(expert)); \(learned)")
        }
    }
}

// MARK: - Secrets

struct Secrets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the tenant's secrets, read by tools as {{ secrets.NAME }}. Values are never shown.",
        subcommands: [SetValue.self, List.self, Delete.self])

    struct SetValue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create or replace a secret.",
            discussion: """
                Prefer --from-stdin, which keeps the value out of the shell's history and the process list:
                  printf %s "$TOKEN" | yard secrets set KB_TOKEN --from-stdin
                """)
        @Argument(help: "The secret's name: ASCII letters, digits and _, not starting with a digit.") var name: String
        @Option(help: "The value (visible in shell history and the process list; prefer --from-stdin).") var value: String?
        @Flag(name: .customLong("from-stdin"), help: "Read the value from standard input (one trailing newline is dropped).")
        var fromStdin = false
        @OptionGroup var client: ClientOptions

        func validate() throws {
            if value != nil && fromStdin { throw ValidationError("give the value once: either --value or --from-stdin, not both") }
            if value == nil && !fromStdin { throw ValidationError("give the value with --from-stdin (recommended) or --value") }
        }

        func run() async throws {
            let secret = try value ?? Self.readStandardInput()
            guard !secret.isEmpty else { throw CLIError("the secret value is empty; nothing was stored") }
            let response = try await client.client().send(.PUT, APIPath.v1("secrets", name), json: ["value": .string(secret)])
            if client.output == .json { return Print.json(response.body) }
            print("secret \(name) \(response.body["secret"]?["created"]?.boolValue == false ? "replaced" : "created")")
        }

        /// All of standard input as UTF-8, less one trailing newline (`\n` or `\r\n`).
        static func readStandardInput() throws -> String {
            if isatty(STDIN_FILENO) != 0 {
                FileHandle.standardError.write(Data("reading the value from standard input; end it with Ctrl-D (it is shown as you type)\n".utf8))
            }
            let data = FileHandle.standardInput.readDataToEndOfFile()
            guard var text = String(data: data, encoding: .utf8) else { throw CLIError("the secret value on standard input is not UTF-8 text") }
            if text.hasSuffix("\r\n") {
                text.removeLast(1)  // "\r\n" is one Character
            } else if text.hasSuffix("\n") {
                text.removeLast()
            }
            return text
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the names of the tenant's secrets (never their values).")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client().send(.GET, "/v1/secrets").body
            if client.output == .json { return Print.json(body) }
            var table = Table(headers: ["NAME", "UPDATED"])
            for secret in body["secrets"]?.arrayValue ?? [] {
                table.rows.append([secret["name"]?.stringValue ?? "", secret["updated_at"]?.stringValue ?? ""])
            }
            print(table.render())
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a secret.")
        @Argument var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            _ = try await client.client().send(.DELETE, APIPath.v1("secrets", name))
            // The API answers 204 without a body.
            if client.output == .json { return Print.json(["secret": ["name": .string(name)], "deleted": true]) }
            print("secret \(name) deleted")
        }
    }
}

// MARK: - Tenant settings

extension Tenants {
    /// Prints a tenant's settings as `yard tenants show` does.
    static func printSettings(_ settings: JSONValue) {
        let threshold = settings["gate_threshold"]?.doubleValue.map { Print.number($0) } ?? "server default"
        let allow = settings["egress_allow"]?.arrayValue?.compactMap(\.stringValue) ?? []
        print("gate threshold: \(threshold)")
        print("egress allow:   \(allow.isEmpty ? "(none beyond the server's list)" : allow.joined(separator: ", "))")
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a tenant and its settings (gate threshold, egress allow list).")
        @Argument(help: "The tenant id.") var tenant: String
        @OptionGroup var admin: AdminOptions
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client(admin: true, adminKey: admin.adminKey).send(.GET, APIPath.v1("admin", "tenants", tenant)).body
            if client.output == .json { return Print.json(body) }
            let found = body["tenant"] ?? .null
            print("tenant \(found["name"]?.stringValue ?? "") \(found["id"]?.stringValue ?? "")")
            Tenants.printSettings(found["settings"] ?? .null)
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
            let value: JSONValue = threshold.map(JSONValue.double) ?? .null
            let body = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "gate"), json: ["threshold": value]).body
            if client.output == .json { return Print.json(body) }
            Tenants.printSettings(body["settings"] ?? .null)
        }
    }

    struct Egress: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the hosts, IP addresses and CIDRs the tenant's tools may reach, on top of the server's list.",
            discussion: "Replaces the whole list: yard tenants egress TENANT --allow 10.0.0.0/8,kb.internal (or --allow repeated); --clear empties it.")
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
            if !clear && entries.isEmpty { throw ValidationError("give the entries with --allow a,b,c (the list is replaced), or --clear to empty it") }
        }

        func run() async throws {
            let body = try await client.client(admin: true, adminKey: admin.adminKey)
                .send(.PUT, APIPath.v1("admin", "tenants", tenant, "egress"), json: ["allow": .array(entries.map(JSONValue.string))]).body
            if client.output == .json { return Print.json(body) }
            Tenants.printSettings(body["settings"] ?? .null)
        }
    }
}

// MARK: - Tools

struct Tools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the tools agents and tool steps can use.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenant's tools and the built-in ones.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let body = try await client.client().send(.GET, "/v1/tools").body
            if client.output == .json { return Print.json(body) }
            var table = Table(headers: ["NAME", "VERSION", "DESCRIPTION"])
            for tool in body["tools"]?.arrayValue ?? [] {
                let version = tool["builtin"]?.boolValue == true ? "built-in" : tool["version"]?.intValue.map(String.init) ?? "-"
                table.rows.append([tool["name"]?.stringValue ?? "", version, Print.brief(tool["description"], limit: 80)])
            }
            print(table.render())
        }
    }
}
