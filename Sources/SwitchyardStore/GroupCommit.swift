import Synchronization

/// Group commit: the writes that arrive while one batch is being written are written
/// together as the next, in one statement (one round trip, one transaction, one WAL
/// flush). A lone write goes out at once; under load each statement carries many, which
/// is what lets one PostgreSQL keep up with thousands of writes a second.
///
/// There is no background task: the first caller to find no batch in flight becomes the
/// leader and writes batches in its own task until its own item is written, then hands
/// the lead to the oldest caller still waiting (so no caller writes for others for long).
/// Every caller gets its own item's outcome, as if it had written alone, whatever
/// becomes of the leader's task (a cancelled leader does not cancel the batch):
///
/// - a batch the database refuses (a value one item carries that it cannot store) is
///   written again one item at a time, so only the offending item fails;
/// - a batch that fails because the database is unavailable fails every item in it,
///   as each alone would have failed.
public final class GroupCommit<Item: Sendable, Outcome: Sendable>: Sendable {
    /// Writes a batch: one outcome per item, in order.
    public typealias Write = @Sendable ([Item]) async throws -> [Outcome]

    private enum Turn: Sendable {
        case done(Result<Outcome, any Error>)
        case lead
    }

    private struct Entry {
        var id: UInt64
        var item: Item
        /// Nil for the leader's own item: the leader takes its outcome from the batch.
        var waiter: CheckedContinuation<Turn, Never>?
    }

    private struct State {
        var pending: [Entry] = []
        var leading = false
        var nextID: UInt64 = 0
    }

    private let write: Write
    /// The most items one statement carries: bounds the statement's size and the time
    /// its row locks are held.
    private let maxBatch: Int
    private let state = Mutex(State())

    public init(maxBatch: Int = 256, write: @escaping Write) {
        self.maxBatch = max(1, maxBatch)
        self.write = write
    }

    /// Writes `item` with the next batch and returns its outcome; throws what writing
    /// it threw.
    public func submit(_ item: Item) async throws -> Outcome {
        var id: UInt64 = 0
        let turn = await withCheckedContinuation { (waiter: CheckedContinuation<Turn, Never>) in
            let lead = state.withLock { state -> Bool in
                id = state.nextID
                state.nextID &+= 1
                let leads = !state.leading
                state.leading = true
                state.pending.append(Entry(id: id, item: item, waiter: leads ? nil : waiter))
                return leads
            }
            if lead { waiter.resume(returning: .lead) }
        }
        switch turn {
        case .done(let result): return try result.get()
        case .lead: return try await lead(until: id).get()
        }
    }

    /// Writes batches until the batch holding item `id` is written, then passes the
    /// lead on (or lays it down when nobody waits).
    private func lead(until id: UInt64) async -> Result<Outcome, any Error> {
        var mine: Result<Outcome, any Error>?
        while mine == nil {
            let batch = state.withLock { state -> [Entry] in
                let count = min(state.pending.count, maxBatch)
                defer { state.pending.removeFirst(count) }
                return Array(state.pending.prefix(count))
            }
            // The leader's own item is pending until written, so a batch is never empty here.
            // Written in a task of its own, awaited here: the leader's task may be
            // cancelled (its client hung up), and that must not fail the other callers'
            // items in its batch. Not fire-and-forget: the lead waits for the write.
            let items = batch.map(\.item)
            let results = await Task { await self.outcomes(of: items) }.value
            for (entry, result) in zip(batch, results) {
                if entry.id == id {
                    mine = result
                } else {
                    entry.waiter?.resume(returning: .done(result))
                }
            }
        }
        let next = state.withLock { state -> CheckedContinuation<Turn, Never>? in
            guard !state.pending.isEmpty else {
                state.leading = false
                return nil
            }
            defer { state.pending[0].waiter = nil }
            return state.pending[0].waiter
        }
        next?.resume(returning: .lead)
        return mine ?? .failure(CancellationError())
    }

    private func outcomes(of batch: [Item]) async -> [Result<Outcome, any Error>] {
        do {
            let outcomes = try await write(batch)
            guard outcomes.count == batch.count else {
                throw DatabaseError(.query, "a batch of \(batch.count) writes returned \(outcomes.count) outcomes")
            }
            return outcomes.map { .success($0) }
        } catch  where batch.count > 1 && !Database.isUnavailable(error) && !(error is CancellationError) {
            var results: [Result<Outcome, any Error>] = []
            for item in batch {
                do {
                    let outcome = try await write([item])
                    guard let first = outcome.first else { throw DatabaseError(.query, "a write returned no outcome") }
                    results.append(.success(first))
                } catch {
                    results.append(.failure(error))
                }
            }
            return results
        } catch {
            return batch.map { _ in .failure(error) }
        }
    }
}
