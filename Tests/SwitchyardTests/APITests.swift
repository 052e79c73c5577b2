import Foundation
import NIOHTTP1
import PostgresNIO
import SwitchyardCore
import SwitchyardStore
import Testing

// MARK: - Fixtures shared by the API, tenant isolation and CLI tests

/// Workflows, expert scripts and small helpers for tests that speak HTTP to a live server.
enum APIFixture {
    /// A model step then a transform; `greeting` is the scripted reply.
    static let greet = """
        kind: Workflow
        name: greet
        description: Greets someone.
        inputs:
          name: { type: string, required: true }
          times: { type: integer, default: 1 }
        steps:
          - id: hello
            model: flash
            prompt: "Say hello to {{ inputs.name }}"
          - id: shout
            needs: [hello]
            transform: "{{ steps.hello.output | upper }}"
        outputs:
          greeting: "{{ steps.hello.output }}"
          loud: "{{ steps.shout.output }}"
        """

    /// One model step that takes 5 seconds: long enough to cancel it.
    static let slow = """
        kind: Workflow
        name: slow
        steps:
          - id: think
            model: flash
            prompt: "think slowly"
        outputs:
          answer: "{{ steps.think.output }}"
        """

    /// A transform, then a durable wait for the `approval` signal.
    static let approval = """
        kind: Workflow
        name: approval
        steps:
          - id: draft
            transform: "draft"
          - id: approve
            needs: [draft]
            wait_for: approval
        outputs:
          decision: "{{ steps.approve.output }}"
        """

    /// A model step whose expert always fails with a status that is not retried.
    static let broken = """
        kind: Workflow
        name: broken
        steps:
          - id: explode
            model: flash
            prompt: "please explode"
        """

    static let script = """
        - match: "Say hello to"
          reply: "Hello, Ada!"
          usage: { prompt_tokens: 12, completion_tokens: 3 }
          delay: 20ms
        - match: "think slowly"
          reply: "finally"
          delay: 5s
        - match: "please explode"
          fail: { status: 500, times: 99 }
        """

    /// The keys of a JSON object.
    static func keys(_ value: JSONValue?) -> Set<String> {
        Set(value?.objectValue?.keys ?? [:].keys)
    }

    /// `2025-01-31T12:00:00.123Z`: RFC 3339, UTC, milliseconds.
    static func isTimestamp(_ value: JSONValue?) -> Bool {
        guard let text = value?.stringValue else { return false }
        return text.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil
    }

    static func isLowercaseUUID(_ value: JSONValue?) -> Bool {
        guard let text = value?.stringValue, let uuid = UUID(uuidString: text) else { return false }
        return uuid.uuidString.lowercased() == text
    }

    /// Applies YAML with a key and requires 200.
    @discardableResult
    static func apply(_ server: LiveServer, _ yaml: String, key: String? = nil, file: String? = nil) async throws -> LiveServer.Reply {
        let reply = try await server.request(
            .POST, "/v1/apply", key: key ?? server.tenantKey, text: yaml, headers: file.map { [("X-Yard-File", $0)] } ?? [])
        try #require(reply.status == 200, "apply answered \(reply.status): \(reply.text)")
        return reply
    }

    /// Starts a run and returns its id (requires 202).
    static func start(
        _ server: LiveServer, _ workflow: String, input: JSONValue = [:], key: String? = nil
    ) async throws -> String {
        let reply = try await server.request(.POST, "/v1/workflows/\(workflow)/runs", key: key ?? server.tenantKey, json: ["input": input])
        try #require(reply.status == 202, "starting \(workflow) answered \(reply.status): \(reply.text)")
        return try #require(reply.json["run"]?["id"]?.stringValue)
    }

    /// Polls `GET /v1/runs/{id}` until `done` says so.
    static func poll(
        _ server: LiveServer, run id: String, key: String? = nil, timeout: Duration = .seconds(20),
        until done: (JSONValue) -> Bool = { ["succeeded", "failed", "cancelled"].contains($0["status"]?.stringValue ?? "") }
    ) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        var last: JSONValue = .null
        while ContinuousClock.now < deadline {
            let reply = try await server.request(.GET, "/v1/runs/\(id)", key: key ?? server.tenantKey)
            try #require(reply.status == 200, "GET run answered \(reply.status): \(reply.text)")
            last = reply.json["run"] ?? .null
            if done(last) { return last }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("run \(id) did not reach the expected state within \(timeout); last seen: \(last.compactJSON)")
    }

    /// Polls until the step has the given status.
    static func poll(_ server: LiveServer, run id: String, step: String, status: String, key: String? = nil) async throws -> JSONValue {
        try await poll(server, run: id, key: key) { run in
            run["steps"]?.arrayValue?.contains { $0["id"]?.stringValue == step && $0["status"]?.stringValue == status } == true
        }
    }

    /// One Server-Sent Event.
    struct Event: Equatable, Sendable {
        var id: String?
        var type: String?
        var data: String
        var json: JSONValue { (try? JSONDecoder().decode(JSONValue.self, from: Data(data.utf8))) ?? .null }
    }

    /// Parses a whole `text/event-stream` body.
    static func parseEvents(_ text: String) -> [Event] {
        var events: [Event] = []
        for block in text.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n") {
            var event = Event(id: nil, type: nil, data: "")
            var lines: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix(":") {
                let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                var value = parts.count > 1 ? String(parts[1]) : ""
                if value.hasPrefix(" ") { value.removeFirst() }
                switch parts[0] {
                case "id": event.id = value
                case "event": event.type = value
                case "data": lines.append(value)
                default: break
                }
            }
            event.data = lines.joined(separator: "\n")
            if event.id != nil || !lines.isEmpty { events.append(event) }
        }
        return events
    }

    /// Every error answer has exactly `{"error": {"code", "message"[, "details"]}}`.
    static func expectErrorShape(_ reply: LiveServer.Reply, status: Int, code: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(reply.status == status, "\(reply.text)", sourceLocation: sourceLocation)
        #expect(keys(reply.json) == ["error"], "\(reply.text)", sourceLocation: sourceLocation)
        #expect(keys(reply.json["error"]).isSubset(of: ["code", "message", "details"]), "\(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.errorCode == code, "\(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.json["error"]?["message"]?.stringValue?.isEmpty == false, "\(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
    }
}

// MARK: - Admin

@Suite("API: tenants and keys (admin)")
struct APIAdminTests {
    @Test("creating a tenant answers 201 with the tenant and a working API key, shown once")
    func createTenant() async throws {
        try await withLiveServer { server in
            let reply = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": "acme"])
            #expect(reply.status == 201)
            #expect(APIFixture.keys(reply.json) == ["tenant", "api_key"])
            #expect(APIFixture.keys(reply.json["tenant"]) == ["id", "name"])
            #expect(reply.json["tenant"]?["name"] == "acme")
            #expect(APIFixture.isLowercaseUUID(reply.json["tenant"]?["id"]))
            let key = try #require(reply.json["api_key"]?.stringValue)
            let hex = try #require(reply.json["tenant"]?["id"]?.stringValue).replacingOccurrences(of: "-", with: "")
            #expect(key.hasPrefix("sy_\(hex)_"))
            // The key works at once, and sees an empty tenant.
            let workflows = try await server.request(.GET, "/v1/workflows", key: key)
            #expect(workflows.status == 200)
            #expect(workflows.json == ["workflows": []])
        }
    }

    @Test("a duplicate tenant name answers 409 conflict and creates nothing")
    func duplicateName() async throws {
        try await withLiveServer { server in
            let first = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": "acme"])
            #expect(first.status == 201)
            let second = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": "acme"])
            APIFixture.expectErrorShape(second, status: 409, code: "conflict")
            let list = try await server.request(.GET, "/v1/admin/tenants", key: server.adminKey)
            let names = list.json["tenants"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            #expect(names.filter { $0 == "acme" }.count == 1)
        }
    }

    @Test("concurrent creates of one tenant name: exactly one 201, the others 409 conflict, never 500")
    func concurrentDuplicates() async throws {
        try await withLiveServer { server in
            let replies = try await withThrowingTaskGroup(of: LiveServer.Reply.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": "acme"]) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.map(\.status).sorted() == [201, 409, 409, 409, 409, 409], "\(replies.map(\.text))")
            for reply in replies where reply.status == 409 { APIFixture.expectErrorShape(reply, status: 409, code: "conflict") }
        }
    }

    @Test("invalid tenant names answer 422 invalid_request; a body that is not JSON answers 400 invalid_json")
    func badNames() async throws {
        try await withLiveServer { server in
            let bad: [JSONValue] = [
                ["name": ""], ["name": "Acme"], ["name": "-acme"], ["name": "_acme"], ["name": "ac me"], ["name": "acmé"],
                ["name": .string(String(repeating: "a", count: 64))], ["name": 42], ["name": nil], [:],
            ]
            for body in bad {
                let reply = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: body)
                APIFixture.expectErrorShape(reply, status: 422, code: "invalid_request")
            }
            // The longest name allowed is 63 characters.
            let longest = try await server.request(
                .POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": .string("a" + String(repeating: "-", count: 62))])
            #expect(longest.status == 201, "\(longest.text)")
            let notJSON = try await server.request(
                .POST, "/v1/admin/tenants", key: server.adminKey, text: "{name: acme", contentType: "application/json")
            APIFixture.expectErrorShape(notJSON, status: 400, code: "invalid_json")
            let notObject = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["acme"])
            APIFixture.expectErrorShape(notObject, status: 400, code: "invalid_json")
        }
    }

    @Test("admin routes: a tenant key answers 403; no key, a wrong key or a non-bearer header answers 401")
    func adminAuthentication() async throws {
        try await withLiveServer { server in
            let tenantID = server.store.tenant.id.uuidString.lowercased()
            let routes: [(HTTPMethod, String, JSONValue?)] = [
                (.POST, "/v1/admin/tenants", ["name": "sneaky"]),
                (.GET, "/v1/admin/tenants", nil),
                (.POST, "/v1/admin/tenants/\(tenantID)/keys", nil),
            ]
            for (method, path, body) in routes {
                APIFixture.expectErrorShape(try await server.request(method, path, key: server.tenantKey, json: body), status: 403, code: "forbidden")
                APIFixture.expectErrorShape(try await server.request(method, path, key: nil, json: body), status: 401, code: "unauthorized")
                APIFixture.expectErrorShape(
                    try await server.request(method, path, key: "admin-wrong", json: body), status: 401, code: "unauthorized")
                APIFixture.expectErrorShape(
                    try await server.request(method, path, key: server.adminKey + "x", json: body), status: 401, code: "unauthorized")
                APIFixture.expectErrorShape(
                    try await server.request(method, path, key: nil, json: body, headers: [("Authorization", "Basic \(server.adminKey)")]),
                    status: 401, code: "unauthorized")
            }
            // Nothing was created by the refused calls.
            let list = try await server.request(.GET, "/v1/admin/tenants", key: server.adminKey)
            #expect(list.json["tenants"]?.arrayValue?.count == 1)
        }
    }

    @Test("tenant routes: no key or an unknown key answers 401; the admin key is refused")
    func tenantAuthentication() async throws {
        try await withLiveServer { server in
            let forged = "sy_\(server.store.tenant.id.uuidString.replacingOccurrences(of: "-", with: "").lowercased())_notthesecret"
            for key in [nil, "nonsense", forged, server.tenantKey + "x"] {
                for (method, path) in [(HTTPMethod.GET, "/v1/workflows"), (.GET, "/v1/runs"), (.POST, "/v1/apply")] {
                    let reply = try await server.request(method, path, key: key, text: method == .POST ? APIFixture.greet : nil)
                    APIFixture.expectErrorShape(reply, status: 401, code: "unauthorized")
                }
            }
            // The admin key is no tenant's key: it is refused on tenant routes (the docs leave 401 or 403 open).
            let admin = try await server.request(.POST, "/v1/apply", key: server.adminKey, text: APIFixture.greet)
            #expect([401, 403].contains(admin.status), "\(admin.text)")
            #expect(["unauthorized", "forbidden"].contains(admin.errorCode ?? ""), "\(admin.text)")
            let workflows = try await server.request(.GET, "/v1/workflows", key: server.tenantKey)
            #expect(workflows.json == ["workflows": []])
        }
    }

    @Test("creating another key answers 201; both keys work; an unknown or malformed tenant answers 404")
    func createKey() async throws {
        try await withLiveServer { server in
            let tenantID = server.store.tenant.id.uuidString.lowercased()
            let reply = try await server.request(.POST, "/v1/admin/tenants/\(tenantID)/keys", key: server.adminKey)
            #expect(reply.status == 201)
            #expect(APIFixture.keys(reply.json) == ["api_key"])
            let key = try #require(reply.json["api_key"]?.stringValue)
            #expect(key != server.tenantKey)
            #expect(key.hasPrefix("sy_\(tenantID.replacingOccurrences(of: "-", with: ""))_"))
            // The new key acts as the same tenant: what one applies, the other sees.
            try await APIFixture.apply(server, APIFixture.greet, key: key)
            let seen = try await server.request(.GET, "/v1/workflows/greet", key: server.tenantKey)
            #expect(seen.status == 200)
            #expect(try await server.request(.GET, "/v1/workflows/greet", key: key).status == 200)

            let unknown = try await server.request(.POST, "/v1/admin/tenants/\(UUID().uuidString.lowercased())/keys", key: server.adminKey)
            APIFixture.expectErrorShape(unknown, status: 404, code: "not_found")
            let malformed = try await server.request(.POST, "/v1/admin/tenants/not-a-uuid/keys", key: server.adminKey)
            APIFixture.expectErrorShape(malformed, status: 404, code: "not_found")
        }
    }

    @Test("listing tenants answers every tenant as {id, name}")
    func listTenants() async throws {
        try await withLiveServer { server in
            let created = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": "acme"])
            let acmeID = try #require(created.json["tenant"]?["id"]?.stringValue)
            let reply = try await server.request(.GET, "/v1/admin/tenants", key: server.adminKey)
            #expect(reply.status == 200)
            #expect(APIFixture.keys(reply.json) == ["tenants"])
            let tenants = try #require(reply.json["tenants"]?.arrayValue)
            #expect(tenants.count == 2)
            for tenant in tenants {
                #expect(APIFixture.keys(tenant) == ["id", "name"])
                #expect(APIFixture.isLowercaseUUID(tenant["id"]))
            }
            #expect(tenants.contains(["id": .string(acmeID), "name": "acme"]))
            #expect(tenants.contains(["id": .string(server.store.tenant.id.uuidString.lowercased()), "name": .string(server.store.tenant.name)]))
        }
    }
}

// MARK: - Resources

@Suite("API: apply and workflows")
struct APIResourceTests {
    @Test("apply answers 200 {applied:[{kind,name,version,changed}]}; the same again is unchanged; a changed document is version+1")
    func applyVersions() async throws {
        try await withLiveServer { server in
            let first = try await APIFixture.apply(server, APIFixture.greet)
            #expect(first.json == ["applied": [["kind": "Workflow", "name": "greet", "version": 1, "changed": true]]])
            let again = try await APIFixture.apply(server, APIFixture.greet)
            #expect(again.json == ["applied": [["kind": "Workflow", "name": "greet", "version": 1, "changed": false]]])
            let edited = APIFixture.greet.replacingOccurrences(of: "Greets someone.", with: "Greets someone warmly.")
            let changed = try await APIFixture.apply(server, edited)
            #expect(changed.json == ["applied": [["kind": "Workflow", "name": "greet", "version": 2, "changed": true]]])
            // Both versions stay readable; the latest is the default.
            let latest = try await server.request(.GET, "/v1/workflows/greet", key: server.tenantKey)
            #expect(latest.json["workflow"]?["version"] == 2)
            #expect(latest.json["workflow"]?["source"]?.stringValue == edited)
            let old = try await server.request(.GET, "/v1/workflows/greet?version=1", key: server.tenantKey)
            #expect(old.json["workflow"]?["version"] == 1)
            #expect(old.json["workflow"]?["source"]?.stringValue == APIFixture.greet)
        }
    }

    @Test("apply takes several documents at once, in order, with references between them")
    func applyMultipleDocuments() async throws {
        try await withLiveServer { server in
            let yaml = """
                kind: Agent
                name: helper
                instructions: You help.
                model: flash
                ---
                kind: Workflow
                name: helped
                steps:
                  - id: ask
                    agent: helper
                    prompt: "help me"
                """
            let reply = try await APIFixture.apply(server, yaml)
            #expect(
                reply.json == [
                    "applied": [
                        ["kind": "Agent", "name": "helper", "version": 1, "changed": true],
                        ["kind": "Workflow", "name": "helped", "version": 1, "changed": true],
                    ]
                ])
            let agents = try await server.request(.GET, "/v1/agents", key: server.tenantKey)
            #expect(agents.json == ["agents": [["name": "helper", "version": 1]]])
            // Each document keeps its own source text.
            let workflow = try await server.request(.GET, "/v1/workflows/helped", key: server.tenantKey)
            let source = try #require(workflow.json["workflow"]?["source"]?.stringValue)
            #expect(source.contains("name: helped"))
            #expect(!source.contains("kind: Agent"))
        }
    }

    @Test("text that is not YAML answers 422 invalid_yaml with file, line and column")
    func invalidYAML() async throws {
        try await withLiveServer { server in
            let yaml = """
                kind: Workflow
                name: broken
                steps: [ { id: a, transform: "x" }
                """
            let reply = try await server.request(
                .POST, "/v1/apply", key: server.tenantKey, text: yaml, headers: [("X-Yard-File", "flows/broken.yaml")])
            APIFixture.expectErrorShape(reply, status: 422, code: "invalid_yaml")
            let details = try #require(reply.json["error"]?["details"]?.arrayValue)
            let detail = try #require(details.first)
            #expect(APIFixture.keys(detail) == ["file", "line", "column", "path", "message"])
            #expect(detail["file"] == "flows/broken.yaml")
            #expect((detail["line"]?.intValue ?? 0) >= 3)
            #expect((detail["column"]?.intValue ?? 0) >= 1)
            // Without X-Yard-File the file is called `request`.
            let unnamed = try await server.request(.POST, "/v1/apply", key: server.tenantKey, text: "a: [1, 2\n")
            APIFixture.expectErrorShape(unnamed, status: 422, code: "invalid_yaml")
            #expect(unnamed.json["error"]?["details"]?.arrayValue?.first?["file"] == "request")
            let list = try await server.request(.GET, "/v1/workflows", key: server.tenantKey)
            #expect(list.json == ["workflows": []])
        }
    }

    @Test("an invalid resource answers 422 invalid_resource pointing at the bad value, and stores nothing, not even the valid documents")
    func invalidResource() async throws {
        try await withLiveServer { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let before = try await server.request(.GET, "/v1/workflows", key: server.tenantKey)
            // Line 9, column 13 is `nope` in `needs: [nope]`.
            let yaml = """
                kind: Workflow
                name: fine
                steps:
                  - id: a
                    transform: "ok"
                ---
                kind: Workflow
                name: bad
                steps:
                  - id: a
                    transform: "ok"
                  - id: b
                    needs: [nope]
                    transform: "ok"
                """
            let reply = try await server.request(.POST, "/v1/apply", key: server.tenantKey, text: yaml, headers: [("X-Yard-File", "bad.yaml")])
            APIFixture.expectErrorShape(reply, status: 422, code: "invalid_resource")
            let details = try #require(reply.json["error"]?["details"]?.arrayValue)
            #expect(details.count == 1, "\(reply.text)")
            let detail = try #require(details.first)
            #expect(APIFixture.keys(detail) == ["file", "line", "column", "path", "message"])
            #expect(detail["file"] == "bad.yaml")
            #expect(detail["line"] == 13, "\(detail.compactJSON)")
            #expect(detail["column"] == 13, "\(detail.compactJSON)")
            #expect(detail["path"] == "steps[1].needs[0]", "\(detail.compactJSON)")
            #expect(detail["message"]?.stringValue?.contains("nope") == true, "\(detail.compactJSON)")
            #expect(reply.json["error"]?["message"]?.stringValue?.hasPrefix("bad.yaml:13:13") == true, "\(reply.text)")

            let after = try await server.request(.GET, "/v1/workflows", key: server.tenantKey)
            #expect(after.json == before.json)
            #expect(try await server.request(.GET, "/v1/workflows/fine", key: server.tenantKey).status == 404)
        }
    }

    @Test("a body over 1 MiB answers 413 body_too_large; exactly 1 MiB is read")
    func bodyTooLarge() async throws {
        try await withLiveServer { server in
            let big = "# " + String(repeating: "x", count: (1 << 20) - 1) + "\n"
            let reply = try await server.request(.POST, "/v1/apply", key: server.tenantKey, text: big)
            APIFixture.expectErrorShape(reply, status: 413, code: "body_too_large")
            // The same cap holds for JSON bodies.
            let json = try await server.request(
                .POST, "/v1/admin/tenants", key: server.adminKey, text: "{\"name\": \"" + String(repeating: "a", count: 1 << 20) + "\"}",
                contentType: "application/json")
            APIFixture.expectErrorShape(json, status: 413, code: "body_too_large")
            // At the limit the body is read (and here refused for what it says, not its size).
            let atLimit = "#" + String(repeating: "x", count: (1 << 20) - 2) + "\n"
            #expect(atLimit.utf8.count == 1 << 20)
            let fits = try await server.request(.POST, "/v1/apply", key: server.tenantKey, text: atLimit)
            #expect(fits.status != 413, "\(fits.text)")
        }
    }

    @Test("GET /v1/workflows lists the latest version of each; GET /v1/workflows/{name} has its source; unknown answers 404")
    func workflows() async throws {
        try await withLiveServer { server in
            try await APIFixture.apply(server, APIFixture.greet)
            try await APIFixture.apply(server, APIFixture.approval)
            let list = try await server.request(.GET, "/v1/workflows", key: server.tenantKey)
            #expect(list.status == 200)
            let workflows = try #require(list.json["workflows"]?.arrayValue)
            #expect(Set(workflows.compactMap { $0["name"]?.stringValue }) == ["greet", "approval"])
            let greet = try #require(workflows.first { $0["name"] == "greet" })
            #expect(APIFixture.keys(greet) == ["name", "version", "description", "steps", "inputs", "created_at"])
            #expect(greet["version"] == 1)
            #expect(greet["description"] == "Greets someone.")
            #expect(greet["steps"] == 2)
            #expect(
                greet["inputs"] == ["name": ["type": "string", "required": true], "times": ["type": "integer", "required": false, "default": 1]])
            #expect(APIFixture.isTimestamp(greet["created_at"]))
            #expect(workflows.first { $0["name"] == "approval" }?["description"] == .null)

            let one = try await server.request(.GET, "/v1/workflows/greet", key: server.tenantKey)
            #expect(one.status == 200)
            #expect(APIFixture.keys(one.json) == ["workflow"])
            let detail = try #require(one.json["workflow"])
            #expect(APIFixture.keys(detail).isSuperset(of: ["name", "version", "description", "steps", "inputs", "created_at", "source"]))
            #expect(detail["source"]?.stringValue == APIFixture.greet)
            #expect(detail["name"] == "greet")

            APIFixture.expectErrorShape(try await server.request(.GET, "/v1/workflows/nope", key: server.tenantKey), status: 404, code: "not_found")
            APIFixture.expectErrorShape(
                try await server.request(.GET, "/v1/workflows/greet?version=7", key: server.tenantKey), status: 404, code: "not_found")
        }
    }

    @Test("a malformed ?version= answers 400 bad_request rather than the latest version")
    func malformedVersion() async throws {
        try await withLiveServer { server in
            try await APIFixture.apply(server, APIFixture.greet)
            for bad in ["latest", "1.5", "one"] {
                let reply = try await server.request(.GET, "/v1/workflows/greet?version=\(bad)", key: server.tenantKey)
                APIFixture.expectErrorShape(reply, status: 400, code: "bad_request")
            }
        }
    }
}

// MARK: - Runs

@Suite("API: starting and listing runs")
struct APIRunTests {
    static let runKeys: Set<String> = [
        "id", "workflow", "version", "status", "input", "output", "error", "created_at", "started_at", "finished_at", "steps", "usage",
    ]

    @Test("starting a run answers 202 {run} with the resolved input, and the run then succeeds")
    func startRun() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let reply = try await server.request(.POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            #expect(reply.status == 202)
            #expect(APIFixture.keys(reply.json) == ["run"])
            let run = try #require(reply.json["run"])
            #expect(APIFixture.keys(run) == Self.runKeys)
            #expect(APIFixture.isLowercaseUUID(run["id"]))
            #expect(run["workflow"] == "greet")
            #expect(run["version"] == 1)
            #expect(["queued", "running"].contains(run["status"]?.stringValue ?? ""), "\(run.compactJSON)")
            #expect(run["input"] == ["name": "Ada", "times": 1])
            #expect(run["output"] == .null)
            #expect(run["error"] == .null)
            #expect(APIFixture.isTimestamp(run["created_at"]))
            #expect(run["finished_at"] == .null)
            #expect(run["steps"]?.arrayValue?.map { $0["id"] } == ["hello", "shout"])

            let finished = try await APIFixture.poll(server, run: try #require(run["id"]?.stringValue))
            #expect(finished["status"] == "succeeded")
            #expect(finished["output"] == ["greeting": "Hello, Ada!", "loud": "HELLO, ADA!"])
        }
    }

    @Test("the same Idempotency-Key answers 200 with the same run; on another workflow it answers 409")
    func idempotency() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            try await APIFixture.apply(server, APIFixture.approval)
            let headers = [("Idempotency-Key", "order-42")]
            let first = try await server.request(
                .POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": "Ada"]], headers: headers)
            #expect(first.status == 202)
            let id = try #require(first.json["run"]?["id"]?.stringValue)
            let second = try await server.request(
                .POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": "Bob"]], headers: headers)
            #expect(second.status == 200)
            #expect(second.json["run"]?["id"]?.stringValue == id)
            #expect(second.json["run"]?["input"]?["name"] == "Ada")
            let other = try await server.request(.POST, "/v1/workflows/approval/runs", key: server.tenantKey, json: [:], headers: headers)
            APIFixture.expectErrorShape(other, status: 409, code: "conflict")
            let list = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(list.json["runs"]?.arrayValue?.count == 1)
            // An empty or overlong key is refused.
            for bad in ["", String(repeating: "k", count: 256)] {
                let reply = try await server.request(
                    .POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": "Ada"]], headers: [("Idempotency-Key", bad)])
                APIFixture.expectErrorShape(reply, status: 400, code: "bad_request")
            }
        }
    }

    @Test("?wait=10 answers 200 with the finished run: output, steps and usage")
    func waitForFinish() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let reply = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            #expect(reply.status == 200)
            let run = try #require(reply.json["run"])
            #expect(APIFixture.keys(run) == Self.runKeys)
            #expect(run["status"] == "succeeded")
            #expect(run["output"] == ["greeting": "Hello, Ada!", "loud": "HELLO, ADA!"])
            #expect(run["error"] == .null)
            #expect(APIFixture.isTimestamp(run["started_at"]))
            #expect(APIFixture.isTimestamp(run["finished_at"]))
            let steps = try #require(run["steps"]?.arrayValue)
            #expect(steps.count == 2)
            for step in steps {
                #expect(
                    APIFixture.keys(step) == [
                        "id", "status", "attempts", "expert", "output", "error", "started_at", "finished_at", "route", "feedback", "cost_usd",
                    ])
                #expect(step["status"] == "succeeded")
                #expect(step["attempts"] == 1)
                #expect(step["error"] == .null)
            }
            #expect(steps[0]["id"] == "hello")
            #expect(steps[0]["expert"] == "flash")
            #expect(steps[0]["output"] == "Hello, Ada!")
            #expect(steps[1]["id"] == "shout")
            #expect(steps[1]["expert"] == .null)
            #expect(steps[1]["output"] == "HELLO, ADA!")
            #expect(
                run["usage"] == ["calls": 1, "prompt_tokens": 12, "completion_tokens": 3, "cost_usd": "0", "unpriced_calls": 1, "estimated_calls": 0])
            // A run that does not finish in time comes back as it is, 202.
            try await APIFixture.apply(server, APIFixture.slow)
            let slow = try await server.request(.POST, "/v1/workflows/slow/runs?wait=0.2", key: server.tenantKey, json: [:])
            #expect(slow.status == 202)
            #expect(slow.json["run"]?["status"] != "succeeded")
            _ = try await server.request(.POST, "/v1/runs/\(try #require(slow.json["run"]?["id"]?.stringValue))/cancel", key: server.tenantKey)
            for bad in ["-1", "301", "soon"] {
                let reply = try await server.request(
                    .POST, "/v1/workflows/greet/runs?wait=\(bad)", key: server.tenantKey, json: ["input": ["name": "Ada"]])
                APIFixture.expectErrorShape(reply, status: 400, code: "bad_request")
            }
        }
    }

    @Test("bad input answers 422 invalid_input with details; nothing is started")
    func invalidInput() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let missing = try await server.request(.POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": [:]])
            APIFixture.expectErrorShape(missing, status: 422, code: "invalid_input")
            #expect(missing.json["error"]?["details"]?.arrayValue?.contains { $0["path"] == "name" } == true, "\(missing.text)")
            let noBody = try await server.request(.POST, "/v1/workflows/greet/runs", key: server.tenantKey)
            APIFixture.expectErrorShape(noBody, status: 422, code: "invalid_input")
            let wrongType = try await server.request(.POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": 7]])
            APIFixture.expectErrorShape(wrongType, status: 422, code: "invalid_input")
            #expect(wrongType.json["error"]?["details"]?.arrayValue?.first?["path"] == "name", "\(wrongType.text)")
            let wrongInteger = try await server.request(
                .POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": "Ada", "times": "twice"]])
            APIFixture.expectErrorShape(wrongInteger, status: 422, code: "invalid_input")
            #expect(wrongInteger.json["error"]?["details"]?.arrayValue?.first?["path"] == "times", "\(wrongInteger.text)")
            let notObject = try await server.request(.POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["Ada"]])
            APIFixture.expectErrorShape(notObject, status: 422, code: "invalid_input")
            let list = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(list.json["runs"] == [])
        }
    }

    @Test("an unknown workflow answers 404; a body that is not JSON answers 400 invalid_json")
    func startErrors() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let unknown = try await server.request(.POST, "/v1/workflows/nope/runs", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            APIFixture.expectErrorShape(unknown, status: 404, code: "not_found")
            let broken = try await server.request(
                .POST, "/v1/workflows/greet/runs", key: server.tenantKey, text: "{\"input\": {\"name\": ", contentType: "application/json")
            APIFixture.expectErrorShape(broken, status: 400, code: "invalid_json")
            let array = try await server.request(.POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: [["input": ["name": "Ada"]]])
            APIFixture.expectErrorShape(array, status: 400, code: "invalid_json")
            let list = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(list.json["runs"] == [])
        }
    }

    @Test("GET /v1/runs pages newest first by limit and cursor, without duplicates, and filters by status and workflow")
    func listRuns() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            try await APIFixture.apply(server, APIFixture.approval)
            var created: [String] = []
            for name in ["a", "b", "c", "d", "e"] {
                let reply = try await server.request(
                    .POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": .string(name)]])
                #expect(reply.json["run"]?["status"] == "succeeded")
                created.append(try #require(reply.json["run"]?["id"]?.stringValue))
            }
            let waiting = try await APIFixture.start(server, "approval")
            _ = try await APIFixture.poll(server, run: waiting) { $0["status"] == "waiting" }

            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                var path = "/v1/runs?workflow=greet&limit=2"
                if let cursor { path += "&cursor=" + (cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor) }
                let page = try await server.request(.GET, path, key: server.tenantKey)
                #expect(page.status == 200, "\(page.text)")
                #expect(APIFixture.keys(page.json) == ["runs", "next_cursor"])
                let runs = try #require(page.json["runs"]?.arrayValue)
                #expect(runs.count <= 2)
                for run in runs {
                    #expect(APIFixture.keys(run) == Self.runKeys.subtracting(["steps", "usage"]))
                }
                seen += runs.compactMap { $0["id"]?.stringValue }
                pages += 1
                cursor = page.json["next_cursor"]?.stringValue
                if cursor == nil { #expect(page.json["next_cursor"] == .null) }
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen == created.reversed())

            let all = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(all.json["runs"]?.arrayValue?.count == 6)
            #expect(all.json["runs"]?.arrayValue?.first?["id"]?.stringValue == waiting)
            #expect(all.json["next_cursor"] == .null)
            let byStatus = try await server.request(.GET, "/v1/runs?status=waiting", key: server.tenantKey)
            #expect(byStatus.json["runs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [waiting])
            let succeeded = try await server.request(.GET, "/v1/runs?status=succeeded&workflow=greet", key: server.tenantKey)
            #expect(succeeded.json["runs"]?.arrayValue?.count == 5)
            let none = try await server.request(.GET, "/v1/runs?workflow=nope", key: server.tenantKey)
            #expect(none.json == ["runs": [], "next_cursor": nil])

            for bad in ["status=done", "limit=0", "limit=501", "limit=many", "cursor=bogus"] {
                APIFixture.expectErrorShape(
                    try await server.request(.GET, "/v1/runs?\(bad)", key: server.tenantKey), status: 400, code: "bad_request")
            }
            _ = try await server.request(.POST, "/v1/runs/\(waiting)/cancel", key: server.tenantKey)
        }
    }

    @Test("the next_cursor works pasted into a query string as it is")
    func cursorAsGiven() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            var created: Set<String> = []
            for _ in 0..<12 { created.insert(try await APIFixture.start(server, "approval")) }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let page = try await server.request(.GET, "/v1/runs?limit=1" + (cursor.map { "&cursor=\($0)" } ?? ""), key: server.tenantKey)
                #expect(page.status == 200, "cursor \(cursor ?? "-"): \(page.text)")
                seen += page.json["runs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                cursor = page.json["next_cursor"]?.stringValue
                pages += 1
            } while cursor != nil && pages < 20
            #expect(seen.count == 12)
            #expect(Set(seen) == created)
            for id in created { _ = try await server.request(.POST, "/v1/runs/\(id)/cancel", key: server.tenantKey) }
        }
    }

    @Test("runs created at the same instant page without loss or repeats: the id breaks the tie")
    func listRunsWithTies() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            var created: Set<String> = []
            for _ in 0..<5 { created.insert(try await APIFixture.start(server, "approval")) }
            // Runs triggered together share a timestamp; the microseconds matter for the cursor.
            for instant in ["2025-01-31 12:00:00.123+00", "2025-01-31 12:00:00.123005+00", "2025-06-30 23:59:59.999999+00"] {
                try await server.store.database.client.query(
                    "UPDATE runs SET created_at = \(instant)::timestamptz WHERE tenant_id = \(server.store.tenant.id)",
                    logger: server.store.database.logger)
                var seen: [String] = []
                var cursor: String?
                var pages = 0
                repeat {
                    var path = "/v1/runs?limit=2"
                    if let cursor { path += "&cursor=" + (cursor.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? cursor) }
                    let page = try await server.request(.GET, path, key: server.tenantKey)
                    #expect(page.status == 200, "\(page.text)")
                    seen += page.json["runs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                    cursor = page.json["next_cursor"]?.stringValue
                    pages += 1
                } while cursor != nil && pages < 10
                #expect(seen.count == 5, "created at \(instant): pages gave \(seen.count) runs")
                #expect(Set(seen) == created, "created at \(instant): \(created.subtracting(seen).count) runs never listed")
                #expect(seen == seen.sorted(by: >), "created at \(instant): ties are not ordered by id, newest first")
            }
        }
    }

    @Test("concurrent starts with one Idempotency-Key create exactly one run")
    func concurrentIdempotency() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let replies = try await withThrowingTaskGroup(of: LiveServer.Reply.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await server.request(
                            .POST, "/v1/workflows/approval/runs", key: server.tenantKey, json: [:], headers: [("Idempotency-Key", "burst")])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.filter { $0.status == 202 }.count == 1, "\(replies.map(\.status))")
            #expect(replies.filter { $0.status == 200 }.count == 7, "\(replies.map(\.status))")
            #expect(Set(replies.compactMap { $0.json["run"]?["id"]?.stringValue }).count == 1)
            let list = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(list.json["runs"]?.arrayValue?.count == 1)
        }
    }

    @Test("a run keeps the workflow version it started with when a new version is applied")
    func versionPinning() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let id = try await APIFixture.start(server, "approval")
            _ = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            let v2 = APIFixture.approval
                .replacingOccurrences(of: "transform: \"draft\"", with: "transform: \"second draft\"")
                .replacingOccurrences(of: "decision: \"{{ steps.approve.output }}\"", with: "verdict: \"{{ steps.approve.output }}\"")
            let applied = try await APIFixture.apply(server, v2)
            #expect(applied.json["applied"]?.arrayValue?.first?["version"] == 2)
            let reply = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "ok"])
            #expect(reply.status == 202)
            let run = try await APIFixture.poll(server, run: id)
            #expect(run["version"] == 1)
            #expect(run["status"] == "succeeded")
            #expect(run["output"] == ["decision": "ok"])
            #expect(run["steps"]?.arrayValue?.first?["output"] == "draft")
            // New runs take the new version.
            let next = try await server.request(.POST, "/v1/workflows/approval/runs", key: server.tenantKey, json: [:])
            #expect(next.json["run"]?["version"] == 2)
        }
    }

    @Test("GET /v1/runs/{id} has the documented shape; an unknown or malformed id answers 404")
    func getRun() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let id = try await APIFixture.start(server, "greet", input: ["name": "Ada"])
            let finished = try await APIFixture.poll(server, run: id)
            let reply = try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)
            #expect(reply.status == 200)
            #expect(APIFixture.keys(reply.json) == ["run"])
            let run = try #require(reply.json["run"])
            #expect(run == finished)
            #expect(APIFixture.keys(run) == Self.runKeys)
            #expect(run["id"]?.stringValue == id)
            #expect(run["status"] == "succeeded")
            #expect(
                APIFixture.keys(run["usage"]) == ["calls", "prompt_tokens", "completion_tokens", "cost_usd", "unpriced_calls", "estimated_calls"])
            // The id is case-insensitive on the way in.
            #expect(try await server.request(.GET, "/v1/runs/\(id.uppercased())", key: server.tenantKey).json["run"]?["id"]?.stringValue == id)

            let unknown = try await server.request(.GET, "/v1/runs/\(UUID().uuidString.lowercased())", key: server.tenantKey)
            APIFixture.expectErrorShape(unknown, status: 404, code: "not_found")
            for malformed in ["nope", "12345", String(id.dropLast())] {
                let reply = try await server.request(.GET, "/v1/runs/\(malformed)", key: server.tenantKey)
                APIFixture.expectErrorShape(reply, status: 404, code: "not_found")
                #expect(reply.text == unknown.text)
            }
        }
    }
}

// MARK: - Events

@Suite("API: run events (server-sent events)")
struct APIEventTests {
    @Test("the event stream is text/event-stream, numbered 1, 2, 3…, from run.created to run.succeeded, and ends by itself")
    func stream() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            // Opened while the run is live: the stream follows it to the end.
            let id = try await APIFixture.start(server, "greet", input: ["name": "Ada"])
            let reply = try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey)
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
            let events = APIFixture.parseEvents(reply.text)
            try #require(events.count >= 4, "\(reply.text)")
            #expect(events.map { $0.id } == (1...events.count).map { String($0) })
            #expect(events.first?.type == "run.created")
            #expect(events.last?.type == "run.succeeded")
            #expect(events.filter { $0.type == "run.succeeded" }.count == 1)
            for (index, event) in events.enumerated() {
                let json = event.json
                #expect(APIFixture.keys(json) == ["seq", "type", "step", "data", "at"], "\(event.data)")
                #expect(json["seq"] == .int(index + 1))
                #expect(json["type"]?.stringValue == event.type)
                #expect(APIFixture.isTimestamp(json["at"]))
            }
            #expect(events[0].json["data"] == ["workflow": "greet", "version": 1, "input": ["name": "Ada", "times": 1]])
            #expect(events[0].json["step"] == .null)
            #expect(events.last?.json["data"]?["output"] == ["greeting": "Hello, Ada!", "loud": "HELLO, ADA!"])
            let types = events.compactMap { $0.type }
            for expected in ["step.started", "model.called", "step.succeeded"] { #expect(types.contains(expected), "\(types)") }
            let called = try #require(events.first { $0.type == "model.called" }?.json)
            #expect(called["step"] == "hello")
            #expect(called["data"]?["prompt_tokens"] == 12)
            #expect(called["data"]?["completion_tokens"] == 3)
            #expect(called["data"]?["expert"] == "flash")
            // `hello` starts and succeeds before `shout` starts.
            let order = events.filter { $0.type?.hasPrefix("step.") == true }.map { "\($0.type!) \($0.json["step"]?.stringValue ?? "")" }
            #expect(order == ["step.started hello", "step.succeeded hello", "step.started shout", "step.succeeded shout"], "\(order)")

            // Opened after the run finished: the same events, and the stream ends at once.
            let again = try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey)
            #expect(APIFixture.parseEvents(again.text) == events)
        }
    }

    @Test("Last-Event-ID (or ?after=) resumes after that event, with nothing missed or repeated")
    func resume() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let reply = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            let id = try #require(reply.json["run"]?["id"]?.stringValue)
            let all = APIFixture.parseEvents(try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey).text)
            try #require(all.count >= 4)
            for n in [1, 3, all.count - 1] {
                let resumed = try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey, headers: [("Last-Event-ID", String(n))])
                #expect(resumed.status == 200)
                #expect(APIFixture.parseEvents(resumed.text) == Array(all.dropFirst(n)))
                let byQuery = try await server.request(.GET, "/v1/runs/\(id)/events?after=\(n)", key: server.tenantKey)
                #expect(APIFixture.parseEvents(byQuery.text) == Array(all.dropFirst(n)))
            }
            // The header wins over the query parameter.
            let both = try await server.request(.GET, "/v1/runs/\(id)/events?after=1", key: server.tenantKey, headers: [("Last-Event-ID", "3")])
            #expect(APIFixture.parseEvents(both.text) == Array(all.dropFirst(3)))
            // After the last event of a finished run: an empty stream that ends at once.
            let end = try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey, headers: [("Last-Event-ID", String(all.count))])
            #expect(end.status == 200)
            #expect(APIFixture.parseEvents(end.text) == [])
        }
    }

    @Test("a malformed ?after= answers 400 bad_request rather than replaying the whole log")
    func malformedAfter() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let reply = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            let id = try #require(reply.json["run"]?["id"]?.stringValue)
            for bad in ["x", "1.5", "-1"] {
                let events = try await server.request(.GET, "/v1/runs/\(id)/events?after=\(bad)", key: server.tenantKey)
                APIFixture.expectErrorShape(events, status: 400, code: "bad_request")
            }
        }
    }

    @Test("the events of an unknown or malformed run id answer 404 in the error shape")
    func unknownRun() async throws {
        try await withLiveServer { server in
            for id in [UUID().uuidString.lowercased(), "nope"] {
                APIFixture.expectErrorShape(
                    try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey), status: 404, code: "not_found")
            }
        }
    }
}

// MARK: - Cancel and signals

@Suite("API: cancelling and signalling runs")
struct APIControlTests {
    @Test("cancelling a run with a slow step answers 202 and the run ends cancelled at once")
    func cancel() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.slow)
            let id = try await APIFixture.start(server, "slow")
            _ = try await APIFixture.poll(server, run: id, step: "think", status: "running")
            let started = ContinuousClock.now
            let reply = try await server.request(.POST, "/v1/runs/\(id)/cancel", key: server.tenantKey)
            #expect(reply.status == 202)
            #expect(reply.json == ["run": ["id": .string(id), "status": "cancelled"]])
            let run = try await APIFixture.poll(server, run: id)
            #expect(ContinuousClock.now - started < .seconds(4))
            #expect(run["status"] == "cancelled")
            #expect(run["error"]?["code"] == "cancelled")
            #expect(run["output"] == .null)
            #expect(APIFixture.isTimestamp(run["finished_at"]))
            #expect(run["steps"]?.arrayValue?.first?["status"] == "cancelled")
            let events = APIFixture.parseEvents(try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey).text)
            #expect(events.last?.type == "run.cancelled")
            #expect(events.last?.json["data"]?["cancelled_steps"] == ["think"])
            // The stopped step writes nothing after the run ended: the log ends with the one final event.
            try await Task.sleep(for: .milliseconds(300))
            let log = try await server.store.events(of: try #require(UUID(uuidString: id)))
            #expect(log.last?.type == "run.cancelled", "\(log.map(\.type))")
            #expect(log.filter { ["run.succeeded", "run.failed", "run.cancelled"].contains($0.type) }.count == 1, "\(log.map(\.type))")
            #expect(try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey).json["run"]?["status"] == "cancelled")
            // Cancelling again changes nothing and answers the final status.
            let again = try await server.request(.POST, "/v1/runs/\(id)/cancel", key: server.tenantKey)
            #expect(again.status == 202)
            #expect(again.json == ["run": ["id": .string(id), "status": "cancelled"]])
            // Unknown and malformed ids answer 404.
            for other in [UUID().uuidString, "nope"] {
                APIFixture.expectErrorShape(
                    try await server.request(.POST, "/v1/runs/\(other)/cancel", key: server.tenantKey), status: 404, code: "not_found")
            }
        }
    }

    @Test("a finished run is not cancelled: the answer is its final status")
    func cancelFinished() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let done = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            let id = try #require(done.json["run"]?["id"]?.stringValue)
            let reply = try await server.request(.POST, "/v1/runs/\(id)/cancel", key: server.tenantKey)
            #expect(reply.status == 202)
            #expect(reply.json == ["run": ["id": .string(id), "status": "succeeded"]])
            let run = try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)
            #expect(run.json["run"]?["status"] == "succeeded")
            #expect(run.json["run"]?["steps"]?.arrayValue?.allSatisfy { $0["status"] == "succeeded" } == true, "\(run.text)")
            #expect(run.json["run"]?["output"] == done.json["run"]?["output"])
        }
    }

    @Test("cancelling a failed run changes nothing: its steps and event log stay as they were")
    func cancelFailed() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            let yaml = """
                kind: Workflow
                name: broken-chain
                steps:
                  - id: explode
                    model: flash
                    prompt: "please explode"
                  - id: after
                    needs: [explode]
                    transform: "never"
                """
            try await APIFixture.apply(server, yaml)
            let failed = try await server.request(.POST, "/v1/workflows/broken-chain/runs?wait=10", key: server.tenantKey, json: [:])
            #expect(failed.status == 200)
            let run = try #require(failed.json["run"])
            #expect(run["status"] == "failed")
            #expect(run["error"]?["code"]?.stringValue?.isEmpty == false, "\(run.compactJSON)")
            #expect(run["steps"]?.arrayValue?.first?["status"] == "failed")
            #expect(run["steps"]?.arrayValue?.first?["error"]?["message"]?.stringValue?.isEmpty == false)
            let id = try #require(run["id"]?.stringValue)
            let eventsBefore = try await server.store.events(of: try #require(UUID(uuidString: id)))

            let reply = try await server.request(.POST, "/v1/runs/\(id)/cancel", key: server.tenantKey)
            #expect(reply.status == 202)
            #expect(reply.json == ["run": ["id": .string(id), "status": "failed"]])
            let after = try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)
            #expect(after.json["run"] == run, "cancel changed a finished run:\n\(run.compactJSON)\n\(after.text)")
            #expect(try await server.store.events(of: try #require(UUID(uuidString: id))) == eventsBefore)
        }
    }

    @Test("a signal resumes a wait_for step (202, resumed_steps); its data is the step's output; a repeat answers 409 signal_exists")
    func signal() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let id = try await APIFixture.start(server, "approval")
            let waiting = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            #expect(waiting["steps"]?.arrayValue?.last?["status"] == "waiting")
            let data: JSONValue = ["approved": true, "by": "ops@example.com"]
            let reply = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": data])
            #expect(reply.status == 202)
            #expect(reply.json == ["signal": "approval", "resumed_steps": ["approve"]])
            let run = try await APIFixture.poll(server, run: id)
            #expect(run["status"] == "succeeded")
            #expect(run["output"] == ["decision": data])
            #expect(run["steps"]?.arrayValue?.last?["output"] == data)

            let duplicate = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": data])
            // The run has finished by now, so either refusal is right; a live run is checked below.
            #expect(duplicate.status == 409)
            APIFixture.expectErrorShape(
                try await server.request(.POST, "/v1/runs/\(id)/signals/other", key: server.tenantKey, json: [:]), status: 409, code: "run_finished")
        }
    }

    @Test("a second signal of the same name to a live run answers 409 signal_exists and changes nothing")
    func duplicateSignal() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            let yaml = """
                kind: Workflow
                name: two-approvals
                steps:
                  - id: first
                    wait_for: approval
                  - id: second
                    wait_for: release
                outputs:
                  first: "{{ steps.first.output }}"
                  second: "{{ steps.second.output }}"
                """
            try await APIFixture.apply(server, yaml)
            let id = try await APIFixture.start(server, "two-approvals")
            _ = try await APIFixture.poll(server, run: id, step: "second", status: "waiting")
            let first = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "yes"])
            #expect(first.status == 202)
            #expect(first.json["resumed_steps"] == ["first"])
            let again = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "no"])
            APIFixture.expectErrorShape(again, status: 409, code: "signal_exists")
            // An empty body is data null.
            let release = try await server.request(.POST, "/v1/runs/\(id)/signals/release", key: server.tenantKey)
            #expect(release.status == 202)
            #expect(release.json == ["signal": "release", "resumed_steps": ["second"]])
            let run = try await APIFixture.poll(server, run: id)
            #expect(run["status"] == "succeeded")
            #expect(run["output"] == ["first": "yes", "second": nil])

            let finished = try await server.request(.POST, "/v1/runs/\(id)/signals/later", key: server.tenantKey, json: ["data": 1])
            APIFixture.expectErrorShape(finished, status: 409, code: "run_finished")
        }
    }

    @Test("concurrent identical signals: exactly one is delivered, the others answer 409 signal_exists")
    func concurrentSignals() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let id = try await APIFixture.start(server, "approval")
            _ = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            let replies = try await withThrowingTaskGroup(of: LiveServer.Reply.self) { group in
                for n in 0..<6 {
                    group.addTask {
                        try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": .int(n)])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let delivered = replies.filter { $0.status == 202 }
            #expect(delivered.count == 1, "\(replies.map(\.text))")
            #expect(delivered.first?.json["resumed_steps"] == ["approve"])
            // A duplicate that arrives after the resumed run has already finished is told so instead.
            #expect(
                replies.filter { $0.status == 409 && ["signal_exists", "run_finished"].contains($0.errorCode ?? "") }.count == 5,
                "\(replies.map(\.text))")
            #expect(replies.contains { $0.errorCode == "signal_exists" })
            let run = try await APIFixture.poll(server, run: id)
            #expect(run["status"] == "succeeded")
            let events = try await server.store.events(of: try #require(UUID(uuidString: id)))
            #expect(events.filter { $0.type == "run.signalled" }.count == 1)
            #expect(run["output"]?["decision"] == events.first { $0.type == "run.signalled" }?.data["data"])
        }
    }

    @Test("cancelling a run that waits for a signal ends it; a later signal answers 409 run_finished")
    func cancelWaiting() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let id = try await APIFixture.start(server, "approval")
            _ = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            let reply = try await server.request(.POST, "/v1/runs/\(id)/cancel", key: server.tenantKey)
            #expect(reply.json == ["run": ["id": .string(id), "status": "cancelled"]])
            let run = try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)
            #expect(run.json["run"]?["steps"]?.arrayValue?.map { $0["status"] } == ["succeeded", "cancelled"])
            let late = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "too late"])
            APIFixture.expectErrorShape(late, status: 409, code: "run_finished")
        }
    }

    @Test("a signal sent before its wait_for step starts is found by the step when it starts")
    func earlySignal() async throws {
        let script = """
            - match: "take a moment"
              reply: "ready"
              delay: 300ms
            """
        try await withLiveServer(script: script) { server in
            let yaml = """
                kind: Workflow
                name: early
                steps:
                  - id: prepare
                    model: flash
                    prompt: "take a moment"
                  - id: approve
                    needs: [prepare]
                    wait_for: approval
                outputs:
                  decision: "{{ steps.approve.output }}"
                """
            try await APIFixture.apply(server, yaml)
            let id = try await APIFixture.start(server, "early")
            let reply = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "go"])
            #expect(reply.status == 202)
            #expect(reply.json == ["signal": "approval", "resumed_steps": []])
            let run = try await APIFixture.poll(server, run: id)
            #expect(run["status"] == "succeeded")
            #expect(run["output"] == ["decision": "go"])
        }
    }

    @Test("signals to an unknown run answer 404; a body that is not JSON answers 400; a name over 128 characters answers 400")
    func signalErrors() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            for other in [UUID().uuidString.lowercased(), "nope"] {
                APIFixture.expectErrorShape(
                    try await server.request(.POST, "/v1/runs/\(other)/signals/approval", key: server.tenantKey, json: [:]), status: 404,
                    code: "not_found")
            }
            let id = try await APIFixture.start(server, "approval")
            _ = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            let notJSON = try await server.request(
                .POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, text: "yes please", contentType: "application/json")
            APIFixture.expectErrorShape(notJSON, status: 400, code: "invalid_json")
            let long = try await server.request(
                .POST, "/v1/runs/\(id)/signals/\(String(repeating: "s", count: 129))", key: server.tenantKey, json: [:])
            APIFixture.expectErrorShape(long, status: 400, code: "bad_request")
            // None of those was recorded: the real signal still goes through.
            let reply = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "ok"])
            #expect(reply.status == 202)
            #expect(try await APIFixture.poll(server, run: id)["output"] == ["decision": "ok"])
        }
    }
}

// MARK: - The example workflow

@Suite("API: the example workflow end to end")
struct APIExampleTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("Workflows/ticket-triage.yaml with the demo script: auto, map, an agent with tools, cascade, approval signal, gapless events")
    func ticketTriage() async throws {
        let workflows = Self.repository.appendingPathComponent("Workflows")
        let script = try String(contentsOf: workflows.appendingPathComponent("demo-script.yaml"), encoding: .utf8)
        let yaml = try String(contentsOf: workflows.appendingPathComponent("ticket-triage.yaml"), encoding: .utf8)
        try await withLiveServer(script: script) { server in
            let applied = try await APIFixture.apply(server, yaml, file: "Workflows/ticket-triage.yaml")
            #expect(applied.json["applied"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["support-agent", "ticket-triage"])
            let ticket = "I was charged twice for my March invoice, please refund one charge."
            let id = try await APIFixture.start(server, "ticket-triage", input: ["ticket": .string(ticket), "customer_tier": "enterprise"])
            // `summary` runs beside the wait; the run is `waiting` once nothing else is left to do.
            let waiting = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            #expect(waiting["steps"]?.arrayValue?.first { $0["id"] == "approve" }?["status"] == "waiting")
            let signal = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": ["approved": true]])
            #expect(signal.json == ["signal": "approval", "resumed_steps": ["approve"]])
            let run = try await APIFixture.poll(server, run: id)
            #expect(run["status"] == "succeeded", "\(run.compactJSON)")
            #expect(run["output"]?["category"] == "billing")
            #expect(run["output"]?["tags"] == [["tag": "refund"], ["tag": "refund"]])
            #expect(run["output"]?["reply"]?.stringValue?.contains("KB-142") == true)
            #expect(run["output"]?["summary"]?.stringValue?.hasPrefix("BILLING: 2 tags") == true, "\(run["output"]?.compactJSON ?? "")")
            let steps = Dictionary(
                uniqueKeysWithValues: (run["steps"]?.arrayValue ?? []).compactMap { step in step["id"]?.stringValue.map { ($0, step) } })
            #expect(Set(steps.keys) == ["classify", "tag", "research", "draft", "approve", "summary"])
            #expect(steps.values.allSatisfy { $0["status"] == "succeeded" })
            #expect(steps["approve"]?["output"] == ["approved": true])
            // classify 120+20, two tags 40+8 each, research 180+24 (tool calls) and 310+42,
            // draft 420+12 (flash, too short for the check) and 420+64 (pro).
            #expect(
                run["usage"] == [
                    "calls": 7, "prompt_tokens": 1530, "completion_tokens": 178, "cost_usd": "0", "unpriced_calls": 7, "estimated_calls": 0,
                ])
            #expect(steps["classify"]?["route"]?["policy"] == "auto")
            #expect(steps["draft"]?["route"]?["policy"] == "cascade")
            #expect(steps["draft"]?["route"]?["escalated"] == true)
            #expect(steps["draft"]?["expert"] == "pro")
            #expect(steps["research"]?["output"]?.stringValue?.contains("99.80") == true)

            let events = APIFixture.parseEvents(try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey).text)
            #expect(events.map { $0.id } == (1...max(events.count, 1)).map { String($0) })
            #expect(events.first?.type == "run.created")
            #expect(events.last?.type == "run.succeeded")
            let types = events.compactMap { $0.type }
            #expect(types.contains("step.waiting"))
            #expect(types.contains("run.signalled"))
            #expect(types.filter { $0 == "model.called" }.count == 7)
            let tools = events.filter { $0.type == "tool.called" }.compactMap { $0.json["data"]?["tool"]?.stringValue }
            #expect(tools == ["calculator", "current_time"])
        }
    }
}

// MARK: - Health and the error shape

@Suite("API: health and errors")
struct APIHealthTests {
    @Test("/healthz and /readyz answer 200 without a key")
    func health() async throws {
        try await withLiveServer { server in
            let health = try await server.request(.GET, "/healthz", key: nil)
            #expect(health.status == 200)
            #expect(health.json == ["status": "ok"])
            // Readiness allows PostgreSQL 2 s to answer; on a machine loaded by the whole
            // suite that can be missed once, so a probe is retried as an orchestrator would.
            var ready = try await server.request(.GET, "/readyz", key: nil)
            for _ in 0..<5 where ready.status != 200 {
                #expect(ready.status == 503)
                #expect(APIFixture.keys(ready.json) == ["status", "error"])
                #expect(ready.json["status"] == "unavailable")
                try await Task.sleep(for: .milliseconds(200))
                ready = try await server.request(.GET, "/readyz", key: nil)
            }
            #expect(ready.status == 200)
            #expect(ready.json == ["status": "ready"])
            // A bad key does not stop a probe.
            #expect(try await server.request(.GET, "/healthz", key: "garbage").status == 200)
        }
    }

    @Test("unknown routes answer 404 and wrong methods answer an error, both in the one error shape")
    func unknownRoutes() async throws {
        try await withLiveServer { server in
            for path in ["/v1/nope", "/v2/runs", "/", "/v1/runs/x/y/z"] {
                APIFixture.expectErrorShape(try await server.request(.GET, path, key: server.tenantKey), status: 404, code: "not_found")
            }
            // Also without a key: an unknown route is not a secret.
            APIFixture.expectErrorShape(try await server.request(.GET, "/nope", key: nil), status: 404, code: "not_found")
            let wrongMethod = try await server.request(.DELETE, "/v1/workflows", key: server.tenantKey)
            #expect([404, 405].contains(wrongMethod.status))
            APIFixture.expectErrorShape(
                wrongMethod, status: wrongMethod.status, code: wrongMethod.status == 405 ? "method_not_allowed" : "not_found")
        }
    }
}
