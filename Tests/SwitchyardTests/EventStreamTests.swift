import Foundation
import NIOHTTP1
import SwitchyardCore
import SwitchyardEngine
import SwitchyardServer
import SwitchyardStore
import Testing

/// Live event streams: woken by NOTIFY, not by polling; a client that hangs up is
/// noticed at the next keep-alive; a tenant's streams are capped; shutdown ends them.
@Suite("API: live event streams")
struct EventStreamTests {
    static let waiting = """
        kind: Workflow
        name: approval
        steps:
          - id: wait
            wait_for: approval
          - id: after
            needs: [wait]
            transform: "approved: {{ steps.wait.output }}"
        """

    static func startWaitingRun(_ server: LiveServer) async throws -> String {
        let applied = try await server.request(.POST, "/v1/apply", key: server.tenantKey, text: Self.waiting)
        #expect(applied.status == 200, "\(applied.text)")
        let created = try await server.request(.POST, "/v1/workflows/approval/runs", key: server.tenantKey, json: [:])
        let id = try #require(created.json["run"]?["id"]?.stringValue)
        _ = try await APIFixture.poll(server, run: id, step: "wait", status: "waiting")
        return id
    }

    static func port(_ server: LiveServer) throws -> Int {
        try #require(Int(server.url.split(separator: ":").last ?? ""))
    }

    @Test("a quiet stream is woken by the database's NOTIFY, not by a poll: a signal shows up at once although keep-alives are 30 s apart")
    func notifyWakesAStream() async throws {
        let quietHeartbeat: @Sendable (inout ServerConfiguration) -> Void = { $0.eventHeartbeat = .seconds(30) }
        try await withLiveServer(configure: quietHeartbeat) { server in
            let id = try await Self.startWaitingRun(server)
            let stream = try RawEventStream(port: try Self.port(server), path: "/v1/runs/\(id)/events", key: server.tenantKey)
            defer { stream.hangUp() }
            try await stream.wait(for: "the step.waiting event", timeout: .seconds(10)) { $0.contains("event: step.waiting") }
            let clock = ContinuousClock()
            let sent = clock.now
            let signal = try await server.request(.POST, "/v1/runs/\(id)/signals/approval", key: server.tenantKey, json: ["data": "yes"])
            #expect(signal.status == 202)
            try await stream.wait(for: "run.signalled and the run's end", timeout: .seconds(10)) { $0.contains("event: run.succeeded") }
            #expect(clock.now - sent < .seconds(5), "the events took \(clock.now - sent)")
            try await stream.wait(for: "the end of the stream", timeout: .seconds(5)) { _ in stream.isEnded }
            #expect(stream.text.contains("event: run.signalled"))
        }
    }

    @Test("a stream on one server is woken by events written through another server")
    func streamsFollowRunsAcrossServers() async throws {
        try await withTestStore { store in
            try await withLiveServer(on: store, configure: { $0.eventHeartbeat = .seconds(30) }) { first in
                try await withLiveServer(on: store, configure: { $0.eventHeartbeat = .seconds(30) }) { second in
                    let id = try await Self.startWaitingRun(first)
                    let stream = try RawEventStream(port: try Self.port(second), path: "/v1/runs/\(id)/events", key: second.tenantKey)
                    defer { stream.hangUp() }
                    try await stream.wait(for: "the step.waiting event", timeout: .seconds(10)) { $0.contains("event: step.waiting") }
                    let signal = try await first.request(.POST, "/v1/runs/\(id)/signals/approval", key: first.tenantKey, json: ["data": "yes"])
                    #expect(signal.status == 202)
                    try await stream.wait(for: "the run's end on the other server", timeout: .seconds(10)) { $0.contains("event: run.succeeded") }
                }
            }
        }
    }

    @Test(
        "clients that hang up are noticed at the next keep-alive: their streams end, and quiet streams cost the database under one query per stream per second"
    )
    func droppedClientsEndTheirStreams() async throws {
        let fastHeartbeat: @Sendable (inout ServerConfiguration) -> Void = { $0.eventHeartbeat = .milliseconds(200) }
        try await withLiveServer(configure: fastHeartbeat) { server in
            let engine = try #require(server.engine)
            let database = try #require(server.database)
            let id = try await Self.startWaitingRun(server)
            let port = try Self.port(server)
            // The server's own calls with no stream open, as the baseline.
            var before = database.statistics.callCount
            try await Task.sleep(for: .seconds(2))
            let idle = database.statistics.callCount - before
            let streams = try (0..<20).map { _ in try RawEventStream(port: port, path: "/v1/runs/\(id)/events", key: server.tenantKey) }
            for stream in streams {
                try await stream.wait(for: "the stream's first events", timeout: .seconds(10)) { $0.contains("event: step.waiting") }
            }
            #expect(engine.events.openStreams == 20)
            before = database.statistics.callCount
            try await Task.sleep(for: .seconds(2))
            let withStreams = database.statistics.callCount - before
            // Polled, 20 streams would cost 20 × 4 × 2 queries a second; woken, they read
            // on every sixth keep-alive: 20 / 1.2 s.
            #expect(withStreams - idle < 20 * 2, "20 quiet streams added \(withStreams - idle) calls in 2 s (idle: \(idle))")
            for stream in streams { stream.hangUp() }
            let deadline = ContinuousClock.now + .seconds(5)
            while engine.events.openStreams > 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(engine.events.openStreams == 0, "\(engine.events.openStreams) streams outlived their clients")
            // The API is as fast as before.
            let list = try await server.request(.GET, "/v1/runs", key: server.tenantKey)
            #expect(list.status == 200)
        }
    }

    @Test("a tenant past its cap on open streams gets 429 too_many_streams with Retry-After; another tenant does not")
    func streamsPerTenantAreCapped() async throws {
        var engine = fastEngineConfiguration()
        engine.maxEventStreamsPerTenant = 3
        try await withLiveServer(engine: engine) { server in
            let id = try await Self.startWaitingRun(server)
            let port = try Self.port(server)
            let streams = try (0..<3).map { _ in try RawEventStream(port: port, path: "/v1/runs/\(id)/events", key: server.tenantKey) }
            defer { for stream in streams { stream.hangUp() } }
            for stream in streams {
                try await stream.wait(for: "the stream's first events", timeout: .seconds(10)) { $0.contains("event: step.waiting") }
            }
            let refused = try await server.request(.GET, "/v1/runs/\(id)/events", key: server.tenantKey)
            APIFixture.expectErrorShape(refused, status: 429, code: "too_many_streams")
            #expect(refused.headers.first(name: "Retry-After") != nil)
            // Another tenant has streams of its own to open.
            let other = try await server.request(
                .POST, "/v1/admin/tenants", key: server.adminKey, json: ["name": .string("other-\(UUID().uuidString.prefix(6).lowercased())")])
            let otherKey = try #require(other.json["api_key"]?.stringValue)
            let applied = try await server.request(.POST, "/v1/apply", key: otherKey, text: Self.waiting)
            #expect(applied.status == 200)
            let created = try await server.request(.POST, "/v1/workflows/approval/runs", key: otherKey, json: [:])
            let otherRun = try #require(created.json["run"]?["id"]?.stringValue)
            let stream = try RawEventStream(port: port, path: "/v1/runs/\(otherRun)/events", key: otherKey)
            defer { stream.hangUp() }
            try await stream.wait(for: "the other tenant's stream", timeout: .seconds(10)) { $0.contains("event: run.created") }
        }
    }

    @Test("shutting the server down ends open streams on quiet runs: the server stops within seconds")
    func shutdownEndsStreams() async throws {
        let clock = ContinuousClock()
        let quietHeartbeat: @Sendable (inout ServerConfiguration) -> Void = { $0.eventHeartbeat = .seconds(30) }
        let (stream, stopping) = try await withLiveServer(configure: quietHeartbeat) { server in
            let id = try await Self.startWaitingRun(server)
            let stream = try RawEventStream(port: try Self.port(server), path: "/v1/runs/\(id)/events", key: server.tenantKey)
            try await stream.wait(for: "the stream's first events", timeout: .seconds(10)) { $0.contains("event: step.waiting") }
            return (stream, clock.now)
        }
        defer { stream.hangUp() }
        // Far below the 30 s heartbeat a stream would otherwise wait for (slack for a loaded machine).
        #expect(clock.now - stopping < .seconds(10), "the server took \(clock.now - stopping) to stop with a stream open")
        try await stream.wait(for: "the end of the stream", timeout: .seconds(5)) { _ in stream.isEnded }
    }

    @Test("an idle server is idle: a few database calls a second at the default poll, and no work claimed")
    func idleServerIsIdle() async throws {
        try await withLiveServer(engine: EngineConfiguration()) { server in
            let database = try #require(server.database)
            try await Task.sleep(for: .seconds(1))
            let before = database.statistics.callCount
            try await Task.sleep(for: .seconds(5))
            let perSecond = Double(database.statistics.callCount - before) / 5
            // Per poll interval (1 s): one claim, one look for delayed retries, one
            // maintenance survey.
            #expect(perSecond <= 4, "an idle server made \(perSecond) database calls per second")
        }
    }
}
