import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardGate
import SwitchyardServer
import SwitchyardStore
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The engine under faults, in bounded, seeded loops: PostgreSQL restarted (fast and
/// immediate) and stalled under load, servers killed mid-step, clients that hang up,
/// upstreams that never answer. After each: every run final, no step committed twice,
/// one ledger row per call, no reservation left, no step left running.
/// (`Scripts/fault-soak.sh` runs the same loops longer and prints figures.)
@Suite("Faults: restarts, stalls, kills and hang-ups", .serialized)
struct FaultTests {
    static let chain = """
        kind: Workflow
        name: chain
        steps:
          - id: prepare
            transform: "go"
          - id: think
            needs: [prepare]
            model: flash
            prompt: "think about {{ steps.prepare.output }}"
          - id: answer
            needs: [think]
            model: pro
            prompt: "answer after {{ steps.think.output }}"
          - id: done
            needs: [answer]
            transform: "{{ steps.answer.output }}!"
        outputs:
          result: "{{ steps.done.output }}"
        """
    static let script = """
        - match: "think about"
          reply: "thought"
          delay: 120ms
        - match: "answer after"
          reply: "answered"
          delay: 80ms
        """

    /// Rounds of each fault loop, and their seed: small in the suite, larger in
    /// `Scripts/fault-soak.sh` (`SWITCHYARD_FAULT_ROUNDS`, `SWITCHYARD_FAULT_SEED`).
    static let rounds = max(1, Int(ProcessInfo.processInfo.environment["SWITCHYARD_FAULT_ROUNDS"] ?? "") ?? 4)
    static let seed = UInt64(ProcessInfo.processInfo.environment["SWITCHYARD_FAULT_SEED"] ?? "") ?? 10

    static func engineConfiguration(lease: Duration = .seconds(3)) -> EngineConfiguration {
        var configuration = EngineConfiguration()
        configuration.concurrency = 24
        configuration.lease = lease
        configuration.heartbeatInterval = .milliseconds(500)
        configuration.idlePoll = .milliseconds(200)
        configuration.maintenanceInterval = .milliseconds(200)
        configuration.shutdownGrace = .seconds(2)
        return configuration
    }

    @Test(
        "PostgreSQL restarted (fast and immediate, alternately, four times) under load on two servers: every run succeeds within lease + poll, none twice, and the API answers 503 (never 500) meanwhile"
    )
    func postgresRestartsUnderLoad() async throws {
        try await PrivateCluster.withStore("restart") { cluster, store in
            try await store.apply(Self.chain)
            let configuration = Self.engineConfiguration()
            let modes: [EmbeddedPostgres.Running.ShutdownMode] = (0..<Self.rounds).map { $0.isMultiple(of: 2) ? .fast : .immediate }
            // Two servers: one with the HTTP API (and its engine), one engine alone.
            let (report, statuses) = try await withLiveServer(on: store, script: Self.script, engine: configuration) { server in
                try await withEngines(1, on: store, script: Self.script, configuration: configuration) { engines in
                    let statuses = StatusTally()
                    return try await withThrowingTaskGroup(of: Void.self) { clients in
                        // A client reading and starting runs all along, as users would.
                        clients.addTask {
                            let clock = ContinuousClock()
                            while !Task.isCancelled {
                                for (method, path) in [(HTTPMethod.GET, "/v1/runs?limit=5"), (.POST, "/v1/workflows/chain/runs")] {
                                    let started = clock.now
                                    do {
                                        let reply = try await server.request(method, path, key: store.apiKey, json: method == .POST ? [:] : nil)
                                        statuses.record(reply.status, took: clock.now - started)
                                    } catch {
                                        if Task.isCancelled { return }
                                        Issue.record("an API request failed outright during the restarts: \(error)")
                                        statuses.record(0, took: clock.now - started)
                                    }
                                }
                                try await Task.sleep(for: .milliseconds(20))
                            }
                        }
                        var random = SplitMix64(seed: Self.seed)
                        var runs: [UUID] = []
                        for mode in modes {
                            runs += try await startRuns(store, workflow: "chain", count: 30)
                            try await Task.sleep(for: .milliseconds(Int.random(in: 100...500, using: &random)))
                            try await cluster.restart(mode)
                        }
                        try await Task.sleep(for: .milliseconds(500))
                        clients.cancelAll()
                        // Lease + poll is how long a step can wait for a dead owner; the work
                        // itself and the restart's own reconnects get the rest.
                        let report = try await FaultInvariants.check(
                            store, runs: runs, within: configuration.lease + configuration.idlePoll + .seconds(20))
                        #expect(engines.allSatisfy { $0.runningSteps == 0 })
                        return (report, statuses)
                    }
                }
            }
            print(
                "fault suite: PostgreSQL restarted \(Self.rounds) times (fast, immediate) under load on 2 servers: \(report); API statuses meanwhile: \(statuses.counts.sorted { $0.key < $1.key }), slowest answer \(statuses.slowest)"
            )
            #expect(report.runs == 30 * Self.rounds)
            #expect(report.secondsToFinal < 3.2 + 10, "runs took \(report.secondsToFinal) s to end after the last restart")
            #expect(statuses.counts.keys.allSatisfy { [200, 202, 503].contains($0) }, "API statuses during the restarts: \(statuses.counts)")
            #expect(statuses.slowest < .seconds(8), "an API request took \(statuses.slowest) during the restarts")
        }
    }

    @Test(
        "PostgreSQL stalled (SIGSTOP) for longer than the lease: the API answers 503 with Retry-After meanwhile, /healthz at once; afterwards every run succeeds, none twice"
    )
    func stalledDatabase() async throws {
        let shortDeadlines: @Sendable (inout DatabaseConfiguration) -> Void = { database in
            database.acquireTimeout = .seconds(1)
            database.statementTimeout = .seconds(2)
        }
        try await PrivateCluster.withStore("stall", configure: shortDeadlines) { cluster, store in
            try await store.apply(Self.chain)
            let lease = Duration.seconds(2)
            try await withLiveServer(on: store, script: Self.script, engine: Self.engineConfiguration(lease: lease)) { server in
                let runs = try await startRuns(store, workflow: "chain", count: 24)
                try await Task.sleep(for: .milliseconds(150))
                cluster.pause()
                let stalledAt = ContinuousClock.now
                // While PostgreSQL answers nothing: the API fails fast and says when to retry.
                let clock = ContinuousClock()
                var reply = try await server.request(.GET, "/v1/runs", key: store.apiKey)
                let health = try await server.request(.GET, "/healthz", key: nil)
                let waited = clock.now - stalledAt
                #expect(reply.status == 503)
                #expect(reply.errorCode == "database_unavailable")
                #expect(reply.headers.first(name: "Retry-After") != nil)
                #expect(waited < .seconds(6), "the API took \(waited) to answer while the database was stalled")
                #expect(health.status == 200)
                // Stalled past the lease: the engine must not have given its steps up for good.
                let left = lease + .seconds(2) - (clock.now - stalledAt)
                if left > .zero { try await Task.sleep(for: left) }
                cluster.resume()
                let report = try await FaultInvariants.check(store, runs: runs, within: lease + .seconds(25))
                print("fault suite: PostgreSQL stalled \(lease + .seconds(2)) with 24 runs in flight: \(report)")
                reply = try await server.request(.GET, "/v1/runs?limit=1", key: store.apiKey)
                #expect(reply.status == 200)
            }
        }
    }

    @Test(
        "two yard serve processes, one of them killed with SIGKILL four times mid-step and restarted: every run succeeds, no step committed twice, one ledger row per call"
    )
    func sigkillOnTwoServers() async throws {
        try await withTestStore { store in
            try await store.apply(Self.chain)
            let directory = NSTemporaryDirectory() + "switchyard-kill-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try Self.script.write(toFile: directory + "/script.yaml", atomically: true, encoding: .utf8)
            try """
            port: 0
            admin_key: kill-test
            engine: { lease: 2s, heartbeat: 500ms, poll: 200ms, concurrency: 16, shutdown_grace: 1s }
            experts:
              flash: { provider: scripted, script: script.yaml }
              pro: { provider: scripted, script: script.yaml }
            """.write(toFile: directory + "/config.yaml", atomically: true, encoding: .utf8)
            let log = directory + "/server.log"
            func start() throws -> Process {
                try CrashRecoveryTests.startServer(config: directory + "/config.yaml", database: store.database.configuration, log: log)
            }
            var servers = [try start(), try start()]
            defer {
                for server in servers where server.isRunning {
                    kill(server.processIdentifier, SIGKILL)
                    server.waitUntilExit()
                }
            }
            var random = SplitMix64(seed: Self.seed &+ 7)
            var runs: [UUID] = []
            for _ in 0..<Self.rounds {
                runs += try await startRuns(store, workflow: "chain", count: 15)
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...700, using: &random)))
                let victim = Int.random(in: 0..<servers.count, using: &random)
                kill(servers[victim].processIdentifier, SIGKILL)
                servers[victim].waitUntilExit()
                servers[victim] = try start()
            }
            let report = try await FaultInvariants.check(store, runs: runs, within: .seconds(40) + .seconds(5 * Self.rounds))
            print("fault suite: 2 yard serve processes, \(Self.rounds) SIGKILLs mid-step: \(report)")
            #expect(report.runs == 15 * Self.rounds, "server log: \((try? String(contentsOfFile: log, encoding: .utf8))?.suffix(2000) ?? "")")
        }
    }

    @Test(
        "a provider and a tool that accept the request and never answer: the steps fail at their timeouts, the runs end, nothing is left reserved or running"
    )
    func silentUpstreams() async throws {
        let upstream = try SilentUpstream()
        let silent = ExpertConfiguration(
            provider: .openai, model: "deepseek-v4-flash", baseURL: upstream.url, connectTimeout: TimeSpan(milliseconds: 500),
            readTimeout: TimeSpan(milliseconds: 800), maxRetries: 0)
        try await withLiveServer(engine: Self.engineConfiguration(), egress: ["127.0.0.1"], experts: ["flash": silent, "pro": silent]) { server in
            let store = server.store
            try await store.apply(
                """
                kind: Tool
                name: hangs
                description: Never answers.
                http: { method: GET, url: "\(upstream.url)/lookup", timeout: 600ms }
                ---
                kind: Workflow
                name: ask
                steps:
                  - id: ask
                    model: flash
                    prompt: "anyone there?"
                ---
                kind: Workflow
                name: look
                steps:
                  - id: look
                    tool: hangs
                """)
            let clock = ContinuousClock()
            let started = clock.now
            let runs = try await startRuns(store, workflow: "ask", count: 4) + startRuns(store, workflow: "look", count: 4)
            let report = try await FaultInvariants.check(store, runs: runs, within: .seconds(20), expectAllSucceeded: false)
            #expect(report.succeeded == 0)
            #expect(clock.now - started < .seconds(15), "the runs took \(clock.now - started) to end")
            for id in runs {
                let run = try #require(try await store.runs.run(id, tenant: store.tenant.id))
                #expect(run.status == .failed)
                let code = run.steps.first?.error?.code
                #expect(code == "model_error" || code == "timeout" || code == "tool_error", "\(String(describing: run.steps.first?.error))")
            }
            print("fault suite: silent provider and tool: \(report)")
        }
    }

    @Test("an engine cancelled (as `yard bench engine` ends) with steps in flight stops within a second, every time in a seeded loop")
    func cancellationEndsTheEngine() async throws {
        try await withTestStore { store in
            try await store.apply(Self.chain)
            var random = SplitMix64(seed: Self.seed &+ 3)
            let slow = """
                - match: "think about"
                  reply: "thought"
                  delay: 5s
                """
            for round in 0..<(Self.rounds * 5 / 2) {
                let engine = try makeEngine(
                    on: store.database, script: round.isMultiple(of: 2) ? slow : Self.script, configuration: Self.engineConfiguration())
                _ = try await startRuns(store, workflow: "chain", count: 6)
                let wait = Duration.milliseconds(Int.random(in: 20...400, using: &random))
                let clock = ContinuousClock()
                let stopped = try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await engine.run() }
                    try await Task.sleep(for: wait)
                    let cancelledAt = clock.now
                    group.cancelAll()
                    try await group.waitForAll()
                    return clock.now - cancelledAt
                }
                #expect(stopped < .seconds(1), "round \(round): the engine took \(stopped) to stop")
            }
        }
    }

    @Test("a graceful shutdown waits for running steps only for the grace: then their leases are let go, and another engine runs them at once")
    func shutdownGraceReleasesLeases() async throws {
        try await withTestStore { store in
            try await store.apply(Self.chain)
            var configuration = Self.engineConfiguration(lease: .seconds(30))
            configuration.shutdownGrace = .seconds(1)
            let stuck = """
                - match: "think about"
                  reply: "thought"
                  delay: 10m
                """
            let engine = try makeEngine(on: store.database, script: stuck, configuration: configuration)
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [engine], logger: testLogger("fault.group")))
            let run = try await startRuns(store, workflow: "chain", count: 1)[0]
            let clock = ContinuousClock()
            let stoppedAfter = try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                _ = try await store.wait(forStep: "think", of: run, until: [.running])
                try await Task.sleep(for: .milliseconds(300))
                let asked = clock.now
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return clock.now - asked
            }
            #expect(stoppedAfter < .seconds(4), "the engine took \(stoppedAfter) to stop with a stuck step (grace 1 s)")
            // The lease was let go, not left for its 30 s: another engine takes the step now.
            let started = clock.now
            try await withEngines(1, on: store, script: Self.script, configuration: Self.engineConfiguration(lease: .seconds(30))) { _ in
                let finished = try await store.wait(for: run, timeout: .seconds(15))
                #expect(finished.status == .succeeded)
                #expect(finished.steps.first { $0.id == "think" }?.attempts == 2)
            }
            #expect(clock.now - started < .seconds(10), "the step waited \(clock.now - started) for its released lease")
        }
    }

    @Test(
        "a step stuck past its runtime bound is no longer kept alive by the heartbeat: its lease lapses and another server runs it; the stuck attempt's late outcome is fenced out"
    )
    func stuckStepsLoseTheirLease() async throws {
        try await withTestStore { store in
            try await store.apply(Self.chain)
            var bounded = Self.engineConfiguration(lease: .seconds(2))
            bounded.maxStepRuntime = .seconds(1)
            // One slot: the stuck step keeps it, so this server cannot take the step back.
            bounded.concurrency = 1
            let stuck = """
                - match: "think about"
                  reply: "late thought"
                  delay: 6s
                """
            let run = try await startRuns(store, workflow: "chain", count: 1)[0]
            let stuckEngine = try makeEngine(on: store.database, script: stuck, configuration: bounded)
            let clock = ContinuousClock()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await stuckEngine.run() }
                defer { group.cancelAll() }
                _ = try await store.wait(forStep: "think", of: run, until: [.running])
                let started = clock.now
                // Without the bound the heartbeat would renew the stuck step's lease for
                // as long as its process lives; with it, a healthy server takes over.
                try await withEngines(1, on: store, script: Self.script, configuration: Self.engineConfiguration(lease: .seconds(2))) { _ in
                    let finished = try await store.wait(for: run, timeout: .seconds(20))
                    #expect(finished.status == .succeeded)
                    #expect(finished.output == ["result": "answered!"])
                    #expect(finished.steps.first { $0.id == "think" }?.attempts == 2)
                    #expect(clock.now - started < .seconds(5), "the stuck step held its lease for \(clock.now - started)")
                    // The stuck attempt answers later; its completion changes nothing.
                    try await Task.sleep(for: .seconds(5))
                    let events = try await store.events(of: run)
                    #expect(events.filter { $0.type == "step.succeeded" && $0.stepID == "think" }.count == 1)
                    #expect(try await store.runs.run(run, tenant: store.tenant.id)?.output == ["result": "answered!"])
                }
            }
        }
    }
}
