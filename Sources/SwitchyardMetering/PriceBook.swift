import Foundation

/// All price rows, and the rule that picks the one pricing a call.
///
/// Why prefix matching: providers bill dated variants (`deepseek-v4-flash-0731`)
/// under the family's price, and the response's `model` field says what actually
/// ran. The rule, in full (``price(forBilledModel:at:)``):
///
/// 1. Candidates are rows whose `model` is a byte-wise, case-sensitive prefix of
///    the billed model and whose `effectiveFrom` ≤ the call's start.
/// 2. Among them the longest `model` wins; within that model, the latest
///    `effectiveFrom` wins. So a more specific name that has no row in force
///    yet falls back to the shorter name's row in force, exactly as before
///    the specific row was added.
/// 3. Peak or off-peak rates follow from the call's start (UTC weekday, hour).
///
/// No candidate → `nil`: the caller meters tokens and flags the call as
/// unpriced; it is never billed as zero silently.
public struct PriceBook: Sendable, Hashable {
    /// Rows sorted by model, then effective instant.
    public let rows: [PriceRow]

    /// Refuses two rows with the same id, or the same model and effective instant
    /// (which would make the choice between them arbitrary).
    public init(rows: [PriceRow]) throws(MeteringError) {
        var ids: Set<String> = []
        var keys: Set<String> = []
        for row in rows {
            guard ids.insert(row.id).inserted else {
                throw MeteringError(.duplicatePriceRow, "two price rows have the id '\(row.id)'; ids must be unique because ledger rows cite them")
            }
            guard keys.insert("\(row.model)\u{0}\(UTCTime.seconds(row.effectiveFrom))").inserted else {
                throw MeteringError(
                    .duplicatePriceRow,
                    "two price rows for '\(row.model)' take effect at \(UTCTime.format(row.effectiveFrom)); give one a different effective instant")
            }
        }
        self.rows = rows.sorted { ($0.model, $0.effectiveFrom) < ($1.model, $1.effectiveFrom) }
    }

    public func row(id: String) -> PriceRow? {
        rows.first { $0.id == id }
    }

    /// The row and rates that price a call to `billedModel` starting at `start`,
    /// by the rule in the type's documentation; `nil` when no row applies.
    public func price(forBilledModel billedModel: String, at start: Date) -> (row: PriceRow, rates: RateSet)? {
        guard let row = row(forBilledModel: billedModel, at: start) else { return nil }
        return (row, row.rates(at: start))
    }

    /// The row alone (for callers that price later or record the id).
    public func row(forBilledModel billedModel: String, at start: Date) -> PriceRow? {
        var best: PriceRow?
        for row in rows where row.effectiveFrom <= start && billedModel.utf8.starts(with: row.model.utf8) {
            guard let current = best else {
                best = row
                continue
            }
            let longer = row.model.utf8.count > current.model.utf8.count
            let sameModelLater = row.model == current.model && row.effectiveFrom > current.effectiveFrom
            if longer || sameModelLater { best = row }
        }
        return best
    }

    /// The component-wise highest rates any row could apply to `model` for a
    /// call starting anywhere in `window` (peak hours included, and any row
    /// that takes effect inside the window). This is what a reservation made
    /// at `window.lowerBound` for a call that may start as late as
    /// `window.upperBound` must use. `nil` when the model is unpriced at
    /// `window.lowerBound` and at every later row change in the window.
    public func upperBoundRates(forModel model: String, during window: ClosedRange<Date>) -> RateSet? {
        var instants = [window.lowerBound]
        instants += rows.map(\.effectiveFrom).filter { $0 > window.lowerBound && $0 <= window.upperBound }
        var bound: RateSet?
        for instant in instants {
            guard let row = row(forBilledModel: model, at: instant) else { continue }
            bound = bound.map { $0.componentMaximum(row.upperBoundRates) } ?? row.upperBoundRates
        }
        return bound
    }
}
