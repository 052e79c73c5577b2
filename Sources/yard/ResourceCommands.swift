import ArgumentParser
import Foundation
import NIOHTTP1
import SwitchyardAPI
import SwitchyardCore

// `yard apply`, `yard workflows`, `yard tools`: the tenant's resources.

struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply workflows, agents and tools from a YAML file or a directory of them.")

    @Option(name: .shortAndLong, help: "A YAML file, or a directory whose .yaml/.yml files are applied.")
    var file: String

    @OptionGroup var client: ClientOptions

    func run() async throws {
        let api = client.client()
        var files: [APIApplyRequest.File] = []
        for path in try ResourceFiles.list(file) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError("cannot read \(path)") }
            // In a directory, other YAML (a scripted expert's rules) is skipped; a file
            // named on its own is always sent, so its mistakes are reported.
            if path != file && !ResourceFiles.declaresResources(text) {
                FileHandle.standardError.write(Data("skipped \(path): no `kind:` documents (not a Switchyard resource file)\n".utf8))
                continue
            }
            files.append(.init(name: path, content: text))
        }
        guard !files.isEmpty else { throw CLIError("no resource files in \(file)") }
        // One request, applied all or nothing: files may refer to each other.
        let response = try await api.send(.POST, "/v1/apply", body: APIApplyRequest(files: files))
        let applied = try response.decode(APIApplyResult.self).applied
        if client.output == .json { return Print.json(response.body) }
        var table = Table(headers: ["KIND", "NAME", "VERSION", "CHANGED"])
        for item in applied {
            table.rows.append([item.kind, item.name, String(item.version), item.changed ? "yes" : "no"])
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

struct Workflows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List workflows or show one.", subcommands: [List.self, Show.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the latest version of each workflow.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client().send(.GET, APIPath.v1("workflows"))
            let workflows = try response.decode(APIWorkflowList.self).workflows
            if client.output == .json { return Print.json(response.body) }
            var table = Table(headers: ["NAME", "VERSION", "STEPS", "DESCRIPTION"])
            for w in workflows {
                table.rows.append([w.name, String(w.version), String(w.steps ?? 0), Print.brief(w.description)])
            }
            print(table.render())
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a workflow's YAML source.")
        @Argument var name: String
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client().send(.GET, APIPath.v1("workflows", name))
            let workflow = try response.decode(APIWorkflowEnvelope.self).workflow
            if client.output == .json { return Print.json(response.body) }
            print("# \(name) v\(workflow.version)")
            print(workflow.source ?? "")
        }
    }
}

struct Tools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the tools agents and tool steps can use.", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tenant's tools and the built-in ones.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            let response = try await client.client().send(.GET, APIPath.v1("tools"))
            let tools = try response.decode(APIToolList.self).tools
            if client.output == .json { return Print.json(response.body) }
            var table = Table(headers: ["NAME", "VERSION", "DESCRIPTION"])
            for tool in tools {
                let version = tool.builtin ? "built-in" : tool.version.map(String.init) ?? "-"
                table.rows.append([tool.name, version, Print.brief(tool.description, limit: 80)])
            }
            print(table.render())
        }
    }
}
