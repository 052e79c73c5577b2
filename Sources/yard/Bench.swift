import PostgresNIO
import ArgumentParser
import Foundation
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks that print figures.", subcommands: [EngineBench.self, GateBench.self, LocalBench.self])
}

/// `yard bench engine`: no-op runs through the real engine and database, printing
/// throughput and trigger-to-first-step latency. Figures, not assertions: run it on a
/// quiet machine and compare ratios.
struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine", abstract: "Measure engine throughput (no-op runs per second) and trigger-to-first-step latency.")

    @Option(help: "Runs to push through for the throughput figure.")
    var runs = 2000

    @Option(help: "Transform steps per run, in a chain.")
    var steps = 3

    @Option(help: "Single runs to time for the latency figure.")
    var samples = 200

    @Option(help: "Engine concurrency.")
    var concurrency = 64

    @Option(help: "Folder for the embedded PostgreSQL cluster when DATABASE_URL is not set.")
    var dataDir: String?

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let bootstrap = try DatabaseBootstrap.resolve(url: nil, dataDirectory: dataDir)
        defer { bootstrap.stop() }
        var configuration = bootstrap.configuration
        configuration.maxConnections = 40
        let database = Database(configuration: configuration)
        let stepCount = steps
        let runCount = runs
        let sampleCount = samples
        var engineConfiguration = EngineConfiguration()
        engineConfiguration.concurrency = concurrency
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            try await database.checkReachable()
            try await ProjectFiles.prepare(database)
            let (tenant, _) = try await TenantRepository(database: database).createTenant(name: "bench-\(UUID().uuidString.prefix(8).lowercased())")
            var yaml = "kind: Workflow\nname: noop\nsteps:\n"
            for index in 0..<stepCount {
                yaml += "  - id: s\(index)\n    transform: \"\(index)\"\n" + (index > 0 ? "    needs: [s\(index - 1)]\n" : "")
            }
            let documents = try ResourceLoader().loadAndValidate(yaml, file: "bench.yaml", catalog: ResourceCatalog())
            let resources = ResourceRepository(database: database)
            _ = try await resources.apply(documents, tenant: tenant.id)
            guard let stored = try await resources.find(kind: .workflow, name: "noop", tenant: tenant.id), case .workflow(let spec) = stored.resource else {
                throw CLIError("the benchmark workflow was not stored")
            }
            let runs = RunRepository(database: database)
            let engine = Engine(
                database: database, experts: ExpertPool([]), tools: ToolEnvironment(runner: ToolRunner(logger: Logger(label: "bench.tools"))),
                configuration: engineConfiguration)
            group.addTask { try await engine.run() }

            // Latency: one run at a time on an idle engine, trigger commit to step start.
            var latencies: [Double] = []
            for _ in 0..<sampleCount {
                let (run, _) = try await runs.createRun(
                    tenant: tenant.id, workflow: "noop", version: stored.version, spec: spec, input: [:], idempotencyKey: nil, notify: engine.isSaturated)
                engine.poke()
                while try await runs.status(of: run.id, tenant: tenant.id)?.isFinal != true {
                    try await Task.sleep(for: .milliseconds(1))
                }
                for try await milliseconds in try await database.query(
                    """
                    SELECT (extract(epoch FROM (min(e.created_at) - r.created_at)) * 1000)::float8
                    FROM run_events e JOIN runs r ON r.tenant_id = e.tenant_id AND r.id = e.run_id
                    WHERE e.tenant_id = \(tenant.id) AND e.run_id = \(run.id) AND e.type = 'step.started'
                    GROUP BY r.created_at
                    """
                ).decode(Double.self) {
                    latencies.append(milliseconds)
                }
            }
            latencies.sort()
            func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }

            // Throughput: create all runs, then time until the last one finishes.
            let clock = ContinuousClock()
            let start = clock.now
            try await withThrowingTaskGroup(of: Void.self) { creators in
                for worker in 0..<8 {
                    creators.addTask {
                        for _ in stride(from: worker, to: runCount, by: 8) {
                            // As the API does: wake other engines only when this one is full.
                            _ = try await runs.createRun(
                                tenant: tenant.id, workflow: "noop", version: stored.version, spec: spec, input: [:], idempotencyKey: nil,
                                notify: engine.isSaturated)
                            engine.poke()
                        }
                    }
                }
                try await creators.waitForAll()
            }
            let created = clock.now - start
            while true {
                let live = try await database.query(
                    "SELECT count(*)::int8 FROM runs WHERE tenant_id = \(tenant.id) AND status NOT IN ('succeeded', 'failed', 'cancelled')"
                ).decode(Int.self).first { _ in true } ?? 0
                if live == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let createdSeconds = Double(created.components.seconds) + Double(created.components.attoseconds) / 1e18
            print("engine benchmark: \(runCount) runs of \(stepCount) no-op steps, concurrency \(engineConfiguration.concurrency)")
            print(String(format: "  throughput: %.0f runs/s (%.0f steps/s); all runs created after %.2f s, all finished after %.2f s", Double(runCount) / seconds, Double(runCount * stepCount) / seconds, createdSeconds, seconds))
            print(String(format: "  trigger to first step (%d idle samples): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms", latencies.count, percentile(0.5), percentile(0.9), percentile(0.99)))
            group.cancelAll()
        }
    }
}
