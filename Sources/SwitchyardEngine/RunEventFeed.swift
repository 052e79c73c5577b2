import Foundation
import Logging
import SwitchyardStore
import Synchronization

/// Wakes the live event streams of this process (`GET /v1/runs/{id}/events`) when
/// their runs get new events, so that a stream reads the database when something
/// happened rather than polling it.
///
/// A stream subscribes to its run; the first subscriber of a run records this process
/// as a follower in `event_followers`, after which every statement appending events
/// of the run, on any server, sends a `switchyard_events` notification that the
/// engine's listener hands to ``received(_:)``. Rows are renewed while streams last
/// and expire when this process is gone. Streams still read on their heartbeat, which
/// covers a notification lost while the listener reconnected.
public final class RunEventFeed: Sendable {
    /// A follower row lapses unless renewed within this time.
    static let followLifetime: Duration = .seconds(45)
    /// How often follower rows are renewed and stale ones pruned.
    static let renewInterval: Duration = .seconds(15)

    /// Why a stream could not be opened.
    public enum SubscribeError: Error, Sendable {
        /// The tenant already has `limit` streams open on this server.
        case tooManyStreams(limit: Int)
    }

    private struct Subscriber {
        var run: UUID
        var tenant: UUID
        var continuation: AsyncStream<Void>.Continuation
    }

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var byRun: [UUID: Set<Int>] = [:]
        var perTenant: [UUID: Int] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    private let followers: EventFollowers
    private let logger: Logger
    /// The most streams one tenant may hold open on this server.
    public let maxStreamsPerTenant: Int

    init(owner: UUID, database: Database, maxStreamsPerTenant: Int, logger: Logger) {
        self.followers = EventFollowers(database: database, follower: owner)
        self.maxStreamsPerTenant = maxStreamsPerTenant
        self.logger = logger
    }

    /// One stream's subscription: `wakes` yields when the run may have new events and
    /// ends when the subscription is cancelled. Wakes coalesce: a stream that is busy
    /// reading sees at most one more.
    public final class Subscription: Sendable {
        public let wakes: AsyncStream<Void>
        private let feed: RunEventFeed
        private let id: Int

        fileprivate init(wakes: AsyncStream<Void>, feed: RunEventFeed, id: Int) {
            self.wakes = wakes
            self.feed = feed
            self.id = id
        }

        /// Ends the subscription (idempotent). The follower row is dropped by the next
        /// renewal, or expires.
        public func cancel() {
            feed.unsubscribe(id)
        }

        deinit {
            feed.unsubscribe(id)
        }
    }

    /// Subscribes a stream to `run`'s events; refused past the tenant's cap. Returns
    /// once this process is recorded as a follower, so that every event appended from
    /// then on wakes the stream.
    public func subscribe(run: UUID, tenant: UUID) async throws -> Subscription {
        let (wakes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let registered = state.withLock { state -> Int? in
            guard state.perTenant[tenant, default: 0] < maxStreamsPerTenant else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.subscribers[id] = Subscriber(run: run, tenant: tenant, continuation: continuation)
            state.perTenant[tenant, default: 0] += 1
            state.byRun[run, default: []].insert(id)
            return id
        }
        guard let registered else {
            continuation.finish()
            throw SubscribeError.tooManyStreams(limit: maxStreamsPerTenant)
        }
        let subscription = Subscription(wakes: wakes, feed: self, id: registered)
        // On every subscription, not only a run's first: a renewal pruning at the same
        // moment may have dropped the row just as the run's last stream ended.
        try await followers.follow([run], lifetime: Self.followLifetime)
        return subscription
    }

    fileprivate func unsubscribe(_ id: Int) {
        let continuation = state.withLock { state -> AsyncStream<Void>.Continuation? in
            guard let subscriber = state.subscribers.removeValue(forKey: id) else { return nil }
            state.byRun[subscriber.run]?.remove(id)
            if state.byRun[subscriber.run]?.isEmpty == true { state.byRun[subscriber.run] = nil }
            state.perTenant[subscriber.tenant, default: 1] -= 1
            if state.perTenant[subscriber.tenant] == 0 { state.perTenant[subscriber.tenant] = nil }
            return subscriber.continuation
        }
        continuation?.finish()
    }

    /// Streams open on this server now.
    public var openStreams: Int {
        state.withLock { $0.subscribers.count }
    }

    /// A `switchyard_events` notification: wakes the streams of that run.
    func received(_ payload: String) {
        guard let run = UUID(uuidString: payload) else { return }
        let continuations = state.withLock { state in (state.byRun[run] ?? []).compactMap { state.subscribers[$0]?.continuation } }
        for continuation in continuations { continuation.yield() }
    }

    /// Wakes every stream: notifications may have been lost (the listener reconnected).
    func wakeAll() {
        let continuations = state.withLock { $0.subscribers.values.map(\.continuation) }
        for continuation in continuations { continuation.yield() }
    }

    private var followedRuns: [UUID] {
        state.withLock { Array($0.byRun.keys) }
    }

    /// Renews this process's follower rows and drops stale ones.
    func renew() async {
        do {
            try await followers.follow(followedRuns, lifetime: Self.followLifetime)
            // The runs followed now, not before the renewal: a stream opened meanwhile
            // keeps its row.
            try await followers.prune(keeping: followedRuns)
        } catch {
            logger.debug("could not renew event followers", metadata: ["error": "\(Database.describe(error))"])
        }
    }
}
