import ArgumentParser
import Foundation
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print figures.", subcommands: [EngineBench.self, PruneBench.self, GateBench.self, LocalBench.self])
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
        let bootstrap = try BenchEnvironment.start(dataDirectory: dataDir)
        defer { bootstrap.stop() }
        let database = Database(configuration: bootstrap.configuration)
        let engineConfiguration = BenchEnvironment.engineConfiguration(concurrency: concurrency)
        let (runCount, sampleCount, stepCount) = (runs, samples, steps)
        try await database.withRunningPool {
            try await database.checkReachable()
            try await ProjectFiles.prepare(database)
            let bench = try await EngineBenchmark.prepare(database: database, steps: stepCount)
            let engine = BenchEnvironment.engine(database: database, configuration: engineConfiguration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await engine.run() }
                let latencies = try await bench.latencies(samples: sampleCount, engine: engine)
                let (created, finished) = try await bench.throughput(runs: runCount, engine: engine)
                print("engine benchmark: \(runCount) runs of \(stepCount) no-op steps, concurrency \(engineConfiguration.concurrency)")
                print(
                    String(
                        format: "  throughput: %.0f runs/s (%.0f steps/s); all runs created after %.2f s, all finished after %.2f s",
                        Double(runCount) / finished, Double(runCount * stepCount) / finished, created, finished))
                print(
                    String(
                        format: "  trigger to first step (%d idle samples): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms", latencies.count,
                        latencies.percentile(0.5), latencies.percentile(0.9), latencies.percentile(0.99)))
                group.cancelAll()
            }
        }
    }
}

/// One benchmark tenant with a chain of no-op transform steps, and the two measures.
private struct EngineBenchmark: Sendable {
    let tenant: UUID
    let spec: WorkflowSpec
    let version: Int
    let runs: RunRepository

    static func prepare(database: Database, steps: Int) async throws -> EngineBenchmark {
        let chain = try await NoopChain.create(database: database, steps: steps, tenantPrefix: "bench")
        return EngineBenchmark(tenant: chain.tenant, spec: chain.spec, version: chain.version, runs: RunRepository(database: database))
    }

    /// Creates one run as the API does (waking other engines only when this one is full).
    private func start(_ engine: Engine) async throws -> UUID {
        let (run, _) = try await runs.createRun(
            tenant: tenant, workflow: "noop", version: version, spec: spec, input: [:], idempotencyKey: nil, notify: engine.shouldWakeOthers())
        engine.poke()
        return run.id
    }

    /// Latency: one run at a time on an idle engine, trigger commit to step start, sorted.
    func latencies(samples: Int, engine: Engine) async throws -> [Double] {
        var latencies: [Double] = []
        for _ in 0..<samples {
            let run = try await start(engine)
            while try await runs.status(of: run, tenant: tenant)?.isFinal != true {
                try await Task.sleep(for: .milliseconds(1))
            }
            if let milliseconds = try await runs.triggerLatency(of: run, tenant: tenant) { latencies.append(milliseconds) }
        }
        return latencies.sorted()
    }

    /// Throughput: creates all runs from 8 workers, then waits until the last one
    /// finishes; returns seconds until all were created and until all finished.
    func throughput(runs count: Int, engine: Engine) async throws -> (created: Double, finished: Double) {
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { creators in
            for worker in 0..<8 {
                creators.addTask {
                    for _ in stride(from: worker, to: count, by: 8) { _ = try await self.start(engine) }
                }
            }
            try await creators.waitForAll()
        }
        let created = clock.now - start
        while try await runs.liveRunCount(tenant: tenant) > 0 {
            try await Task.sleep(for: .milliseconds(20))
        }
        return (created.inSeconds, (clock.now - start).inSeconds)
    }
}

/// What every engine benchmark starts from: warning-level logs, the database
/// (`DATABASE_URL`, else an embedded cluster) with room for the engine, and an engine
/// with no experts (the benchmarks' steps are transforms).
enum BenchEnvironment {
    static func start(dataDirectory: String?) throws -> DatabaseBootstrap {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var bootstrap = try DatabaseBootstrap.resolve(url: nil, dataDirectory: dataDirectory)
        bootstrap.configuration.maxConnections = 40
        return bootstrap
    }

    static func engineConfiguration(concurrency: Int) -> EngineConfiguration {
        var configuration = EngineConfiguration()
        configuration.concurrency = concurrency
        return configuration
    }

    static func engine(database: Database, configuration: EngineConfiguration) -> Engine {
        Engine(
            database: database, experts: ExpertPool([]), tools: ToolEnvironment(runner: ToolRunner(logger: Logger(label: "bench.tools"))),
            configuration: configuration)
    }
}

/// A new tenant with a workflow `noop` of `steps` no-op transform steps in a chain:
/// what the engine and retention benchmarks push through.
struct NoopChain: Sendable {
    let tenant: UUID
    let spec: WorkflowSpec
    let version: Int

    static func create(database: Database, steps: Int, tenantPrefix: String) async throws -> NoopChain {
        let name = "\(tenantPrefix)-\(UUID().uuidString.prefix(8).lowercased())"
        let (tenant, _) = try await TenantRepository(database: database).createTenant(name: name)
        var yaml = "kind: Workflow\nname: noop\nsteps:\n"
        for index in 0..<steps {
            yaml += "  - id: s\(index)\n    transform: \"\(index)\"\n" + (index > 0 ? "    needs: [s\(index - 1)]\n" : "")
        }
        let documents = try ResourceLoader().loadAndValidate(yaml, file: "\(tenantPrefix).yaml", catalog: ResourceCatalog())
        let resources = ResourceRepository(database: database)
        _ = try await resources.apply(documents, tenant: tenant.id)
        guard let stored = try await resources.find(kind: .workflow, name: "noop", tenant: tenant.id), case .workflow(let spec) = stored.resource
        else {
            throw CLIError("the benchmark workflow was not stored")
        }
        return NoopChain(tenant: tenant.id, spec: spec, version: stored.version)
    }
}

extension [Double] {
    /// The value at fraction `p` of a sorted array (0 when empty).
    fileprivate func percentile(_ p: Double) -> Double {
        isEmpty ? 0 : self[Swift.min(count - 1, Int(Double(count) * p))]
    }
}
