import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore

// `yard secrets …`: the tenant's secrets, by name; values go in and never come out.

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
            let response = try await client.client().send(.PUT, APIPath.v1("secrets", name), body: APIPutSecretRequest(value: secret))
            let created = try response.decode(APISecretPutResult.self).secret.created
            if client.output == .json { return Print.json(response.body) }
            print("secret \(name) \(created ? "created" : "replaced")")
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
            let response = try await client.client().send(.GET, APIPath.v1("secrets"))
            let secrets = try response.decode(APISecretList.self).secrets
            if client.output == .json { return Print.json(response.body) }
            var table = Table(headers: ["NAME", "UPDATED"])
            for secret in secrets {
                table.rows.append([secret.name, secret.updatedAt ?? ""])
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
