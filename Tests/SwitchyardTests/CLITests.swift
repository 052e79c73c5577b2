import Foundation
import SwitchyardCore
import Testing

/// The real `yard` binary against a live server, as a script or a person uses it.
@Suite("CLI: yard against a live server")
struct CLITests {
    /// Runs `yard` with the server's URL and the tenant's key (another key, or none), and the admin key when asked.
    static func yard(
        _ server: LiveServer, _ arguments: [String], key: String? = nil, withoutKey: Bool = false, admin: Bool = false
    ) async throws -> YardCLI.Result {
        try await YardCLI.run(
            arguments, url: server.url, apiKey: withoutKey ? nil : key ?? server.tenantKey, adminKey: admin ? server.adminKey : nil)
    }

    /// A fresh directory for files the test writes; removed by `remove`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("yard-cli-files-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ text: String, to name: String, in directory: URL) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func json(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n").map { String($0) }
    }

    @Test("yard apply -f, then yard run --watch, exits 0 with live step progress and `run succeeded`")
    func applyAndWatch() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withLiveServer(script: APIFixture.script) { server in
            let file = try Self.write(APIFixture.greet, to: "greet.yaml", in: directory)
            let applied = try await Self.yard(server, ["apply", "-f", file])
            #expect(applied.status == 0, "\(applied)")
            #expect(applied.stdout.contains("KIND"), "\(applied)")
            let row = Self.lines(applied.stdout).first { $0.hasPrefix("Workflow") }
            #expect(row?.split(separator: " ", omittingEmptySubsequences: true) == ["Workflow", "greet", "1", "yes"], "\(applied)")
            let again = try await Self.yard(server, ["apply", "-f", file, "--output", "json"])
            #expect(again.status == 0, "\(again)")
            #expect(try Self.json(again.stdout) == ["applied": [["kind": "Workflow", "name": "greet", "version": 1, "changed": false]]])

            let watched = try await Self.yard(server, ["run", "greet", "--input", #"{"name": "Ada"}"#, "--watch"])
            #expect(watched.status == 0, "\(watched)")
            let out = Self.lines(watched.stdout)
            let progress = ["run created", "▶ hello started (attempt 1)", "✔ hello succeeded", "▶ shout started", "✔ shout succeeded", "run succeeded"]
            var position = 0
            for expected in progress {
                guard let found = out[position...].firstIndex(where: { $0.contains(expected) }) else {
                    Issue.record("no `\(expected)` after line \(position) in:\n\(watched.stdout)")
                    break
                }
                position = found + 1
            }
            #expect(out.contains { $0.contains("· hello: flash") && $0.contains("12+3 tokens") }, "\(watched)")
            // Then the run as `yard runs show` prints it.
            #expect(out.contains { $0.hasPrefix("Run ") && $0.contains("greet v1") && $0.hasSuffix("succeeded") }, "\(watched)")
            #expect(watched.stdout.contains("usage: 1 model calls, 12 prompt tokens, 3 completion tokens"), "\(watched)")
            #expect(watched.stdout.contains("HELLO, ADA!"), "\(watched)")
            #expect(watched.stderr.isEmpty, "\(watched)")
        }
    }

    @Test("yard run --watch of a run whose step fails exits non-zero and says why")
    func watchFailure() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withLiveServer(script: APIFixture.script) { server in
            let applied = try await Self.yard(server, ["apply", "-f", try Self.write(APIFixture.broken, to: "broken.yaml", in: directory)])
            #expect(applied.status == 0, "\(applied)")
            let watched = try await Self.yard(server, ["run", "broken", "--watch"])
            #expect(watched.status != 0, "\(watched)")
            #expect(watched.stdout.contains("✘ explode failed"), "\(watched)")
            #expect(watched.stdout.contains("run failed"), "\(watched)")
            #expect(!watched.stdout.contains("run succeeded"), "\(watched)")
            // The same with JSON output: the final run, then the same exit status.
            let json = try await Self.yard(server, ["run", "broken", "--watch", "--output", "json"])
            #expect(json.status != 0, "\(json)")
            #expect(try Self.json(json.stdout)["run"]?["status"] == "failed", "\(json)")
        }
    }

    @Test("yard runs list --output json prints the documented list, and pages with --limit and --cursor")
    func runsListJSON() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            var ids: [String] = []
            for name in ["Ada", "Bob", "Cy"] {
                let reply = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": .string(name)]])
                ids.append(try #require(reply.json["run"]?["id"]?.stringValue))
            }
            let listed = try await Self.yard(server, ["runs", "list", "--output", "json"])
            #expect(listed.status == 0, "\(listed)")
            let body = try Self.json(listed.stdout)
            #expect(APIFixture.keys(body) == ["runs", "next_cursor"])
            #expect(body["next_cursor"] == .null)
            let runs = try #require(body["runs"]?.arrayValue)
            #expect(runs.compactMap { $0["id"]?.stringValue } == ids.reversed())
            for run in runs {
                #expect(APIFixture.keys(run) == ["id", "workflow", "version", "status", "input", "output", "error", "created_at", "started_at", "finished_at"])
                #expect(run["status"] == "succeeded")
                #expect(run["workflow"] == "greet")
            }

            let first = try Self.json(try await Self.yard(server, ["runs", "list", "--limit", "2", "--output", "json"]).stdout)
            let cursor = try #require(first["next_cursor"]?.stringValue)
            let rest = try await Self.yard(server, ["runs", "list", "--limit", "2", "--cursor", cursor, "--output", "json"])
            #expect(rest.status == 0, "\(rest)")
            let pages = (first["runs"]?.arrayValue ?? []) + (try Self.json(rest.stdout)["runs"]?.arrayValue ?? [])
            #expect(pages.compactMap { $0["id"]?.stringValue } == ids.reversed())

            let table = try await Self.yard(server, ["runs", "list", "--status", "succeeded"])
            #expect(table.status == 0)
            #expect(Self.lines(table.stdout).first?.hasPrefix("ID") == true, "\(table)")
            for id in ids { #expect(table.stdout.contains(id)) }
            let bad = try await Self.yard(server, ["runs", "list", "--status", "done"])
            #expect(bad.status != 0, "\(bad)")
            #expect(bad.stderr.contains("bad_request"), "\(bad)")
        }
    }

    @Test("yard runs show ID --output json prints the run with its steps and usage; an unknown id exits non-zero")
    func runsShowJSON() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let reply = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            let id = try #require(reply.json["run"]?["id"]?.stringValue)
            let shown = try await Self.yard(server, ["runs", "show", id, "--output", "json"])
            #expect(shown.status == 0, "\(shown)")
            let body = try Self.json(shown.stdout)
            #expect(APIFixture.keys(body) == ["run"])
            let run = try #require(body["run"])
            #expect(APIFixture.keys(run) == APIRunTests.runKeys)
            #expect(run == reply.json["run"])
            #expect(run["steps"]?.arrayValue?.map { $0["id"] } == ["hello", "shout"])
            #expect(run["usage"] == ["calls": 1, "prompt_tokens": 12, "completion_tokens": 3])

            let table = try await Self.yard(server, ["runs", "show", id])
            #expect(table.status == 0)
            #expect(table.stdout.contains("Run \(id)"), "\(table)")
            #expect(Self.lines(table.stdout).contains { $0.hasPrefix("hello") && $0.contains("succeeded") && $0.contains("flash") }, "\(table)")

            let missing = try await Self.yard(server, ["runs", "show", UUID().uuidString.lowercased()])
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("not_found"), "\(missing)")
        }
    }

    @Test("yard tenants create NAME --output json with the admin key prints the tenant and a working key; without it, exits non-zero")
    func tenantsCreate() async throws {
        try await withLiveServer { server in
            let created = try await Self.yard(server, ["tenants", "create", "acme", "--output", "json"], withoutKey: true, admin: true)
            #expect(created.status == 0, "\(created)")
            let body = try Self.json(created.stdout)
            #expect(APIFixture.keys(body) == ["tenant", "api_key"])
            #expect(body["tenant"]?["name"] == "acme")
            #expect(APIFixture.isLowercaseUUID(body["tenant"]?["id"]))
            let key = try #require(body["api_key"]?.stringValue)
            #expect(try await server.request(.GET, "/v1/runs", key: key).status == 200)

            // The flag works as well as the environment.
            let flagged = try await YardCLI.run(["tenants", "create", "globex", "--admin-key", server.adminKey], url: server.url)
            #expect(flagged.status == 0, "\(flagged)")
            #expect(flagged.stdout.contains("api key (shown once): sy_"), "\(flagged)")
            let listed = try await Self.yard(server, ["tenants", "list", "--output", "json"], withoutKey: true, admin: true)
            let names = try Self.json(listed.stdout)["tenants"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(Set(names).isSuperset(of: ["acme", "globex"]))

            let duplicate = try await Self.yard(server, ["tenants", "create", "acme"], withoutKey: true, admin: true)
            #expect(duplicate.status != 0, "\(duplicate)")
            #expect(duplicate.stderr.contains("conflict"), "\(duplicate)")
            let noAdmin = try await Self.yard(server, ["tenants", "create", "initech", "--admin-key", server.tenantKey])
            #expect(noAdmin.status != 0, "\(noAdmin)")
            #expect(noAdmin.stderr.contains("forbidden"), "\(noAdmin)")
            let noKey = try await Self.yard(server, ["tenants", "create", "initech"], withoutKey: true)
            #expect(noKey.status != 0, "\(noKey)")
            #expect(noKey.stderr.contains("unauthorized"), "\(noKey)")
        }
    }

    @Test("yard apply of an invalid file exits non-zero and prints file:line:column of the problem")
    func applyInvalid() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withLiveServer { server in
            let path = try Self.write(
                """
                kind: Workflow
                name: bad
                steps:
                  - id: a
                    transform: "ok"
                  - id: b
                    needs: [nope]
                    transform: "ok"
                """, to: "bad.yaml", in: directory)
            let result = try await Self.yard(server, ["apply", "-f", path])
            #expect(result.status != 0, "\(result)")
            #expect(result.stderr.contains("invalid_resource"), "\(result)")
            #expect((result.stdout + result.stderr).contains("\(path):7:13"), "\(result)")
            let yaml = try Self.write("kind: Workflow\nname: [oops\n", to: "broken.yaml", in: directory)
            let broken = try await Self.yard(server, ["apply", "-f", yaml])
            #expect(broken.status != 0, "\(broken)")
            #expect(broken.stderr.contains("invalid_yaml"), "\(broken)")
            #expect((broken.stdout + broken.stderr).contains("\(yaml):"), "\(broken)")
            let missing = try await Self.yard(server, ["apply", "-f", directory.appendingPathComponent("nope.yaml").path])
            #expect(missing.status != 0, "\(missing)")
            #expect(try await server.request(.GET, "/v1/workflows", key: server.tenantKey).json == ["workflows": []])
        }
    }

    @Test("yard apply -f of a named file without a `kind:` line exits non-zero rather than skipping it")
    func applyNamedFileWithoutKind() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withLiveServer { server in
            // A typo (`Kind:`) is invalid YAML for Switchyard: the server would say so with file:line:column.
            let path = try Self.write(APIFixture.greet.replacingOccurrences(of: "kind: Workflow", with: "Kind: Workflow"), to: "typo.yaml", in: directory)
            let result = try await Self.yard(server, ["apply", "-f", path])
            #expect(result.status != 0, "a script cannot tell that nothing was applied:\n\(result)")
            #expect((result.stdout + result.stderr).contains("\(path):1:1"), "\(result)")
        }
    }

    @Test("yard apply -f DIR applies every resource file in it and skips other YAML")
    func applyDirectory() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withLiveServer { server in
            _ = try Self.write(APIFixture.greet, to: "a-greet.yaml", in: directory)
            _ = try Self.write(APIFixture.approval, to: "b-approval.yml", in: directory)
            _ = try Self.write(APIFixture.script, to: "script.yaml", in: directory)
            _ = try Self.write("not yaml at all", to: "notes.txt", in: directory)
            let result = try await Self.yard(server, ["apply", "-f", directory.path])
            #expect(result.status == 0, "\(result)")
            #expect(result.stderr.contains("skipped \(directory.path)/script.yaml"), "\(result)")
            let rows = Self.lines(result.stdout).filter { $0.hasPrefix("Workflow") }.map { $0.split(separator: " ").map(String.init) }
            #expect(rows == [["Workflow", "greet", "1", "yes"], ["Workflow", "approval", "1", "yes"]], "\(result)")
            let list = try await Self.yard(server, ["workflows", "list", "--output", "json"])
            #expect(Set(try Self.json(list.stdout)["workflows"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []) == ["greet", "approval"])
            let shown = try await Self.yard(server, ["workflows", "show", "greet"])
            #expect(shown.stdout.contains(APIFixture.greet), "\(shown)")
        }
    }

    @Test("yard apply -f DIR resolves references between its files, whatever their names' order")
    func applyDirectoryReferences() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await withLiveServer { server in
            // `a-flow.yaml` sorts before the agent it uses.
            _ = try Self.write(
                """
                kind: Workflow
                name: helped
                steps:
                  - id: ask
                    agent: helper
                    prompt: "help me"
                """, to: "a-flow.yaml", in: directory)
            _ = try Self.write(
                """
                kind: Agent
                name: helper
                instructions: You help.
                model: flash
                """, to: "b-agent.yaml", in: directory)
            let result = try await Self.yard(server, ["apply", "-f", directory.path, "--output", "json"])
            #expect(result.status == 0, "\(result)")
            let applied = (try? Self.json(result.stdout))?["applied"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(Set(applied) == ["helped", "helper"], "\(result)")
            #expect(try await server.request(.GET, "/v1/workflows/helped", key: server.tenantKey).status == 200)
        }
    }

    @Test("yard run, runs signal, runs events and runs cancel drive a run from a script")
    func runSignalEvents() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let started = try await Self.yard(server, ["run", "approval", "--output", "json"])
            #expect(started.status == 0, "\(started)")
            let id = try #require(try Self.json(started.stdout)["run"]?["id"]?.stringValue)
            let plain = try await Self.yard(server, ["run", "approval"])
            let words = plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
            #expect(words.count == 3 && words[0] == "run" && UUID(uuidString: String(words[1])) != nil, "\(plain)")
            let other = String(words[1])

            _ = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            let signalled = try await Self.yard(server, ["runs", "signal", id, "approval", "--data", #"{"ok": true}"#])
            #expect(signalled.status == 0, "\(signalled)")
            #expect(signalled.stdout.contains("signal approval delivered; resumed approve"), "\(signalled)")
            let again = try await Self.yard(server, ["runs", "signal", id, "approval", "--data", "1"])
            #expect(again.status != 0)
            #expect(again.stderr.contains("signal_exists") || again.stderr.contains("run_finished"), "\(again)")

            let events = try await Self.yard(server, ["runs", "events", id, "--output", "json"])
            #expect(events.status == 0, "\(events)")
            let parsed = try Self.lines(events.stdout).map { try Self.json($0) }
            #expect(parsed.map { $0["seq"] } == (1...parsed.count).map { .int($0) })
            #expect(parsed.first?["type"] == "run.created")
            #expect(parsed.last?["type"] == "run.succeeded")
            #expect(parsed.last?["data"]?["output"] == ["decision": ["ok": true]])
            let after = try await Self.yard(server, ["runs", "events", id, "--after", "2", "--output", "json"])
            #expect(try Self.lines(after.stdout).map { try Self.json($0) } == Array(parsed.dropFirst(2)))

            let cancelled = try await Self.yard(server, ["runs", "cancel", other])
            #expect(cancelled.status == 0, "\(cancelled)")
            #expect(cancelled.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "run \(other) cancelled", "\(cancelled)")
        }
    }

    @Test("yard runs events passes long non-ASCII data through intact")
    func eventsUnicode() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let name = String(repeating: "Zoë 🚂 ", count: 20_000)
            let reply = try await server.request(.POST, "/v1/workflows/greet/runs?wait=20", key: server.tenantKey, json: ["input": ["name": .string(name)]])
            #expect(reply.json["run"]?["status"] == "succeeded")
            let id = try #require(reply.json["run"]?["id"]?.stringValue)
            let events = try await Self.yard(server, ["runs", "events", id, "--output", "json"])
            #expect(events.status == 0)
            let created = try Self.json(try #require(Self.lines(events.stdout).first))
            let seen = created["data"]?["input"]?["name"]?.stringValue ?? ""
            let replaced = seen.unicodeScalars.filter { $0 == "\u{FFFD}" }.count
            #expect(replaced == 0, "the CLI turned \(replaced) characters into U+FFFD")
            #expect(seen.count == name.count, "the CLI's copy has \(seen.count) characters, not \(name.count)")
            let same = seen == name
            #expect(same, "the CLI's copy differs from the input")
        }
    }

    @Test("yard exits non-zero at once, with a clear message, when no server listens at YARD_URL")
    func unreachable() async throws {
        // Port 1 refuses connections at once; a script must not hang for minutes on that.
        let started = ContinuousClock.now
        let result = try await YardCLI.run(["runs", "list"], url: "http://127.0.0.1:1", apiKey: "sy_x", timeout: .seconds(15))
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("cannot reach the Switchyard server at http://127.0.0.1:1"), "\(result)")
    }

    @Test("yard exits non-zero with the server's error code for a wrong key, and refuses input that is not a JSON object")
    func clientErrors() async throws {
        try await withLiveServer { server in
            let wrong = try await Self.yard(server, ["runs", "list"], key: "sy_not_a_key")
            #expect(wrong.status != 0, "\(wrong)")
            #expect(wrong.stderr.contains("unauthorized"), "\(wrong)")
            let badInput = try await Self.yard(server, ["run", "greet", "--input", "[1]"])
            #expect(badInput.status != 0, "\(badInput)")
            #expect(badInput.stderr.contains("--input must be a JSON object"), "\(badInput)")
        }
    }
}
