import Foundation
import Logging
import SwitchyardCore
import SwitchyardExperts
import SwitchyardStore
import Synchronization

/// A piece of a model step's answer as it streams in, for `GET …/events?deltas=1`.
/// Deltas are relayed live and never stored: the event log keeps the whole answer.
public struct ModelDeltaEvent: Sendable, Hashable, Codable {
    public var tenant: UUID
    public var run: UUID
    public var step: String
    /// The call's index within the step's attempt (as in `model.called`).
    public var call: Int
    public var expert: String
    public var text: String
    public var reasoning: String

    /// The SSE data of a `model.delta` event.
    public var json: JSONValue {
        var object: [String: JSONValue] = ["step": .string(step), "call": .int(call), "expert": .string(expert), "text": .string(text)]
        if !reasoning.isEmpty { object["reasoning"] = .string(reasoning) }
        return .object(object)
    }
}

/// Relays model deltas from the process running a step to whoever follows the run,
/// in this process or another one.
///
/// Nothing is relayed for runs nobody follows. A follower in this process is known
/// directly; one in another process announces itself with a `switchyard_watch`
/// notification (repeated while it follows), and deltas then travel to it through
/// `switchyard_deltas` notifications, coalesced to about ten per second per call.
public final class DeltaHub: Sendable {
    /// A remote watch lapses unless announced again within this time.
    static let watchLifetime: Duration = .seconds(45)
    static let announceInterval: Duration = .seconds(15)
    static let coalescing: Duration = .milliseconds(100)
    /// NOTIFY payloads must stay under 8,000 bytes; text is split below this.
    static let payloadTextLimit = 6_000

    private struct State {
        var subscribers: [UUID: [Int: AsyncStream<ModelDeltaEvent>.Continuation]] = [:]
        var remoteWatches: [UUID: ContinuousClock.Instant] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    let owner: UUID
    let database: Database
    let logger: Logger

    init(owner: UUID, database: Database, logger: Logger) {
        self.owner = owner
        self.database = database
        self.logger = logger
    }

    /// Deltas of `run` from now on, until the stream is dropped. Call ``announce(run:)``
    /// too, so that engines in other processes relay theirs.
    public func subscribe(run: UUID) -> AsyncStream<ModelDeltaEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ModelDeltaEvent.self, bufferingPolicy: .bufferingNewest(1_024))
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.subscribers[run, default: [:]][state.nextID] = continuation
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { state in
                state.subscribers[run]?[id] = nil
                if state.subscribers[run]?.isEmpty == true { state.subscribers[run] = nil }
            }
        }
        return stream
    }

    /// Tells every engine that `run` is followed from this process.
    public func announce(run: UUID) async {
        do {
            try await database.notify(.deltaWatch, payload: run.uuidString)
        } catch {
            logger.warning("could not announce a delta watch", metadata: ["run": "\(run)", "error": "\(Database.describe(error))"])
        }
    }

    /// Renews the watches of the runs followed here.
    func announceFollowedRuns() async {
        let runs = state.withLock { Array($0.subscribers.keys) }
        for run in runs { await announce(run: run) }
    }

    func noteRemoteWatch(_ payload: String) {
        guard let run = UUID(uuidString: payload) else { return }
        let now = ContinuousClock.now
        state.withLock { state in
            state.remoteWatches[run] = now
            if state.remoteWatches.count > 10_000 {
                state.remoteWatches = state.remoteWatches.filter { now - $0.value < Self.watchLifetime }
            }
        }
    }

    /// A `switchyard_deltas` notification: deliver it here unless this process sent it
    /// (it delivered its own deltas directly).
    func receive(_ payload: String) {
        guard let message = try? JSONDecoder().decode(RelayedDelta.self, from: Data(payload.utf8)), message.owner != owner else { return }
        deliver(message.event)
    }

    private func deliver(_ event: ModelDeltaEvent) {
        let continuations = state.withLock { Array(($0.subscribers[event.run] ?? [:]).values) }
        for continuation in continuations { continuation.yield(event) }
    }

    private func watchers(of run: UUID) -> (local: Bool, remote: Bool) {
        let now = ContinuousClock.now
        return state.withLock { state in
            (state.subscribers[run] != nil, state.remoteWatches[run].map { now - $0 < Self.watchLifetime } ?? false)
        }
    }

    /// Runs one model call with a delta handler when someone follows the run (nil
    /// otherwise, so that unwatched calls pay nothing).
    func relaying<T: Sendable>(
        run: UUID, tenant: UUID, step: String, call: Int, expert: String, _ body: (DeltaHandler?) async -> T
    ) async -> T {
        let watched = watchers(of: run)
        guard watched.local || watched.remote else { return await body(nil) }
        let template = ModelDeltaEvent(tenant: tenant, run: run, step: step, call: call, expert: expert, text: "", reasoning: "")
        let (remote, continuation) = AsyncStream.makeStream(of: ModelDelta.self)
        let handler: DeltaHandler = { [self] delta in
            var event = template
            event.text = delta.text
            event.reasoning = delta.reasoning
            deliver(event)
            if watched.remote { continuation.yield(delta) }
        }
        return await withTaskGroup(of: Void.self, returning: T.self) { group in
            if watched.remote {
                group.addTask { await self.publish(remote, template: template) }
            }
            let result = await body(handler)
            continuation.finish()
            await group.waitForAll()
            return result
        }
    }

    /// Sends deltas to other processes, coalesced so that a fast stream costs a few
    /// notifications per second rather than one per token.
    private func publish(_ deltas: AsyncStream<ModelDelta>, template: ModelDeltaEvent) async {
        var pending = ModelDelta(text: "")
        var last = ContinuousClock.now
        for await delta in deltas {
            pending.text += delta.text
            pending.reasoning += delta.reasoning
            if ContinuousClock.now - last >= Self.coalescing || pending.text.utf8.count + pending.reasoning.utf8.count >= Self.payloadTextLimit {
                await notify(pending, template: template)
                pending = ModelDelta(text: "")
                last = ContinuousClock.now
            }
        }
        if !pending.text.isEmpty || !pending.reasoning.isEmpty { await notify(pending, template: template) }
    }

    private func notify(_ delta: ModelDelta, template: ModelDeltaEvent) async {
        for (text, reasoning) in Self.pieces(delta.text, delta.reasoning) {
            var event = template
            event.text = text
            event.reasoning = reasoning
            guard let data = try? JSONEncoder().encode(RelayedDelta(owner: owner, event: event)) else { continue }
            let payload = String(decoding: data, as: UTF8.self)
            do {
                try await database.notify(.deltas, payload: payload)
            } catch {
                logger.debug("could not relay a delta", metadata: ["error": "\(Database.describe(error))"])
                return
            }
        }
    }

    /// Splits text and reasoning into pieces that fit a notification, at character boundaries.
    static func pieces(_ text: String, _ reasoning: String) -> [(String, String)] {
        func split(_ s: String) -> [String] {
            var result: [String] = []
            var current = ""
            var size = 0
            for character in s {
                let width = character.utf8.count
                if size + width > payloadTextLimit / 2, !current.isEmpty {
                    result.append(current)
                    current = ""
                    size = 0
                }
                current.append(character)
                size += width
            }
            if !current.isEmpty { result.append(current) }
            return result
        }
        let texts = split(text)
        let reasonings = split(reasoning)
        return (0..<max(texts.count, reasonings.count, 1)).map { i in
            (i < texts.count ? texts[i] : "", i < reasonings.count ? reasonings[i] : "")
        }
    }
}

/// A delta as it travels between processes.
private struct RelayedDelta: Codable {
    var owner: UUID
    var event: ModelDeltaEvent
}
