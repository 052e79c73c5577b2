import Foundation
import NIOHTTP1
import SwitchyardCore
import SwitchyardStore
import Testing

/// Tenant A is the harness's tenant; tenant B is created over the admin API. Whatever
/// B does with A's names and ids must answer exactly as it does for things that do not
/// exist, and must change nothing of A's.
@Suite("Tenant isolation")
struct TenantIsolationTests {
    /// Creates tenant B and returns its key.
    static func tenantB(_ server: LiveServer, name: String = "tenant-b") async throws -> (id: String, key: String) {
        let reply = try await server.request(.POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": .string(name)])
        try #require(reply.status == 201, "\(reply.text)")
        return (try #require(reply.json["tenant"]?["id"]?.stringValue), try #require(reply.json["api_key"]?.stringValue))
    }

    /// Two answers are the same to a client: status and body.
    static func expectSame(
        _ reply: LiveServer.Reply, _ baseline: LiveServer.Reply, _ what: String, sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        #expect(reply.status == baseline.status, "\(what): \(reply.status) \(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.errorCode == baseline.errorCode, "\(what): \(reply.text)", sourceLocation: sourceLocation)
        #expect(reply.text == baseline.text, "\(what): \(reply.text) vs \(baseline.text)", sourceLocation: sourceLocation)
    }

    @Test("B cannot see A's workflow: GET answers 404 as for a missing one, and B's list is empty")
    func workflows() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let b = try await Self.tenantB(server)
            let theirs = try await server.request(.GET, "/v1/workflows/greet", key: b.key)
            let missing = try await server.request(.GET, "/v1/workflows/no-such-workflow", key: b.key)
            APIFixture.expectErrorShape(theirs, status: 404, code: "not_found")
            #expect(theirs.status == missing.status)
            #expect(theirs.errorCode == missing.errorCode)
            #expect(!theirs.text.contains("Greets"), "\(theirs.text)")
            APIFixture.expectErrorShape(
                try await server.request(.GET, "/v1/workflows/greet?version=1", key: b.key), status: 404, code: "not_found")
            #expect(try await server.request(.GET, "/v1/workflows", key: b.key).json == ["workflows": []])
            // A still sees it.
            #expect(try await server.request(.GET, "/v1/workflows/greet", key: server.tenantKey).status == 200)
        }
    }

    @Test("B cannot start runs of A's workflow: 404 as for a missing one, and no run is created anywhere")
    func startRuns() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let b = try await Self.tenantB(server)
            let theirs = try await server.request(.POST, "/v1/workflows/greet/runs?wait=1", key: b.key, json: ["input": ["name": "Eve"]])
            APIFixture.expectErrorShape(theirs, status: 404, code: "not_found")
            let missing = try await server.request(.POST, "/v1/workflows/no-such-workflow/runs", key: b.key, json: ["input": ["name": "Eve"]])
            #expect(theirs.status == missing.status)
            #expect(theirs.errorCode == missing.errorCode)
            #expect(try await server.request(.GET, "/v1/runs", key: b.key).json == ["runs": [], "next_cursor": nil])
            #expect(try await server.request(.GET, "/v1/runs", key: server.tenantKey).json == ["runs": [], "next_cursor": nil])
        }
    }

    @Test("B gets exactly the answer of a random id for A's run: GET, events, cancel and signal")
    func runs() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.approval)
            let id = try await APIFixture.start(server, "approval")
            _ = try await APIFixture.poll(server, run: id) { $0["status"] == "waiting" }
            let b = try await Self.tenantB(server)
            let random = UUID().uuidString.lowercased()
            let calls: [(HTTPMethod, String, JSONValue?)] = [
                (.GET, "", nil), (.GET, "/events", nil), (.POST, "/cancel", nil), (.POST, "/signals/approval", ["data": "from B"]),
            ]
            for (method, suffix, body) in calls {
                let theirs = try await server.request(method, "/v1/runs/\(id)\(suffix)", key: b.key, json: body)
                let missing = try await server.request(method, "/v1/runs/\(random)\(suffix)", key: b.key, json: body)
                APIFixture.expectErrorShape(theirs, status: 404, code: "not_found")
                Self.expectSame(theirs, missing, "\(method) /v1/runs/{A's id}\(suffix)")
                #expect(!theirs.text.contains(id))
            }
            // None of it reached A's run: it is still waiting, and A's own signal resumes it.
            let run = try await server.request(.GET, "/v1/runs/\(id)", key: server.tenantKey)
            #expect(run.json["run"]?["status"] == "waiting")
            let signal = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "from A"])
            #expect(signal.status == 202)
            #expect(signal.json["resumed_steps"] == ["approve"])
            let finished = try await APIFixture.poll(server, run: id)
            #expect(finished["status"] == "succeeded")
            #expect(finished["output"] == ["decision": "from A"])
            // Nor does B see the finished run any better.
            let after = try await server.request(.GET, "/v1/runs/\(id)", key: b.key)
            Self.expectSame(after, try await server.request(.GET, "/v1/runs/\(random)", key: b.key), "GET a finished run of A")
        }
    }

    @Test("A's runs are not in B's GET /v1/runs, whatever the filter")
    func listRuns() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let done = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: server.tenantKey, json: ["input": ["name": "Ada"]])
            #expect(done.json["run"]?["status"] == "succeeded")
            let b = try await Self.tenantB(server)
            // B has a workflow of the same name and a run of its own.
            try await APIFixture.apply(server, APIFixture.greet, key: b.key)
            let mine = try await server.request(.POST, "/v1/workflows/greet/runs?wait=10", key: b.key, json: ["input": ["name": "Bea"]])
            let mineID = try #require(mine.json["run"]?["id"]?.stringValue)
            for query in ["", "?workflow=greet", "?status=succeeded", "?status=succeeded&workflow=greet&limit=500"] {
                let list = try await server.request(.GET, "/v1/runs\(query)", key: b.key)
                #expect(list.json["runs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [mineID], "\(query): \(list.text)")
            }
            let listA = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(listA.json["runs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [try #require(done.json["run"]?["id"]?.stringValue)])
        }
    }

    @Test("the same names and idempotency keys in two tenants are independent")
    func sameNames() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            let b = try await Self.tenantB(server)
            let appliedA = try await APIFixture.apply(server, APIFixture.greet)
            let edited = APIFixture.greet.replacingOccurrences(of: "Greets someone.", with: "B's greeter.")
            let appliedB = try await APIFixture.apply(server, edited, key: b.key)
            #expect(appliedA.json["applied"]?.arrayValue?.first?["version"] == 1)
            #expect(appliedB.json["applied"]?.arrayValue?.first?["version"] == 1)
            #expect(appliedB.json["applied"]?.arrayValue?.first?["changed"] == true)
            #expect(
                try await server.request(.GET, "/v1/workflows/greet", key: server.tenantKey).json["workflow"]?["source"]?.stringValue
                    == APIFixture.greet)
            #expect(try await server.request(.GET, "/v1/workflows/greet", key: b.key).json["workflow"]?["source"]?.stringValue == edited)

            let headers = [("Idempotency-Key", "shared-key")]
            let runA = try await server.request(
                .POST, "/v1/workflows/greet/runs", key: server.tenantKey, json: ["input": ["name": "Ada"]], headers: headers)
            let runB = try await server.request(.POST, "/v1/workflows/greet/runs", key: b.key, json: ["input": ["name": "Bea"]], headers: headers)
            #expect(runA.status == 202)
            #expect(runB.status == 202, "B's first use of the key must create B's own run: \(runB.text)")
            #expect(runA.json["run"]?["id"] != runB.json["run"]?["id"])
            #expect(runB.json["run"]?["input"]?["name"] == "Bea")
        }
    }

    @Test("B's key cannot manage tenants or keys: 403 on every admin route")
    func adminRoutes() async throws {
        try await withLiveServer { server in
            let b = try await Self.tenantB(server)
            let a = server.store.tenant.id.uuidString.lowercased()
            let forA = try await server.request(.POST, "/v1/admin/tenants/\(a)/keys", key: b.key)
            APIFixture.expectErrorShape(forA, status: 403, code: "forbidden")
            #expect(!forA.text.contains("sy_"))
            let forSelf = try await server.request(.POST, "/v1/admin/tenants/\(b.id)/keys", key: b.key)
            APIFixture.expectErrorShape(forSelf, status: 403, code: "forbidden")
            APIFixture.expectErrorShape(try await server.request(.GET, "/v1/admin/tenants", key: b.key), status: 403, code: "forbidden")
            APIFixture.expectErrorShape(
                try await server.request(.POST, "/v1/admin/tenants", key: b.key, json: ["name": "tenant-c"]), status: 403, code: "forbidden")
            let list = try await server.request(.GET, "/v1/admin/tenants", key: server.adminKey)
            #expect(list.json["tenants"]?.arrayValue?.count == 2)
        }
    }

    @Test("a key names its tenant, but B's secret under A's id is refused")
    func forgedKey() async throws {
        try await withLiveServer(script: APIFixture.script) { server in
            try await APIFixture.apply(server, APIFixture.greet)
            let b = try await Self.tenantB(server)
            let secret = try #require(b.key.split(separator: "_", maxSplits: 2).last)
            let hexA = server.store.tenant.id.uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            let forged = "sy_\(hexA)_\(secret)"
            APIFixture.expectErrorShape(try await server.request(.GET, "/v1/workflows", key: forged), status: 401, code: "unauthorized")
            APIFixture.expectErrorShape(try await server.request(.GET, "/v1/workflows/greet", key: forged), status: 401, code: "unauthorized")
        }
    }
}
