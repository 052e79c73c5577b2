import ArgumentParser
import Foundation
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardStore
import SwitchyardTools

/// `yard bench prune`: the retention soak. Pushes runs through the real engine in
/// rounds; after each round prunes every finished run, vacuums the tables as autovacuum
/// would, and prints table and index sizes, live and dead rows at each stage. Sizes
/// that stay flat from round to round are the proof that pruning keeps the tables
/// bounded (freed space is reused); `Scripts/retention-soak.sh` runs it.
struct PruneBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Soak retention: push runs through, prune, vacuum, and print table sizes before and after.")

    @Option(help: "Runs to push through in all.")
    var runs = 100_000

    @Option(help: "Rounds of push, prune, vacuum (the runs are split between them).")
    var rounds = 4

    @Option(help: "Transform steps per run, in a chain.")
    var steps = 3

    @Option(help: "Runs per pruning transaction.")
    var batch = 500

    @Option(help: "Engine concurrency.")
    var concurrency = 64

    @Option(help: "Folder for the embedded PostgreSQL cluster when DATABASE_URL is not set.")
    var dataDir: String?

    func validate() throws {
        guard runs >= 1, rounds >= 1, runs >= rounds, steps >= 1, batch >= 1 else {
            throw ValidationError("--runs, --rounds, --steps and --batch must be positive, and --runs at least --rounds")
        }
    }

    func run() async throws {
        // Each round's figures as it ends, also through `tee` (Scripts/retention-soak.sh).
        Console.useLineBuffering()
        let bootstrap = try BenchEnvironment.start(dataDirectory: dataDir)
        defer { bootstrap.stop() }
        var configuration = bootstrap.configuration
        // VACUUM of a large table takes longer than an API call may.
        configuration.statementTimeout = .seconds(3600)
        let database = Database(configuration: configuration)
        let engineConfiguration = BenchEnvironment.engineConfiguration(concurrency: concurrency)
        var retention = RetentionConfiguration()
        retention.batchSize = batch
        let (total, roundCount, stepCount) = (runs, rounds, steps)
        try await database.withRunningPool {
            try await database.checkReachable()
            try await ProjectFiles.prepare(database)
            let soak = try await RetentionSoak.prepare(database: database, steps: stepCount)
            let pruner = Pruner(database: database, configuration: retention)
            let engine = BenchEnvironment.engine(database: database, configuration: engineConfiguration)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await engine.run() }
                print("retention soak: \(total) runs of \(stepCount) no-op steps in \(roundCount) rounds; prune batches of \(retention.batchSize)")
                var pushed = 0
                var sizesAfterPush: [Int64] = []
                for round in 1...roundCount {
                    let count = total / roundCount + (round <= total % roundCount ? 1 : 0)
                    let pushTime = try await soak.push(runs: count, engine: engine)
                    pushed += count
                    let before = try await soak.sizes()
                    sizesAfterPush.append(before.reduce(0) { $0 + $1.totalBytes })
                    let clock = ContinuousClock()
                    let started = clock.now
                    let report = try await pruner.prune(tenant: soak.tenant, olderThan: TimeSpan(milliseconds: 0))
                    let pruneTime = (clock.now - started).inSeconds
                    let afterPrune = try await soak.sizes()
                    let vacuumStarted = clock.now
                    try await pruner.repository.vacuum()
                    let vacuumTime = (clock.now - vacuumStarted).inSeconds
                    let afterVacuum = try await soak.sizes()
                    let c = report.counts
                    print(
                        String(
                            format: "round %d/%d: pushed %d runs in %.1f s (%.0f runs/s), %d in all", round, roundCount, count, pushTime,
                            Double(count) / max(pushTime, 0.001), pushed))
                    print(
                        String(
                            format: "  pruned %d runs, %d steps, %d events, %d signals in %.1f s (%.0f runs/s); VACUUM (ANALYZE) %.1f s",
                            c.runs, c.steps, c.events, c.signals, pruneTime, Double(c.runs) / max(pruneTime, 0.001), vacuumTime))
                    RetentionSoak.print(stages: [("after push", before), ("after prune", afterPrune), ("after vacuum", afterVacuum)])
                }
                let figures = sizesAfterPush.map { String(format: "%.1f MB", Double($0) / 1_048_576) }
                print("all tables after each round's runs: \(figures.joined(separator: ", "))")
                group.cancelAll()
            }
        }
    }
}

/// One soak tenant with a chain of no-op steps, and the measures.
private struct RetentionSoak: Sendable {
    let tenant: UUID
    let spec: WorkflowSpec
    let version: Int
    let runs: RunRepository
    let retention: RetentionRepository

    static func prepare(database: Database, steps: Int) async throws -> RetentionSoak {
        let chain = try await NoopChain.create(database: database, steps: steps, tenantPrefix: "soak")
        return RetentionSoak(
            tenant: chain.tenant, spec: chain.spec, version: chain.version, runs: RunRepository(database: database),
            retention: RetentionRepository(database: database))
    }

    /// Creates `count` runs from 8 workers and waits until all have finished; returns seconds.
    func push(runs count: Int, engine: Engine) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { creators in
            for worker in 0..<8 {
                creators.addTask {
                    for _ in stride(from: worker, to: count, by: 8) {
                        _ = try await runs.createRun(
                            tenant: tenant, workflow: "noop", version: version, spec: spec, input: [:], idempotencyKey: nil,
                            notify: engine.isSaturated)
                        engine.poke()
                    }
                }
            }
            try await creators.waitForAll()
        }
        while try await runs.liveRunCount(tenant: tenant) > 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        return (clock.now - start).inSeconds
    }

    /// The tables' sizes, once PostgreSQL's statistics have caught up with the last commits.
    func sizes() async throws -> [TableSize] {
        try await Task.sleep(for: .milliseconds(1500))
        return try await retention.tableSizes()
    }

    static func print(stages: [(String, [TableSize])]) {
        func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1_048_576) }
        var table = [["  stage", "table", "live rows", "dead rows", "total size", "indexes"]]
        for (stage, sizes) in stages {
            for size in sizes {
                table.append([
                    "  " + stage, size.table, "\(size.liveRows)", "\(size.deadRows)", megabytes(size.totalBytes), megabytes(size.indexBytes),
                ])
            }
            let sum = sizes.reduce(Int64(0)) { $0 + $1.totalBytes }
            table.append(["  " + stage, "(all)", "", "", megabytes(sum), megabytes(sizes.reduce(Int64(0)) { $0 + $1.indexBytes })])
        }
        var widths = table[0].map(\.count)
        for row in table { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        for row in table {
            Swift.print(
                row.enumerated().map { i, cell in
                    i < 2
                        ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - cell.count) + cell
                }.joined(separator: "  "))
        }
    }
}
