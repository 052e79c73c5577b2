import Foundation
import Logging
import ServiceLifecycle
import SwitchyardCore
import SwitchyardStore

/// The server's retention (`retention:` in its config): the defaults for tenants that
/// set none, and how the background pass runs.
public struct RetentionConfiguration: Sendable, Hashable {
    /// Finished runs (with their steps, events and signals) are kept this long. Thirty
    /// days by default: runs and their logs are for looking back at recent work, the
    /// ledger is the record that must last, and a default of forever is how the tables
    /// came to grow without bound.
    public var runs: RetentionPeriod = .span(TimeSpan(milliseconds: 30 * 86_400_000))
    /// A finished run's log is cut down to its final event after this long (the run and
    /// its steps stay until `runs`); nil: as long as the run.
    public var events: RetentionPeriod?
    /// Ledger rows (`model_calls`) older than this are deleted; forever by default,
    /// since the ledger is the bill. When set it must cover at least two months, since
    /// budgets sum this month's ledger.
    public var ledger: RetentionPeriod = .forever
    /// How often the background pass runs; zero turns it off (`yard prune` and the
    /// admin route still work).
    public var interval: Duration = .seconds(600)
    /// Runs per transaction.
    public var batchSize = 500
    /// The pause between batches, which lets other transactions (and autovacuum) in.
    public var pause: Duration = .milliseconds(200)

    /// The shortest ledger retention accepted: two months, so that budget admission
    /// (this month's ledger sum) never loses a row it counts.
    public static let minimumLedger = TimeSpan(milliseconds: 62 * 86_400_000)

    public init() {}
}

/// What one pruning pass did (or, in a dry run, would do).
public struct PruneReport: Sendable, Hashable {
    public var dryRun: Bool
    /// Tenants looked at.
    public var tenants = 0
    /// Tenants skipped because another server was pruning them (background passes only).
    public var busyTenants = 0
    public var counts = PruneCounts()

    public init(dryRun: Bool) { self.dryRun = dryRun }
}

/// Applies retention: for each tenant, its effective retention (the tenant's own, else
/// the server's), then batches of ``RetentionRepository`` with a pause between them.
/// Used by the background ``RetentionService``, the admin route and `yard bench prune`.
public struct Pruner: Sendable {
    public let repository: RetentionRepository
    public let configuration: RetentionConfiguration
    let logger: Logger

    public init(database: Database, configuration: RetentionConfiguration, logger: Logger = Logger(label: "switchyard.retention")) {
        self.repository = RetentionRepository(database: database)
        self.configuration = configuration
        self.logger = logger
    }

    /// The retention that applies to a tenant's runs and to its event logs.
    public func effective(_ retention: TenantRetention) -> (runs: RetentionPeriod, events: RetentionPeriod) {
        let runs = retention.runs ?? configuration.runs
        let events = (retention.events ?? configuration.events ?? runs).shorter(runs)
        return (runs, events)
    }

    /// Prunes one tenant, or every tenant when `tenant` is nil.
    ///
    /// `olderThan` replaces the runs' retention for this pass (`yard prune
    /// --older-than`), except for a tenant whose own setting is `forever`: that is a
    /// promise made to the tenant, changed only by changing the setting. A pass given
    /// `olderThan` prunes runs only. `background` passes skip a tenant another server is
    /// pruning at that moment; others wait for its batch to commit.
    public func prune(
        tenant only: UUID? = nil, olderThan: TimeSpan? = nil, dryRun: Bool = false, background: Bool = false
    ) async throws
        -> PruneReport
    {
        var report = PruneReport(dryRun: dryRun)
        let tenants = try await repository.tenantsForPruning().filter { only == nil || $0.tenant == only }
        for (tenant, retention) in tenants {
            try Task.checkCancellation()
            report.tenants += 1
            var (runs, events) = effective(retention)
            if let olderThan, retention.runs != .forever {
                runs = .span(olderThan)
                events = .forever
            } else if olderThan != nil {
                continue
            }
            let ledger = olderThan == nil ? configuration.ledger.milliseconds : nil
            if dryRun {
                let counted = try await repository.countPrunable(
                    tenant: tenant, runsOlderThan: runs.milliseconds, eventsOlderThan: events == runs ? nil : events.milliseconds,
                    ledgerOlderThan: ledger)
                report.counts = report.counts + counted
                continue
            }
            guard let counts = try await prune(tenant: tenant, runs: runs, events: events, ledger: ledger, background: background) else {
                report.busyTenants += 1
                continue
            }
            report.counts = report.counts + counts
        }
        return report
    }

    /// One tenant's batches; nil when a background pass found it busy.
    private func prune(
        tenant: UUID, runs: RetentionPeriod, events: RetentionPeriod, ledger: Int64?, background: Bool
    ) async throws
        -> PruneCounts?
    {
        let limit = max(1, configuration.batchSize)
        var total = PruneCounts()
        if let cutoff = runs.milliseconds {
            while true {
                guard let batch = try await repository.pruneRuns(tenant: tenant, olderThan: cutoff, limit: limit, wait: !background) else {
                    return total.runs == 0 ? nil : total
                }
                total = total + batch
                guard batch.runs == limit else { break }
                try await Task.sleep(for: configuration.pause)
            }
        }
        if let cutoff = events.milliseconds, events != runs {
            while true {
                guard let batch = try await repository.trimEvents(tenant: tenant, olderThan: cutoff, limit: limit, wait: !background) else {
                    return total
                }
                total = total + batch
                guard batch.trimmedRuns == limit else { break }
                try await Task.sleep(for: configuration.pause)
            }
        }
        if let ledger {
            while true {
                let deleted = try await repository.pruneLedger(tenant: tenant, olderThan: ledger, limit: limit * 10)
                total.ledgerRows += deleted
                guard deleted == limit * 10 else { break }
                try await Task.sleep(for: configuration.pause)
            }
        }
        return total
    }
}

/// The background pass: every `retention.interval`, prunes every tenant. Several
/// servers may run it at once; they skip each other's tenant of the moment (an
/// advisory lock per tenant) and take disjoint batches (`SKIP LOCKED`).
public struct RetentionService: Service {
    let pruner: Pruner
    let logger: Logger

    public init(database: Database, configuration: RetentionConfiguration, logger: Logger = Logger(label: "switchyard.retention")) {
        self.pruner = Pruner(database: database, configuration: configuration, logger: logger)
        self.logger = logger
    }

    public func run() async throws {
        let interval = pruner.configuration.interval
        guard interval > .zero else {
            // Off: wait for the shutdown like any other service, doing nothing.
            await cancelWhenGracefulShutdown { await Self.sleepUntilCancelled() }
            return
        }
        let failures = FailureLog("pruning", logger: logger)
        await cancelWhenGracefulShutdown {
            // Servers started together should not all prune at the same moment.
            var pause = Duration.milliseconds(Int64.random(in: 0...max(1, interval.inMilliseconds)))
            while true {
                do {
                    try await Task.sleep(for: pause)
                } catch {
                    return
                }
                pause = interval
                do {
                    let report = try await pruner.prune(background: true)
                    failures.succeeded()
                    let counts = report.counts
                    if counts.runs + counts.trimmedRuns + counts.ledgerRows > 0 {
                        logger.info(
                            "pruned",
                            metadata: [
                                "runs": "\(counts.runs)", "steps": "\(counts.steps)", "events": "\(counts.events)", "signals": "\(counts.signals)",
                                "trimmed_runs": "\(counts.trimmedRuns)", "ledger_rows": "\(counts.ledgerRows)",
                            ])
                    }
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    failures.failed(error)
                }
            }
        }
    }

    private static func sleepUntilCancelled() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(3600))
        }
    }
}
