import Foundation
import NIOHTTP1
import PostgresNIO
import SwitchyardCore
import SwitchyardEngine
import SwitchyardServer
import SwitchyardStore
import Testing

/// Retention: pruning deletes exactly the finished runs past their retention with all
/// their rows, and nothing else (live runs, recent runs, a finished child whose parent
/// is live, other tenants' runs, the ledger); cost reports give the same totals after;
/// two servers pruning at once take disjoint batches; a bad retention is refused with
/// its place and changes nothing.
@Suite("Retention: pruning finished runs")
struct RetentionTests {
    static let workflows = """
        kind: Workflow
        name: talk
        steps:
          - id: ask
            model: flash
            prompt: "Say hi"
          - id: tidy
            needs: [ask]
            transform: "{{ steps.ask.output | upper }}"
        ---
        kind: Workflow
        name: gated
        steps:
          - id: approval
            wait_for: approval
        ---
        kind: Workflow
        name: parent
        steps:
          - id: call
            workflow: talk
          - id: hold
            needs: [call]
            wait_for: go
        """

    /// Rows of each run-owned table per run, to compare before and after.
    static func rows(of runs: [UUID], tenant: UUID, database: Database) async throws -> [UUID: [Int]] {
        var result: [UUID: [Int]] = [:]
        for run in runs {
            var counts: [Int] = []
            for table in ["runs", "steps", "run_events", "signals", "model_calls"] {
                let column = table == "runs" ? "id" : "run_id"
                let count =
                    try await database.query(
                        "SELECT count(*)::int8 FROM \(unescaped: table) WHERE tenant_id = \(tenant) AND \(unescaped: column) = \(run)"
                    ).first(decoding: Int.self) ?? -1
                counts.append(count)
            }
            result[run] = counts
        }
        return result
    }

    /// Moves runs' end (and start) back in time, as if they had finished `days` ago.
    static func age(_ runs: [UUID], tenant: UUID, by interval: String, database: Database) async throws {
        try await database.query(
            """
            UPDATE runs SET finished_at = finished_at - \(interval)::interval, created_at = created_at - \(interval)::interval
            WHERE tenant_id = \(tenant) AND id = ANY(\(runs)::uuid[])
            """)
    }

    static func costs(_ database: Database) async throws -> [CostGroup] {
        try await MeteringRepository(database: database).costs(tenant: nil, groupBy: [.tenant, .workflow, .model, .day], from: nil, to: nil)
    }

    @Test("prune removes exactly the old finished runs and their rows; live, recent, child-of-live, other tenants' runs and the ledger stay")
    func pruneRemovesExactlyTheOldFinishedRuns() async throws {
        try await withEngine { store, _ in
            // A price for the scripted model, so that the ledger has money in it.
            try await store.database.query(
                """
                INSERT INTO prices (id, model, effective_from, input_cache_hit, input_cache_miss, output)
                VALUES ('scripted-flash@2000', 'scripted-flash', '2000-01-01', 1000, 250000, 750000)
                """)
            for document in Self.workflows.components(separatedBy: "---\n") { try await store.apply(document) }
            let old1 = try await store.wait(for: try await store.start("talk").id)
            let old2 = try await store.wait(for: try await store.start("talk").id)
            let signalled = try await store.start("gated")
            _ = try await store.wait(for: signalled.id, until: [.waiting])
            _ = try await store.runs.signal(signalled.id, tenant: store.tenant.id, name: "approval", data: ["by": "ops"])
            _ = try await store.wait(for: signalled.id)
            let recent = try await store.wait(for: try await store.start("talk").id)
            let live = try await store.start("gated")
            _ = try await store.wait(for: live.id, until: [.waiting])
            let parent = try await store.start("parent")
            _ = try await store.wait(forStep: "hold", of: parent.id, until: [.waiting])
            let childID = try #require(
                try await store.database.query("SELECT id FROM runs WHERE tenant_id = \(store.tenant.id) AND parent_run_id = \(parent.id)")
                    .first(decoding: UUID.self))
            // Another tenant with an old finished run.
            let (otherTenant, otherKey) = try await store.tenants.createTenant(name: "other-\(UUID().uuidString.prefix(8).lowercased())")
            let other = TestStore(database: store.database, tenant: otherTenant, apiKey: otherKey)
            try await other.apply(Self.workflows.components(separatedBy: "---\n")[0])
            let otherOld = try await other.wait(for: try await other.start("talk").id)

            let victims = [old1.id, old2.id, signalled.id]
            let keptRuns = [recent.id, live.id, parent.id, childID]
            try await Self.age(victims + [live.id, parent.id, childID], tenant: store.tenant.id, by: "40 days", database: store.database)
            try await Self.age([otherOld.id], tenant: otherTenant.id, by: "40 days", database: store.database)

            let before = try await Self.rows(of: victims + keptRuns, tenant: store.tenant.id, database: store.database)
            let otherBefore = try await Self.rows(of: [otherOld.id], tenant: otherTenant.id, database: store.database)
            #expect((before[old1.id]?[4] ?? 0) == 1, "a talk run makes one ledger row")
            #expect((before[signalled.id]?[3] ?? 0) == 1, "the signalled run has its signal")
            let costsBefore = try await Self.costs(store.database)
            #expect(costsBefore.reduce(0) { $0 + $1.calls } >= 4)
            let ledgerBefore = try await store.database.query("SELECT count(*)::int8 FROM model_calls").first(decoding: Int.self)

            var configuration = RetentionConfiguration()
            configuration.batchSize = 2
            configuration.pause = .milliseconds(1)
            let pruner = Pruner(database: store.database, configuration: configuration)
            let dry = try await pruner.prune(tenant: store.tenant.id, dryRun: true)
            #expect(try await Self.rows(of: victims, tenant: store.tenant.id, database: store.database) == before.filter { victims.contains($0.key) })

            let report = try await pruner.prune(tenant: store.tenant.id)
            var expected = PruneCounts()
            expected.runs = 3
            expected.steps = victims.reduce(0) { $0 + (before[$1]?[1] ?? 0) }
            expected.events = victims.reduce(0) { $0 + (before[$1]?[2] ?? 0) }
            expected.signals = victims.reduce(0) { $0 + (before[$1]?[3] ?? 0) }
            #expect(report.counts == expected)
            #expect(dry.counts == expected, "the dry run counts what the pass deletes")
            #expect(report.tenants == 1)

            let after = try await Self.rows(of: victims + keptRuns, tenant: store.tenant.id, database: store.database)
            for run in victims {
                #expect(after[run] == [0, 0, 0, 0, before[run]?[4] ?? -1], "run \(run): only its ledger rows are left")
            }
            for run in keptRuns {
                #expect(after[run] == before[run], "run \(run) is kept whole")
            }
            #expect(try await Self.rows(of: [otherOld.id], tenant: otherTenant.id, database: store.database) == otherBefore)
            #expect(try await Self.costs(store.database) == costsBefore, "cost reports give the same totals after pruning")
            #expect(try await store.database.query("SELECT count(*)::int8 FROM model_calls").first(decoding: Int.self) == ledgerBefore)

            // A pass over every tenant: the other tenant keeps its run when set to forever.
            let repository = RetentionRepository(database: store.database)
            #expect(try await repository.setRetention(tenant: otherTenant.id, TenantRetention(runs: .forever)))
            let all = try await pruner.prune()
            #expect(all.counts.runs == 0)
            #expect(try await Self.rows(of: [otherOld.id], tenant: otherTenant.id, database: store.database) == otherBefore)
            // …and loses it under the server's default once it has none of its own.
            #expect(try await repository.setRetention(tenant: otherTenant.id, TenantRetention()))
            #expect(try await pruner.prune().counts.runs == 1)
            #expect(try await Self.costs(store.database) == costsBefore)
            // The live parent and its child are pruned once the parent has ended.
            _ = try await store.runs.signal(parent.id, tenant: store.tenant.id, name: "go", data: [:])
            _ = try await store.wait(for: parent.id)
            try await Self.age([parent.id], tenant: store.tenant.id, by: "40 days", database: store.database)
            #expect(try await pruner.prune(tenant: store.tenant.id).counts.runs == 2)
            #expect(try await Self.costs(store.database) == costsBefore)
        }
    }

    @Test("event retention cuts a kept run's log down to its final event, once")
    func eventRetentionTrimsLogs() async throws {
        try await withEngine { store, _ in
            try await store.apply(Self.workflows.components(separatedBy: "---\n")[0])
            let run = try await store.wait(for: try await store.start("talk").id)
            let fresh = try await store.wait(for: try await store.start("talk").id)
            try await Self.age([run.id], tenant: store.tenant.id, by: "2 hours", database: store.database)
            let repository = RetentionRepository(database: store.database)
            #expect(try await repository.setRetention(tenant: store.tenant.id, TenantRetention(events: .span(RetentionPeriod.minimumSetting))))
            let pruner = Pruner(database: store.database, configuration: RetentionConfiguration())
            let eventsBefore = try await store.events(of: run.id)
            let freshBefore = try await store.events(of: fresh.id)
            let report = try await pruner.prune(tenant: store.tenant.id)
            #expect(report.counts.runs == 0)
            #expect(report.counts.trimmedRuns == 1)
            #expect(report.counts.events == eventsBefore.count - 1)
            let left = try await store.events(of: run.id)
            #expect(left.map(\.type) == [RunEventType.runSucceeded.rawValue])
            #expect(try await store.runs.run(run.id, tenant: store.tenant.id)?.steps.count == 2, "the run and its steps stay")
            #expect(try await store.events(of: fresh.id).map(\.seq) == freshBefore.map(\.seq))
            #expect(try await pruner.prune(tenant: store.tenant.id).counts == PruneCounts(), "a trimmed log is not read again")
        }
    }

    @Test("two servers pruning at once take disjoint batches and together delete each old run once", arguments: [false, true])
    func concurrentPrunes(background: Bool) async throws {
        try await withEngine { store, engine in
            try await store.apply("kind: Workflow\nname: noop\nsteps:\n  - id: a\n    transform: \"1\"\n")
            var ids: [UUID] = []
            for _ in 0..<120 { ids.append(try await store.start("noop").id) }
            engine.poke()
            for id in ids { _ = try await store.wait(for: id, timeout: .seconds(60)) }
            try await Self.age(ids, tenant: store.tenant.id, by: "40 days", database: store.database)
            let recent = try await store.wait(for: try await store.start("noop").id)
            var settings = RetentionConfiguration()
            settings.batchSize = 7
            settings.pause = .zero
            let configuration = settings
            // A second server: its own pool on the same database.
            let second = Database(configuration: store.database.configuration, logger: testLogger("test.db2"))
            let (a, b) = try await second.withRunningPool {
                async let first = Pruner(database: store.database, configuration: configuration).prune(background: background)
                async let other = Pruner(database: second, configuration: configuration).prune(background: background)
                return (try await first, try await other)
            }
            #expect(a.counts.runs + b.counts.runs == ids.count, "every old run deleted exactly once (\(a.counts.runs) + \(b.counts.runs))")
            #expect(a.counts.steps + b.counts.steps == ids.count)
            let left = try await store.database.query("SELECT count(*)::int8 FROM runs WHERE tenant_id = \(store.tenant.id)").first(
                decoding: Int.self)
            #expect(left == 1)
            #expect(try await store.runs.run(recent.id, tenant: store.tenant.id) != nil)
        }
    }

    @Test("a bad retention value is 422 with the field's path and changes nothing; a good one applies")
    func retentionSettings() async throws {
        try await withLiveServer { server in
            let path = "/v1/admin/tenants/\(server.store.tenant.id.uuidString.lowercased())/retention"
            let initial = try await server.request(.GET, path, key: server.adminKey)
            #expect(initial.status == 200)
            #expect(initial.json["retention"]?["runs"] == .null)
            #expect(initial.json["retention"]?["effective_runs"]?.stringValue == "30d")
            for (body, field) in [
                (["runs": "5 days"] as JSONValue, "runs"), (["runs": "10m"], "runs"), (["events": 7], "events"),
                (["runs": "7d", "events": "-1h"], "events"),
            ] {
                let reply = try await server.request(.PUT, path, key: server.adminKey, json: body)
                #expect(reply.status == 422, "\(body)")
                #expect(reply.errorCode == "invalid_request")
                #expect(reply.json["error"]?["details"]?.arrayValue?.first?["path"]?.stringValue == field, "\(reply.text)")
            }
            #expect(try await server.request(.GET, path, key: server.adminKey).text == initial.text, "nothing changed")
            let set = try await server.request(.PUT, path, key: server.adminKey, json: ["runs": "7d", "events": "12h"])
            #expect(set.status == 200)
            #expect(set.json["retention"]?["runs"]?.stringValue == "7d")
            #expect(set.json["retention"]?["effective_events"]?.stringValue == "12h")
            let reset = try await server.request(.PUT, path, key: server.adminKey, json: ["events": .null])
            #expect(reset.json["retention"]?["events"] == .null)
            #expect(reset.json["retention"]?["effective_events"]?.stringValue == "7d")
            #expect(try await server.request(.PUT, path, key: server.tenantKey, json: ["runs": "7d"]).status == 403)
            let missing = "/v1/admin/tenants/\(UUID().uuidString.lowercased())/retention"
            #expect(try await server.request(.PUT, missing, key: server.adminKey, json: ["runs": "7d"]).status == 404)

            let badPrune = try await server.request(.POST, "/v1/admin/prune", key: server.adminKey, json: ["older_than": "soon"])
            #expect(badPrune.status == 422)
            #expect(badPrune.json["error"]?["details"]?.arrayValue?.first?["path"]?.stringValue == "older_than")
            let dry = try await server.request(
                .POST, "/v1/admin/prune", key: server.adminKey,
                json: ["tenant": .string(server.store.tenant.id.uuidString), "older_than": "0s", "dry_run": true])
            #expect(dry.status == 200, "\(dry.text)")
            #expect(dry.json["prune"]?["dry_run"] == .bool(true))
            #expect(dry.json["prune"]?["runs"]?.intValue == 0)
            #expect(try await server.request(.POST, "/v1/admin/prune", key: server.tenantKey, json: [:]).status == 403)
            let unknown = try await server.request(.POST, "/v1/admin/prune", key: server.adminKey, json: ["tenant": .string(UUID().uuidString)])
            #expect(unknown.status == 404)
        }
    }

    @Test("`yard prune` and `yard tenants retention` print what the server did")
    func cli() async throws {
        try await withLiveServer { server in
            try await server.store.apply("kind: Workflow\nname: noop\nsteps:\n  - id: a\n    transform: \"1\"\n")
            let run = try await server.store.wait(for: try await server.store.start("noop").id)
            let tenant = server.store.tenant.name
            let set = try await YardCLI.run(["tenants", "retention", tenant, "--runs", "14d"], url: server.url, adminKey: server.adminKey)
            #expect(set.status == 0, "\(set)")
            #expect(set.stdout.contains("runs:   14d"))
            let bad = try await YardCLI.run(["tenants", "retention", tenant, "--runs", "soon"], url: server.url, adminKey: server.adminKey)
            #expect(bad.status != 0)
            let dry = try await YardCLI.run(
                ["prune", "--tenant", tenant, "--older-than", "0s", "--dry-run"], url: server.url, adminKey: server.adminKey)
            #expect(dry.status == 0, "\(dry)")
            #expect(dry.stdout.contains("would delete 1 runs"), "\(dry)")
            let pruned = try await YardCLI.run(["prune", "--tenant", tenant, "--older-than", "0s"], url: server.url, adminKey: server.adminKey)
            #expect(pruned.status == 0, "\(pruned)")
            #expect(pruned.stdout.contains("deleted 1 runs, 1 steps"), "\(pruned)")
            #expect(try await server.store.runs.run(run.id, tenant: server.store.tenant.id) == nil)
        }
    }

    @Test("the retention section of the config file: values, defaults and refusals naming the key")
    func configuration() throws {
        let parsed = try ServerConfiguration.parse(
            "retention:\n  runs: 7d\n  events: 12h\n  ledger: 400d\n  interval: 5m\n  batch_size: 100\n  pause: 50ms\n", file: "c.yaml")
        #expect(parsed.retention.runs == .span(TimeSpan(milliseconds: 7 * 86_400_000)))
        #expect(parsed.retention.events == .span(TimeSpan(milliseconds: 12 * 3_600_000)))
        #expect(parsed.retention.ledger.description == "400d")
        #expect(parsed.retention.interval == .seconds(300))
        #expect(parsed.retention.batchSize == 100)
        #expect(parsed.retention.pause == .milliseconds(50))
        let defaults = try ServerConfiguration.parse("port: 1\n", file: "c.yaml").retention
        #expect(defaults == RetentionConfiguration())
        #expect(defaults.runs.description == "30d")
        #expect(defaults.ledger == .forever)
        #expect(try ServerConfiguration.parse("retention:\n  runs: forever\n  interval: 0s\n", file: "c.yaml").retention.runs == .forever)
        for (text, key) in [
            ("retention:\n  runs: 5\n", "retention.runs"), ("retention:\n  runs: 10m\n", "retention.runs"),
            ("retention:\n  ledger: 30d\n", "retention.ledger"), ("retention:\n  batch_size: 0\n", "retention.batch_size"),
            ("retention:\n  keep: 1d\n", "retention.keep"),
        ] {
            do {
                _ = try ServerConfiguration.parse(text, file: "c.yaml")
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.message.contains(key), "\(error.message)")
            }
        }
    }
}
