import Foundation
import NIOHTTP1
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import Testing

@Suite("API: secrets")
struct SecretAPITests {
    @Test("a secret goes in with PUT and never comes out: listings carry names only")
    func neverReturned() async throws {
        try await withLiveServer { server in
            let value = "sk-live-9d2f7c1e"
            let put = try await server.request(.PUT, "/v1/secrets/KB_TOKEN", key: server.tenantKey, json: ["value": .string(value)])
            #expect(put.status == 201, "\(put.text)")
            #expect(put.json["secret"]?["name"] == "KB_TOKEN")
            let replaced = try await server.request(.PUT, "/v1/secrets/KB_TOKEN", key: server.tenantKey, json: ["value": "sk-live-other"])
            #expect(replaced.status == 200)
            #expect(replaced.json["secret"]?["created"] == false)
            let list = try await server.request(.GET, "/v1/secrets", key: server.tenantKey)
            #expect(list.json["secrets"]?.arrayValue?.map { $0["name"] } == ["KB_TOKEN"])
            for reply in [put, replaced, list] {
                #expect(!reply.text.contains("sk-live"))
            }
            // Stored sealed: the database never sees the value either.
            var stored = Data()
            for try await (bytes) in try await server.store.database.client.query(
                "SELECT ciphertext FROM secrets WHERE tenant_id = \(server.store.tenant.id)", logger: server.store.database.logger
            ).decode(Data.self) {
                stored = bytes
            }
            #expect(!stored.isEmpty)
            #expect(!String(decoding: stored, as: UTF8.self).contains("sk-live"))
            let deleted = try await server.request(.DELETE, "/v1/secrets/KB_TOKEN", key: server.tenantKey)
            #expect(deleted.status == 204)
            let again = try await server.request(.DELETE, "/v1/secrets/KB_TOKEN", key: server.tenantKey)
            APIFixture.expectErrorShape(again, status: 404, code: "not_found")
        }
    }

    @Test("bad names and bodies are refused and change nothing")
    func badInput() async throws {
        try await withLiveServer { server in
            APIFixture.expectErrorShape(
                try await server.request(.PUT, "/v1/secrets/9lives", key: server.tenantKey, json: ["value": "x"]), status: 400, code: "bad_request")
            APIFixture.expectErrorShape(
                try await server.request(.PUT, "/v1/secrets/has-dash", key: server.tenantKey, json: ["value": "x"]), status: 400, code: "bad_request")
            APIFixture.expectErrorShape(
                try await server.request(.PUT, "/v1/secrets/TOKEN", key: server.tenantKey, json: ["value": 5]), status: 422, code: "invalid_request")
            APIFixture.expectErrorShape(
                try await server.request(
                    .PUT, "/v1/secrets/TOKEN", key: server.tenantKey, json: ["value": .string(String(repeating: "x", count: 70_000))]),
                status: 422, code: "invalid_request")
            APIFixture.expectErrorShape(
                try await server.request(.PUT, "/v1/secrets/TOKEN", key: nil, json: ["value": "x"]), status: 401, code: "unauthorized")
            let list = try await server.request(.GET, "/v1/secrets", key: server.tenantKey)
            #expect(list.json["secrets"] == [])
        }
    }
}

@Suite("API: gate routes, feedback and tenant settings")
struct GateAPITests {
    static let workflow = """
        kind: Workflow
        name: answer
        steps:
          - id: reply
            model: auto
            prompt: Say hello.
          - id: shape
            needs: [reply]
            transform: "{{ steps.reply.output | upper }}"
        """

    @Test("GET /v1/runs/{id} carries each model step's route; feedback is learned once per verdict")
    func routeAndFeedback() async throws {
        try await withLiveServer(script: "- match: hello\n  reply: hello there") { server in
            try await APIFixture.apply(server, Self.workflow)
            let reply = try await server.request(.POST, "/v1/workflows/answer/runs?wait=10", key: server.tenantKey, json: [:])
            let run = try #require(reply.json["run"])
            let id = try #require(run["id"]?.stringValue)
            let steps = try #require(run["steps"]?.arrayValue)
            let route = try #require(steps.first { $0["id"] == "reply" }?["route"])
            #expect(APIFixture.keys(route) == ["policy", "expert", "score", "threshold", "reasons", "escalated"])
            #expect(route["policy"] == "auto")
            #expect(steps.first { $0["id"] == "shape" }?["route"] == .null)
            let expert = try #require(route["expert"]?.stringValue)

            let first = try await server.request(.POST, "/v1/runs/\(id)/steps/reply/feedback", key: server.tenantKey, json: ["good": false])
            #expect(first.status == 200, "\(first.text)")
            #expect(first.json["feedback"]?["learned"] == true)
            #expect(first.json["feedback"]?["expert"]?.stringValue == expert)
            let repeated = try await server.request(.POST, "/v1/runs/\(id)/steps/reply/feedback", key: server.tenantKey, json: ["good": false])
            #expect(repeated.json["feedback"]?["learned"] == false)
            let shown = try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)
            #expect(shown.json["run"]?["steps"]?.arrayValue?.first?["feedback"] == false)

            APIFixture.expectErrorShape(
                try await server.request(.POST, "/v1/runs/\(id)/steps/shape/feedback", key: server.tenantKey, json: ["good": true]),
                status: 422, code: "not_a_model_step")
            APIFixture.expectErrorShape(
                try await server.request(.POST, "/v1/runs/\(id)/steps/ghost/feedback", key: server.tenantKey, json: ["good": true]),
                status: 404, code: "not_found")
            APIFixture.expectErrorShape(
                try await server.request(.POST, "/v1/runs/\(id)/steps/reply/feedback", key: server.tenantKey, json: ["good": "yes"]),
                status: 422, code: "invalid_request")
            // Another tenant cannot see the run, so cannot teach its gate.
            let other = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": "other"])
            let otherKey = try #require(other.json["api_key"]?.stringValue)
            APIFixture.expectErrorShape(
                try await server.request(.POST, "/v1/runs/\(id)/steps/reply/feedback", key: otherKey, json: ["good": true]),
                status: 404, code: "not_found")
        }
    }

    @Test("the admin key sets a tenant's gate threshold and egress list; bad values are refused with their place")
    func tenantSettings() async throws {
        try await withLiveServer { server in
            let tenant = server.store.tenant.id.uuidString.lowercased()
            let gate = try await server.request(.PUT, "/v1/admin/tenants/\(tenant)/gate", key: server.adminKey, json: ["threshold": 0.2])
            #expect(gate.status == 200, "\(gate.text)")
            #expect(gate.json["settings"]?["gate_threshold"] == 0.2)
            let egress = try await server.request(
                .PUT, "/v1/admin/tenants/\(tenant)/egress", key: server.adminKey, json: ["allow": ["10.1.0.0/16", "kb.internal"]])
            #expect(egress.json["settings"]?["egress_allow"] == ["10.1.0.0/16", "kb.internal"])
            let shown = try await server.request(.GET, "/v1/admin/tenants/\(tenant)", key: server.adminKey)
            #expect(
                shown.json["tenant"]?["settings"] == [
                    "gate_threshold": 0.2, "egress_allow": ["10.1.0.0/16", "kb.internal"], "max_running_steps": .null, "runs_per_second": .null,
                    "run_burst": .null,
                ])

            let bad = try await server.request(
                .PUT, "/v1/admin/tenants/\(tenant)/egress", key: server.adminKey, json: ["allow": ["10.0.0.0/99", "ok.example", 7]])
            APIFixture.expectErrorShape(bad, status: 422, code: "invalid_request")
            #expect(bad.json["error"]?["details"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["allow[0]", "allow[2]"])
            APIFixture.expectErrorShape(
                try await server.request(.PUT, "/v1/admin/tenants/\(tenant)/gate", key: server.adminKey, json: ["threshold": 3]),
                status: 422, code: "invalid_request")
            APIFixture.expectErrorShape(
                try await server.request(.PUT, "/v1/admin/tenants/\(tenant)/gate", key: server.tenantKey, json: ["threshold": 0.1]),
                status: 403, code: "forbidden")
            let unchanged = try await server.request(.GET, "/v1/admin/tenants/\(tenant)", key: server.adminKey)
            #expect(unchanged.json == shown.json)
            let reset = try await server.request(.PUT, "/v1/admin/tenants/\(tenant)/gate", key: server.adminKey, json: ["threshold": .null])
            #expect(reset.json["settings"]?["gate_threshold"] == .null)
            APIFixture.expectErrorShape(
                try await server.request(.GET, "/v1/admin/tenants/\(UUID().uuidString)", key: server.adminKey), status: 404, code: "not_found")
        }
    }

    @Test("GET /v1/tools lists the built-in tools with their parameter schemas")
    func builtins() async throws {
        try await withLiveServer { server in
            let tools = try await server.request(.GET, "/v1/tools", key: server.tenantKey).json["tools"]?.arrayValue ?? []
            let names = Set(tools.filter { $0["builtin"] == true }.compactMap { $0["name"]?.stringValue })
            #expect(names == ["http_get", "json_query", "current_time", "calculator"])
            #expect(tools.allSatisfy { $0["builtin"] == false || $0["parameters"]?["type"] == "object" })
        }
    }
}

@Suite("API: live model deltas")
struct DeltaAPITests {
    @Test("?deltas=1 adds model.delta events carrying the answer as it streams; they are not stored")
    func deltas() async throws {
        let script = "- match: poem\n  reply: roses are red and queues are fair"
        try await withLiveServer(script: script) { server in
            try await APIFixture.apply(
                server,
                """
                kind: Workflow
                name: poem
                steps:
                  - { id: go, wait_for: go }
                  - { id: write, needs: [go], model: flash, prompt: Write a poem. }
                """)
            let id = try await APIFixture.start(server, "poem")
            try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask {
                    try await server.request(.GET, "/v1/runs/\(id)/events?deltas=1", key: server.tenantKey).text
                }
                try await Task.sleep(for: .milliseconds(300))
                _ = try await server.request(.POST, "/v1/runs/\(id)/signals/go", key: server.tenantKey, json: [:])
                let text = try #require(try await group.next())
                let events = APIFixture.parseEvents(text)
                let deltas = events.filter { $0.type == "model.delta" }
                #expect(deltas.count > 1, "\(text)")
                #expect(deltas.allSatisfy { $0.id == nil })
                #expect(deltas.compactMap { $0.json["text"]?.stringValue }.joined() == "roses are red and queues are fair")
                #expect(deltas.first?.json["step"] == "write")
                #expect(events.last?.type == "run.succeeded")
            }
            // The stored log has no deltas, and a stream without ?deltas=1 shows none.
            let plain = APIFixture.parseEvents(try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey).text)
            #expect(!plain.contains { $0.type == "model.delta" })
            #expect(plain.contains { $0.type == "model.called" })
        }
    }
}

@Suite("API: live model deltas across servers")
struct DeltaRelayTests {
    @Test("a client following on one server gets the deltas of a step another server runs, through PostgreSQL")
    func relayedAcrossServers() async throws {
        let script = "- match: poem\n  reply: roses are red and queues are fair"
        // This server answers the API but runs no steps; the engine below runs them.
        var idle = fastEngineConfiguration()
        idle.concurrency = 0
        try await withLiveServer(script: script, engine: idle) { server in
            try await APIFixture.apply(
                server,
                """
                kind: Workflow
                name: poem
                steps:
                  - { id: go, wait_for: go }
                  - { id: write, needs: [go], model: flash, prompt: Write a poem. }
                """)
            let id = try await APIFixture.start(server, "poem")
            try await withEngine(on: server.store, script: script) { _ in
                // Let the other engine start listening before the follower announces itself.
                try await Task.sleep(for: .milliseconds(500))
                try await withThrowingTaskGroup(of: String.self) { group in
                    group.addTask {
                        try await server.request(.GET, "/v1/runs/\(id)/events?deltas=1", key: server.tenantKey).text
                    }
                    try await Task.sleep(for: .milliseconds(500))
                    _ = try await server.request(.POST, "/v1/runs/\(id)/signals/go", key: server.tenantKey, json: [:])
                    let text = try #require(try await group.next())
                    let events = APIFixture.parseEvents(text)
                    let deltas = events.filter { $0.type == "model.delta" }
                    #expect(!deltas.isEmpty, "\(text)")
                    #expect(deltas.compactMap { $0.json["text"]?.stringValue }.joined() == "roses are red and queues are fair")
                    #expect(events.last?.type == "run.succeeded")
                }
            }
        }
    }
}
