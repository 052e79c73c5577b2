import Foundation
import Logging
import SwitchyardCore
import SwitchyardExperts
import SwitchyardGate
import SwitchyardMetering
import SwitchyardStore
import Synchronization

/// Meters model calls: reserves each call's worst case against the tenant's budget
/// before anything is sent, and settles the ledger row to the real cost after.
struct CallMetering: Sendable {
    let repository: MeteringRepository
    let queue: StepQueue
    let prices: PriceBookCache
    /// The completion cap sent when a step sets none, so that a reservation bounds it.
    let defaultMaxTokens: Int
    /// How long settling keeps trying while the database is unreachable: the usage is
    /// known, and a reservation left to the sweep would bill its upper bound instead.
    let settleRetryWindow: Duration
    let logger: Logger
    var telemetry: EngineTelemetry = .disabled
    /// Settlements waiting for their step's commit.
    let held = HeldSettlements()

    /// The longest a call is assumed to take when choosing the rates to reserve at: a
    /// call reserved off-peak may run into peak hours, or into a new price row.
    static let longestCall: TimeInterval = 3_600

    /// What was reserved for one call.
    struct Reserved: Sendable {
        var amount: Money
        var priceID: String?
    }

    func reserve(expert: any Expert, request: ModelRequest, claim: ClaimedStep, callIndex: Int, startedAt: Date) async throws(StepFailure) -> Reserved
    {
        let book = try await priceBook()
        var reserved = Reserved(amount: .zero, priceID: nil)
        let rates = book.upperBoundRates(forModel: expert.model, during: startedAt...startedAt.addingTimeInterval(Self.longestCall))
        if let rates {
            // Every answer the call may be billed for: an expert that asks again on its
            // own (JSON mode's blank answers) is billed for each, and settling must not
            // take the tenant past its budget.
            do {
                reserved.amount = try Reservation.worstCase(
                    promptUTF8Bytes: request.promptByteBound, maxTokens: request.maxTokens ?? defaultMaxTokens, rates: rates
                ).multiplied(by: expert.billedAttempts(for: request))
            } catch {
                throw StepFailure(.meteringError, error.message, retryable: false)
            }
            reserved.priceID = book.row(forBilledModel: expert.model, at: startedAt)?.id
        }
        let reservation = CallReservation(
            tenantID: claim.tenantID, runID: claim.runID, stepID: claim.stepID, attempt: claim.attempt, callIndex: callIndex,
            workflow: claim.workflow, expert: expert.name, model: expert.model, priceID: reserved.priceID, amount: reserved.amount,
            startedAt: startedAt)
        let outcome: ReservationOutcome
        do {
            outcome = try await repository.reserve(reservation, priced: rates != nil)
        } catch {
            throw StepFailure.database(error)
        }
        switch outcome {
        case .admitted:
            return reserved
        case .refused(let state):
            telemetry.budgetRefused(expert: expert.name, claim: claim)
            throw StepFailure(
                .budgetExceeded,
                "\(expert.name) could cost up to \(reserved.amount.formatted(decimals: 6)) USD, which does not fit this month's budget: "
                    + "\(state.spent.formatted(decimals: 6)) spent and \(state.reserved.formatted(decimals: 6)) reserved of \(state.limit.formatted(decimals: 2)) USD. "
                    + "Raise the budget, lower max_tokens, or allow on_budget: downgrade",
                retryable: false, budgetPolicy: state.policy)
        case .unpriced(let state):
            telemetry.budgetRefused(expert: expert.name, claim: claim)
            throw StepFailure(
                .budgetExceeded,
                "\(expert.name) calls \(expert.model), which has no price in the price book, so its cost cannot be bounded under the tenant's budget; "
                    + "add a price row for it (yard prices set)",
                retryable: false, budgetPolicy: state.policy)
        }
    }

    /// What metering tells the `auto` gate: lean to flash as the month's budget runs
    /// out (nothing above half left, up to +0.20 on the threshold when it is gone), and
    /// a little (+0.03) while pro's price is at its peak rate. Best effort: without the
    /// figures, no lean.
    func lean(tenant: UUID, proModel pro: String?) async -> GateLean {
        var towardsFlash = 0.0
        var reasons: [String] = []
        if let budget = try? await repository.budget(tenant: tenant), budget.monthlyLimit.picoUSD > 0,
            let (spent, reserved) = try? await repository.spend(tenant: tenant)
        {
            let used = Double(spent.picoUSD + reserved.picoUSD) / Double(budget.monthlyLimit.picoUSD)
            let remaining = max(0, 1 - used)
            if remaining < 0.5 {
                towardsFlash += (0.5 - remaining) * 0.4
                reasons.append("budget \(Int((used * 100).rounded()))% used")
            }
        }
        if let pro, let book = try? await prices.book(from: repository), book.price(forBilledModel: pro, at: Date())?.rates.period == .peak {
            towardsFlash += 0.03
            reasons.append("peak-hour prices")
        }
        return towardsFlash == 0 ? .none : GateLean(towardsFlash: towardsFlash, reason: reasons.joined(separator: ", "))
    }

    private func priceBook() async throws(StepFailure) -> PriceBook {
        do {
            return try await prices.book(from: repository)
        } catch {
            throw StepFailure.database(error, "the price book could not be read: ")
        }
    }

    /// The ledger row of a finished (or failed) call. Tokens and cost are the provider's
    /// when it reported usage; a call billed without reported usage costs its
    /// reservation (an upper bound) and is marked as an estimate; a call the provider
    /// did not bill costs nothing.
    func ledgerRow(
        for result: Result<ModelResponse, ExpertError>, expert: any Expert, reservation: Reserved, claim: ClaimedStep, callIndex: Int,
        startedAt: Date, latency: Int
    ) -> ModelCallRecord {
        var usage: ReportedUsage
        var model = expert.model
        var failure: ExpertError?
        switch result {
        case .success(let response):
            usage = response.usage
            model = response.model
        case .failure(let error):
            failure = error
            if let known = error.usage {
                usage = known
            } else {
                usage = .zero
                usage.usageKnown = !error.billed
            }
        }
        var record = ModelCallRecord(
            tenantID: claim.tenantID, runID: claim.runID, stepID: claim.stepID, attempt: claim.attempt, callIndex: callIndex,
            workflow: claim.workflow, expert: expert.name, model: model, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens,
            cacheHitTokens: usage.cacheHitTokens, cacheMissTokens: usage.cacheMissTokens, reasoningTokens: usage.reasoningTokens,
            usageKnown: usage.usageKnown, priceID: reservation.priceID, cost: nil, latencyMilliseconds: latency, succeeded: failure == nil,
            error: failure?.message, startedAt: startedAt)
        guard usage.usageKnown else {
            // Billed, but how much is unknown: the reservation bounds it.
            record.cost = reservation.priceID == nil ? nil : reservation.amount
            return record
        }
        // The billed model's row; if the provider names a model the book does not price,
        // the configured model's row (the one reserved against), so no spend escapes it.
        guard let book = prices.cached,
            let (row, rates) = book.price(forBilledModel: model, at: startedAt) ?? book.price(forBilledModel: expert.model, at: startedAt)
        else {
            record.priceID = nil
            return record
        }
        record.priceID = row.id
        do {
            let tokens: SwitchyardMetering.TokenUsage
            if usage.cacheHitTokens + usage.cacheMissTokens == usage.promptTokens, usage.promptTokens > 0 {
                tokens = try SwitchyardMetering.TokenUsage(
                    cacheHitTokens: usage.cacheHitTokens, cacheMissTokens: usage.cacheMissTokens, completionTokens: usage.completionTokens,
                    reasoningTokens: min(usage.reasoningTokens, usage.completionTokens))
            } else {
                tokens = try SwitchyardMetering.TokenUsage(
                    promptTokens: usage.promptTokens, completionTokens: usage.completionTokens,
                    reasoningTokens: min(usage.reasoningTokens, usage.completionTokens))
            }
            record.cost = try UsageCost(usage: tokens, rates: rates).total
        } catch {
            logger.error("a call could not be priced", metadata: ["run": "\(claim.runID)", "error": "\(error.message)"])
            record.cost = reservation.amount
            record.usageKnown = false
        }
        return record
    }

    /// Writes the ledger row in place of the reservation, and the call's events
    /// (`model.called`, and `budget.alert` when this call crossed 50, 80 or 100% of the
    /// month's budget). While the database is unreachable it keeps trying for the
    /// retry window; a settlement still not written then is held for the step's
    /// commit, which writes it first (`settleHeld`), so that a step never succeeds
    /// with its calls billed at their reservation's estimate. A call whose step is
    /// never committed is left to the maintenance sweep, which bills its upper bound.
    func settle(_ record: ModelCallRecord, event: NewEvent) async {
        // In a task of its own: a call ended by the run's cancellation (or the step's
        // timeout) runs in a cancelled task, where the pool refuses every query at once,
        // which left the call's row to the sweep's estimate even when its usage was known.
        let settlement = Settlement(record: record, event: event)
        await Task {
            do {
                try await Database.retryingWhileUnavailable(until: .now + settleRetryWindow) { try await write(settlement) }
            } catch  where Database.isUnavailable(error) {
                logger.notice(
                    "a model call's ledger row waits for the database; the step's commit writes it",
                    metadata: [
                        "run": "\(record.runID)", "step": "\(record.stepID)", "error": "\(Database.describe(error))",
                    ])
                held.hold(settlement)
            } catch {
                logger.error(
                    "could not settle a model call",
                    metadata: ["run": "\(record.runID)", "step": "\(record.stepID)", "error": "\(Database.describe(error))"])
            }
        }.value
    }

    /// Writes the settlements held for a step attempt (see `settle`); throws while the
    /// database is unreachable, leaving them held, so the commit's retry loop retries.
    func settleHeld(for attempt: StepAttemptKey) async throws {
        for settlement in held.settlements(of: attempt) {
            do {
                try await write(settlement)
                held.release(settlement)
            } catch  where Database.isUnavailable(error) {
                throw error
            } catch {
                logger.error(
                    "could not settle a model call",
                    metadata: [
                        "run": "\(attempt.runID)", "step": "\(attempt.stepID)", "error": "\(Database.describe(error))",
                    ])
                held.release(settlement)
            }
        }
    }

    /// Forgets what is held for an attempt that will not be committed: its
    /// reservations stay, and the sweep bills them at their upper bound.
    func dropHeld(for attempt: StepAttemptKey) {
        held.drop(attempt)
    }

    private func write(_ settlement: Settlement) async throws {
        let record = settlement.record
        let alerts = try await repository.settle(record)
        var events = [settlement.event]
        for alert in alerts {
            events.append(
                NewEvent(
                    .budgetAlert,
                    data: [
                        "percent": .int(alert.percent), "spent_usd": .string(alert.spent.formatted(decimals: 6)),
                        "limit_usd": .string(alert.limit.formatted(decimals: 2)),
                    ]))
            logger.notice("budget alert", metadata: ["tenant": "\(record.tenantID)", "percent": "\(alert.percent)"])
        }
        // The ledger row is written: from here a failure loses only the events, which
        // the retry must not duplicate by settling again.
        do {
            try await Database.retryingWhileUnavailable(until: .now + settleRetryWindow) {
                try await queue.appendEvents(events, run: record.runID, tenant: record.tenantID)
            }
        } catch {
            logger.warning("a model call's events were not recorded", metadata: ["run": "\(record.runID)", "error": "\(Database.describe(error))"])
        }
    }
}

/// A model call's ledger row and event, ready to be written.
struct Settlement: Sendable {
    var record: ModelCallRecord
    var event: NewEvent
    var key: StepAttemptKey { StepAttemptKey(runID: record.runID, stepID: record.stepID, attempt: record.attempt) }
}

/// Settlements that could not be written while the database was unreachable, by step
/// attempt, until the attempt's commit writes them or gives up.
final class HeldSettlements: Sendable {
    private let state = Mutex<[StepAttemptKey: [Int: Settlement]]>([:])

    func hold(_ settlement: Settlement) {
        state.withLock { $0[settlement.key, default: [:]][settlement.record.callIndex] = settlement }
    }

    func settlements(of attempt: StepAttemptKey) -> [Settlement] {
        state.withLock { ($0[attempt] ?? [:]).sorted { $0.key < $1.key }.map(\.value) }
    }

    func release(_ settlement: Settlement) {
        state.withLock { held in
            held[settlement.key]?[settlement.record.callIndex] = nil
            if held[settlement.key]?.isEmpty == true { held[settlement.key] = nil }
        }
    }

    func drop(_ attempt: StepAttemptKey) {
        _ = state.withLock { $0.removeValue(forKey: attempt) }
    }
}

/// The price book, re-read at most every few seconds: prices change rarely, and a
/// call must not wait for a query to learn them.
final class PriceBookCache: Sendable {
    private let state = Mutex<(book: PriceBook, loaded: ContinuousClock.Instant)?>(nil)
    static let lifetime: Duration = .seconds(5)

    /// The book as last loaded (for pricing a call that just finished).
    var cached: PriceBook? { state.withLock { $0?.book } }

    func book(from repository: MeteringRepository) async throws -> PriceBook {
        if let current = state.withLock({ $0 }), ContinuousClock.now - current.loaded < Self.lifetime { return current.book }
        let book = try await repository.priceBook()
        state.withLock { $0 = (book, .now) }
        return book
    }
}
