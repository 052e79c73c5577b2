import Foundation
import NIOHTTP1
import SwitchyardCore
import SwitchyardStore
import SwitchyardTools
import Testing

/// The real `yard` binary against a live server, as a script or a person uses it.
@Suite("CLI: yard against a live server")
struct CLITests {
    /// Runs `yard` with the server's URL and the tenant's key (another key, or none), and the admin key when asked.
    static func yard(
        _ server: LiveServer, _ arguments: [String], key: String? = nil, withoutKey: Bool = false, admin: Bool = false,
        stdin: String? = nil, during: (@Sendable (YardCLI.Running) async throws -> Void)? = nil
    ) async throws -> YardCLI.Result {
        try await YardCLI.run(
            arguments, url: server.url, apiKey: withoutKey ? nil : key ?? server.tenantKey, adminKey: admin ? server.adminKey : nil,
            stdin: stdin, during: during)
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
            let progress = [
                "run created", "▶ hello started (attempt 1)", "✔ hello succeeded", "▶ shout started", "✔ shout succeeded", "run succeeded",
            ]
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
                let reply = try await server.request(
                    .POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": .string(name)]])
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
                #expect(
                    APIFixture.keys(run) == [
                        "id", "workflow", "version", "status", "input", "output", "error", "created_at", "started_at", "finished_at",
                    ])
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
            #expect(
                run["usage"] == ["calls": 1, "prompt_tokens": 12, "completion_tokens": 3, "cost_usd": "0", "unpriced_calls": 1, "estimated_calls": 0])

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
            let path = try Self.write(
                APIFixture.greet.replacingOccurrences(of: "kind: Workflow", with: "Kind: Workflow"), to: "typo.yaml", in: directory)
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
            let reply = try await server.request(
                .POST, "/v1/workflows/greet/runs?wait=20", key: server.tenantKey, json: ["input": ["name": .string(name)]])
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

    // MARK: - Routes, feedback, live text, secrets, tenant settings, tools

    static let routedScript = """
        - match: Capital
          expert: flash
          reply: Lyon
        - match: Capital
          expert: pro
          reply: Paris
        - match: Summarise
          reply: all good
        """

    static let routed = """
        kind: Workflow
        name: routed
        steps:
          - { id: hard, model: auto, difficulty: hard, prompt: "Summarise the ticket." }
          - id: capital
            model: cascade
            prompt: Capital of France?
            check: "{{ output == 'Paris' }}"
          - { id: shape, needs: [hard], transform: "{{ steps.hard.output | upper }}" }
        """

    @Test("yard runs show prints each model step's route and its reasons; yard runs feedback records a verdict that show then displays")
    func runsShowRoutesAndFeedback() async throws {
        try await withLiveServer(script: Self.routedScript) { server in
            try await APIFixture.apply(server, Self.routed)
            // The lowest threshold sends every auto step to pro.
            let tenant = server.store.tenant.id.uuidString.lowercased()
            _ = try await server.request(.PUT, "/v1/admin/tenants/\(tenant)/gate", key: server.adminKey, json: ["threshold": -1])
            let reply = try await server.request(.POST, "/v1/workflows/routed/runs?wait=10", key: server.tenantKey, json: ["input": [:]])
            #expect(reply.json["run"]?["status"] == "succeeded", "\(reply.text)")
            let id = try #require(reply.json["run"]?["id"]?.stringValue)

            let shown = try await Self.yard(server, ["runs", "show", id])
            #expect(shown.status == 0, "\(shown)")
            let out = Self.lines(shown.stdout)
            #expect(out.contains { $0.hasPrefix("STEP") && $0.contains("ROUTE") }, "\(shown)")
            #expect(out.contains { $0.hasPrefix("hard ") && $0.contains("auto→pro (score ") && $0.contains(" ≥ -1.00)") }, "\(shown)")
            #expect(out.contains { $0.hasPrefix("capital ") && $0.contains("cascade→pro (escalated)") }, "\(shown)")
            #expect(out.contains { $0.hasPrefix("shape ") && !$0.contains("→") }, "\(shown)")
            // Below the table: each routed step's reasons, indented under it.
            let routes = try #require(out.firstIndex(of: "routes:"), "\(shown)")
            let hard = try #require(out[routes...].firstIndex { $0.hasPrefix("  hard: auto→pro") }, "\(shown)")
            let hardReasons = out[(hard + 1)...].prefix { $0.hasPrefix("      ") }
            #expect(hardReasons.contains { $0.contains("declared difficulty: hard") }, "\(shown)")
            let capital = try #require(out[routes...].firstIndex { $0.hasPrefix("  capital: cascade→pro (escalated)") }, "\(shown)")
            #expect(out[(capital + 1)...].prefix { $0.hasPrefix("      ") }.count >= 1, "\(shown)")
            #expect(!shown.stdout.contains("feedback:"), "\(shown)")

            let bad = try await Self.yard(server, ["runs", "feedback", id, "hard", "--bad"])
            #expect(bad.status == 0, "\(bad)")
            #expect(
                bad.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "feedback on hard: bad (expert pro); the gate learned from it", "\(bad)"
            )
            let again = try await Self.yard(server, ["runs", "feedback", id, "hard", "--bad", "--output", "json"])
            #expect(again.status == 0, "\(again)")
            #expect(
                try Self.json(again.stdout) == ["feedback": ["run": .string(id), "step": "hard", "good": false, "expert": "pro", "learned": false]])
            let both = try await Self.yard(server, ["runs", "feedback", id, "hard", "--good", "--bad"])
            #expect(both.status != 0 && both.stderr.contains("--good or --bad, not both"), "\(both)")
            let neither = try await Self.yard(server, ["runs", "feedback", id, "hard"])
            #expect(neither.status != 0 && neither.stderr.contains("--good or --bad"), "\(neither)")
            let transform = try await Self.yard(server, ["runs", "feedback", id, "shape", "--good"])
            #expect(transform.status != 0 && transform.stderr.contains("not_a_model_step"), "\(transform)")

            let after = try await Self.yard(server, ["runs", "show", id])
            #expect(Self.lines(after.stdout).contains { $0.hasPrefix("  hard: auto→pro") && $0.hasSuffix("; feedback: bad") }, "\(after)")
            // JSON output is the API's body, unchanged.
            let json = try await Self.yard(server, ["runs", "show", id, "--output", "json"])
            #expect(try Self.json(json.stdout) == (try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)).json)
        }
    }

    static let poemScript = "- match: poem\n  reply: roses are red and queues are fair"

    static let poem = """
        kind: Workflow
        name: poem
        steps:
          - { id: go, wait_for: go }
          - { id: write, needs: [go], model: flash, prompt: Write a poem. }
          - { id: add, needs: [write], tool: calculator, with: { expression: "2 + 3" } }
        """

    /// The text of the live lines `[step] …` in `output`, joined.
    static func streamedText(_ output: String, step: String, indent: String) -> String {
        lines(output).filter { $0.hasPrefix("\(indent)[\(step)] ") }.map { String($0.dropFirst(indent.count + step.count + 3)) }.joined()
    }

    @Test("yard run --watch --stream prints a model step's text as it streams, between progress lines, and exits 0")
    func watchStream() async throws {
        try await withLiveServer(script: Self.poemScript) { server in
            try await APIFixture.apply(server, Self.poem)
            let watched = try await Self.yard(server, ["run", "poem", "--watch", "--stream"]) { running in
                // The first progress line comes through the event stream, so the CLI is
                // following (with deltas) by then: only now let the model step start.
                try await running.waitForOutput("run created")
                let id = try #require(Self.lines(running.stdout).first?.split(separator: " ").last.map(String.init))
                let signalled = try await server.request(.POST, "/v1/runs/\(id)/signals/go", key: server.tenantKey, json: [:])
                #expect(signalled.status == 202, "\(signalled.text)")
            }
            #expect(watched.status == 0, "\(watched)")
            #expect(Self.streamedText(watched.stdout, step: "write", indent: "    ") == "roses are red and queues are fair", "\(watched)")
            let out = Self.lines(watched.stdout)
            #expect(out.contains("    ⇢ write: fixed→flash"), "\(watched)")
            #expect(out.contains { $0.hasPrefix("    ⚒ add: calculator ok, ") && $0.hasSuffix(" ms") }, "\(watched)")
            // Progress lines keep lines of their own.
            #expect(out.contains("  ✔ write succeeded"), "\(watched)")
            #expect(out.contains("run succeeded"), "\(watched)")
            // The text comes after the step's route, though deltas outrun the stored events.
            let routed = try #require(out.firstIndex(of: "    ⇢ write: fixed→flash"))
            let live = try #require(out.firstIndex { $0.hasPrefix("    [write] ") })
            let done = try #require(out.firstIndex(of: "  ✔ write succeeded"))
            #expect(routed < live && live < done, "\(watched)")
            #expect(watched.stderr.isEmpty, "\(watched)")

            // Without --watch, --stream is refused.
            let lone = try await Self.yard(server, ["run", "poem", "--stream"])
            #expect(lone.status != 0 && lone.stderr.contains("--watch"), "\(lone)")
        }
    }

    @Test("yard runs events --stream adds the live text; with --output json, model.delta lines without seq that leave the stored events intact")
    func eventsStream() async throws {
        try await withLiveServer(script: Self.poemScript) { server in
            try await APIFixture.apply(server, Self.poem)
            let table = try await APIFixture.start(server, "poem")
            let followed = try await Self.yard(server, ["runs", "events", table, "--stream"]) { running in
                try await running.waitForOutput("run.created")
                _ = try await server.request(.POST, "/v1/runs/\(table)/signals/go", key: server.tenantKey, json: [:])
            }
            #expect(followed.status == 0, "\(followed)")
            #expect(Self.streamedText(followed.stdout, step: "write", indent: "") == "roses are red and queues are fair", "\(followed)")
            #expect(Self.lines(followed.stdout).last?.contains("run.succeeded") == true, "\(followed)")

            let json = try await APIFixture.start(server, "poem")
            let streamed = try await Self.yard(server, ["runs", "events", json, "--stream", "--output", "json"]) { running in
                try await running.waitForOutput("run.created")
                _ = try await server.request(.POST, "/v1/runs/\(json)/signals/go", key: server.tenantKey, json: [:])
            }
            #expect(streamed.status == 0, "\(streamed)")
            let parsed = try Self.lines(streamed.stdout).map { try Self.json($0) }
            let deltas = parsed.filter { $0["type"] == "model.delta" }
            #expect(deltas.allSatisfy { $0["seq"] == nil && $0["step"] == "write" }, "\(streamed)")
            #expect(deltas.compactMap { $0["data"]?["text"]?.stringValue }.joined() == "roses are red and queues are fair", "\(streamed)")
            let stored = parsed.filter { $0["type"] != "model.delta" }
            #expect(stored.map { $0["seq"] } == (1...stored.count).map { .int($0) }, "\(streamed)")
            #expect(stored.last?["type"] == "run.succeeded")
        }
    }

    @Test("yard secrets set (from stdin or --value), list and delete never print a value")
    func secrets() async throws {
        try await withLiveServer { server in
            let value = "sk-live-9d2f7c1e"
            let set = try await Self.yard(server, ["secrets", "set", "KB_TOKEN", "--from-stdin"], stdin: value + "\n")
            #expect(set.status == 0, "\(set)")
            #expect(set.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "secret KB_TOKEN created", "\(set)")
            // Stored as given, less the one trailing newline.
            let sealed = try await SecretRepository(database: server.store.database).sealed(tenant: server.store.tenant.id, names: ["KB_TOKEN"])
            let opened = try SecretBox(current: testSecretKey).open(
                try #require(sealed["KB_TOKEN"]), tenant: server.store.tenant.id, name: "KB_TOKEN")
            #expect(opened == value)

            let replaced = try await Self.yard(server, ["secrets", "set", "KB_TOKEN", "--value", "sk-live-other", "--output", "json"])
            #expect(replaced.status == 0, "\(replaced)")
            #expect(try Self.json(replaced.stdout) == ["secret": ["name": "KB_TOKEN", "created": false]])
            let listed = try await Self.yard(server, ["secrets", "list"])
            #expect(listed.status == 0, "\(listed)")
            #expect(Self.lines(listed.stdout).first?.hasPrefix("NAME") == true, "\(listed)")
            #expect(Self.lines(listed.stdout).contains { $0.hasPrefix("KB_TOKEN ") }, "\(listed)")
            let json = try await Self.yard(server, ["secrets", "list", "--output", "json"])
            #expect(try Self.json(json.stdout)["secrets"]?.arrayValue?.map { $0["name"] } == ["KB_TOKEN"])

            let both = try await Self.yard(server, ["secrets", "set", "X", "--value", "v", "--from-stdin"], stdin: "v")
            #expect(both.status != 0 && both.stderr.contains("not both"), "\(both)")
            let neither = try await Self.yard(server, ["secrets", "set", "X"])
            #expect(neither.status != 0 && neither.stderr.contains("--from-stdin"), "\(neither)")
            let empty = try await Self.yard(server, ["secrets", "set", "X", "--from-stdin"], stdin: "\n")
            #expect(empty.status != 0 && empty.stderr.contains("empty"), "\(empty)")
            let badName = try await Self.yard(server, ["secrets", "set", "9lives", "--from-stdin"], stdin: "v")
            #expect(badName.status != 0 && badName.stderr.contains("bad_request"), "\(badName)")

            let deleted = try await Self.yard(server, ["secrets", "delete", "KB_TOKEN"])
            #expect(deleted.status == 0, "\(deleted)")
            #expect(deleted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "secret KB_TOKEN deleted")
            let missing = try await Self.yard(server, ["secrets", "delete", "KB_TOKEN"])
            #expect(missing.status != 0 && missing.stderr.contains("not_found"), "\(missing)")
            for result in [set, replaced, listed, json, both, neither, empty, badName, deleted, missing] {
                #expect(!(result.stdout + result.stderr).contains("sk-live"), "\(result)")
            }
        }
    }

    @Test("yard tenants gate and egress set a tenant's settings and tenants show reads them back; bad values exit non-zero")
    func tenantSettings() async throws {
        try await withLiveServer { server in
            let tenant = server.store.tenant.id.uuidString.lowercased()
            let fresh = try await Self.yard(server, ["tenants", "show", tenant], withoutKey: true, admin: true)
            #expect(fresh.status == 0, "\(fresh)")
            #expect(fresh.stdout.contains("gate threshold: server default"), "\(fresh)")
            #expect(fresh.stdout.contains("egress allow:   (none beyond the server's list)"), "\(fresh)")

            let gate = try await Self.yard(server, ["tenants", "gate", tenant, "--threshold", "-0.25"], withoutKey: true, admin: true)
            #expect(gate.status == 0, "\(gate)")
            #expect(gate.stdout.contains("gate threshold: -0.25"), "\(gate)")
            let egress = try await Self.yard(
                server, ["tenants", "egress", tenant, "--allow", "10.1.0.0/16,kb.internal", "--allow", "192.168.5.5"], withoutKey: true, admin: true)
            #expect(egress.status == 0, "\(egress)")
            let shown = try await Self.yard(server, ["tenants", "show", tenant, "--output", "json"], withoutKey: true, admin: true)
            let settings = try Self.json(shown.stdout)["tenant"]?["settings"]
            #expect(settings?["gate_threshold"] == -0.25)
            #expect(settings?["egress_allow"] == ["10.1.0.0/16", "kb.internal", "192.168.5.5"])
            let table = try await Self.yard(server, ["tenants", "show", tenant], withoutKey: true, admin: true)
            #expect(table.stdout.contains("tenant \(server.store.tenant.name) \(tenant)"), "\(table)")
            #expect(table.stdout.contains("egress allow:   10.1.0.0/16, kb.internal, 192.168.5.5"), "\(table)")

            let bad = try await Self.yard(server, ["tenants", "egress", tenant, "--allow", "10.0.0.0/99,ok.example"], withoutKey: true, admin: true)
            #expect(bad.status != 0 && bad.stderr.contains("invalid_request") && bad.stderr.contains("allow[0]"), "\(bad)")
            let tooHigh = try await Self.yard(server, ["tenants", "gate", tenant, "--threshold", "3"], withoutKey: true, admin: true)
            #expect(tooHigh.status != 0 && tooHigh.stderr.contains("invalid_request"), "\(tooHigh)")
            let both = try await Self.yard(server, ["tenants", "gate", tenant, "--threshold", "0.1", "--default"], withoutKey: true, admin: true)
            #expect(both.status != 0, "\(both)")
            let notAdmin = try await Self.yard(server, ["tenants", "gate", tenant, "--threshold", "0.1", "--admin-key", server.tenantKey])
            #expect(notAdmin.status != 0 && notAdmin.stderr.contains("forbidden"), "\(notAdmin)")
            let unchanged = try await Self.yard(server, ["tenants", "show", tenant, "--output", "json"], withoutKey: true, admin: true)
            #expect(unchanged.stdout == shown.stdout)

            let reset = try await Self.yard(server, ["tenants", "gate", tenant, "--default", "--output", "json"], withoutKey: true, admin: true)
            #expect(try Self.json(reset.stdout)["settings"]?["gate_threshold"] == .null, "\(reset)")
            let cleared = try await Self.yard(server, ["tenants", "egress", tenant, "--clear"], withoutKey: true, admin: true)
            #expect(cleared.status == 0 && cleared.stdout.contains("gate threshold: server default"), "\(cleared)")
            #expect(cleared.stdout.contains("(none beyond the server's list)"), "\(cleared)")
        }
    }

    @Test("yard tools list shows the tenant's tools with their versions and the built-in ones")
    func toolsList() async throws {
        try await withLiveServer { server in
            try await APIFixture.apply(
                server,
                "kind: Tool\nname: search_kb\ndescription: Search the knowledge base.\nhttp: { method: GET, url: \"https://kb.example/search\" }\n")
            let listed = try await Self.yard(server, ["tools", "list"])
            #expect(listed.status == 0, "\(listed)")
            let rows = Self.lines(listed.stdout).map { $0.split(separator: " ").map(String.init) }
            #expect(rows.first == ["NAME", "VERSION", "DESCRIPTION"], "\(listed)")
            #expect(rows.contains { $0.count >= 2 && $0[0] == "search_kb" && $0[1] == "1" }, "\(listed)")
            for builtin in ["http_get", "json_query", "current_time", "calculator"] {
                #expect(rows.contains { $0.count > 3 && $0[0] == builtin && $0[1] == "built-in" }, "\(listed)")
            }
            let json = try await Self.yard(server, ["tools", "list", "--output", "json"])
            #expect(try Self.json(json.stdout)["tools"]?.arrayValue?.count == 5, "\(json)")
        }
    }

    @Test("yard runs events resumes a stream that breaks off after the last stored event it saw; live deltas do not move that position")
    func eventsResume() async throws {
        try await BreakingEventServer.with { server in
            let result = try await YardCLI.run(
                ["runs", "events", "r1", "--stream", "--output", "json"], url: server.base, apiKey: "sy_x", timeout: .seconds(20))
            #expect(result.status == 0, "\(result)")
            let parsed = try Self.lines(result.stdout).map { try Self.json($0) }
            #expect(parsed.compactMap { $0["seq"]?.intValue } == [1, 2, 3, 4], "\(result)")
            #expect(parsed.filter { $0["type"] == "model.delta" }.count == 1, "\(result)")
            #expect(server.connections == [.init(lastEventID: nil, query: "deltas=1"), .init(lastEventID: "3", query: "deltas=1")])
            #expect(result.stderr.contains("resuming after event 3"), "\(result)")
        }
    }
}
