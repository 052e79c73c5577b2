import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle
import SwitchyardAPI
import SwitchyardCore
import SwitchyardEngine
import SwitchyardStore
import Synchronization

/// The body of `GET /v1/runs/{id}/events`: the run's stored events after a position,
/// then new ones as they are appended, as server-sent events, until the run's final
/// event.
///
/// The stream reads the database when the run's events change (woken through
/// ``RunEventFeed``). Every `heartbeat` it writes an SSE comment, which is how a client
/// that went away is noticed (a write to a closed connection fails); every
/// ``safetyReadEvery`` heartbeats it also reads, in case a wake-up was lost (one sent
/// in the instant between subscribing and the first read). A quiet stream therefore
/// costs the database one query per `heartbeat × safetyReadEvery`. It ends on the
/// run's final event, when the client goes, and when the server shuts down.
struct EventStream: Sendable {
    let run: UUID
    let tenant: UUID
    let after: Int64
    let runs: RunRepository
    let subscription: RunEventFeed.Subscription
    let deltas: AsyncStream<ModelDeltaEvent>?
    let heartbeat: Duration

    /// Heartbeats between two reads of a quiet stream.
    static let safetyReadEvery = 6

    /// What the writing loop reacts to.
    private enum Signal: Sendable {
        /// The run may have new events.
        case wake
        /// Time to write a keep-alive and look again.
        case heartbeat
        case delta(ModelDeltaEvent)
        /// The subscription ended (server shutdown).
        case closed
    }

    func write(to writer: inout some ResponseBodyWriter) async throws {
        let subscription = self.subscription
        defer { subscription.cancel() }
        try await withGracefulShutdownHandler {
            try await stream(to: &writer)
        } onGracefulShutdown: {
            subscription.cancel()
        }
        try await writer.finish(nil)
    }

    private func stream(to writer: inout some ResponseBodyWriter) async throws {
        var position = after
        if try await sendNew(after: &position, to: &writer) { return }
        if try await runs.status(of: run, tenant: tenant)?.isFinal ?? true {
            // The run may have ended between the read and the status: its last events
            // were written after the read.
            _ = try await sendNew(after: &position, to: &writer)
            return
        }
        // Bounded: a client reading slower than a model streams loses the oldest
        // deltas (they are a preview; the stored events are complete), not memory.
        let (signals, signal) = AsyncStream.makeStream(of: Signal.self, bufferingPolicy: .bufferingNewest(1024))
        // Wakes coalesce: one pending at a time, cleared when the loop reads.
        let wakePending = PendingFlag()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in subscription.wakes {
                    if wakePending.set() { signal.yield(.wake) }
                }
                signal.yield(.closed)
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: heartbeat)
                    signal.yield(.heartbeat)
                }
            }
            if let deltas {
                group.addTask {
                    for await delta in deltas { signal.yield(.delta(delta)) }
                }
            }
            var heartbeats = 0
            loop: for await next in signals {
                switch next {
                case .wake:
                    wakePending.clear()
                    if try await sendNew(after: &position, to: &writer) { break loop }
                case .heartbeat:
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    heartbeats += 1
                    if heartbeats % Self.safetyReadEvery == 0, try await sendNew(after: &position, to: &writer) { break loop }
                case .delta(let delta):
                    try await writer.write(ByteBuffer(string: "event: \(RunEventType.modelDelta.rawValue)\ndata: \(delta.json.compactJSON)\n\n"))
                case .closed:
                    break loop
                }
            }
            group.cancelAll()
        }
    }

    /// Writes the events after `position`; true once the run's final event is written.
    private func sendNew(after position: inout Int64, to writer: inout some ResponseBodyWriter) async throws -> Bool {
        while true {
            let events = try await runs.events(of: run, tenant: tenant, after: position)
            guard !events.isEmpty else { return false }
            var buffer = ByteBuffer()
            var ended = false
            for event in events {
                let data = try WireEncoder.text(Render.event(event))
                buffer.writeString("id: \(event.seq)\nevent: \(event.type)\ndata: \(data)\n\n")
                position = event.seq
                if RunEventType(rawValue: event.type)?.isFinal == true { ended = true }
            }
            try await writer.write(buffer)
            if ended { return true }
            // A full page may have more behind it.
            if events.count < RunRepository.eventPage { return false }
        }
    }
}

/// A flag shared by two tasks: set by one (true when it was clear), cleared by the other.
private final class PendingFlag: Sendable {
    private let state = Mutex(false)

    func set() -> Bool {
        state.withLock { pending in
            defer { pending = true }
            return !pending
        }
    }

    func clear() {
        state.withLock { $0 = false }
    }
}
