import Logging
import PostgresNIO

/// The PostgreSQL notification channels between Switchyard processes sharing a
/// database. Notifications are hints that make waiting cheap; every reader also looks
/// on a timer, since a notification sent while nobody listened is lost.
public enum NotificationChannel: String, Sendable, CaseIterable {
    /// Steps became ready: idle dispatchers look for work (no payload).
    case work = "switchyard_work"
    /// A run was cancelled: its running steps stop (payload: the run id).
    case cancel = "switchyard_cancel"
    /// A process follows a run's model deltas (payload: the run id; repeated while it follows).
    case deltaWatch = "switchyard_watch"
    /// Model deltas relayed to the processes following their run (payload: JSON).
    case deltas = "switchyard_deltas"
    /// A followed run has new events (payload: the run id). Sent by the database
    /// itself, from a trigger on `run_events` (migration 0007).
    case runEvents = "switchyard_events"
}

extension Database {
    /// Sends a notification on `channel`.
    public func notify(_ channel: NotificationChannel, payload: String = "") async throws {
        try await query("SELECT pg_notify(\(channel.rawValue), \(payload))", logger: logger)
    }

    /// Listens on `channels` on one connection of its own and runs `body` with a
    /// notification sequence for each; stops listening when `body` returns. The
    /// connection is held for as long as `body` runs, without a deadline: a listener
    /// is meant to last (the engine's runs for the life of the process).
    public func listen(
        to channels: [NotificationChannel], _ body: @Sendable ([NotificationChannel: PostgresNotificationSequence]) async throws -> Void
    ) async throws {
        try await client.withConnection { connection in
            try await Self.listen(on: channels[...], connection: connection, listening: [:], body)
        }
    }

    /// One `listen(on:)` scope per channel, nested, so that each unlistens when its
    /// scope ends.
    private static func listen(
        on channels: ArraySlice<NotificationChannel>, connection: PostgresConnection, listening: [NotificationChannel: PostgresNotificationSequence],
        _ body: @Sendable ([NotificationChannel: PostgresNotificationSequence]) async throws -> Void
    ) async throws {
        guard let channel = channels.first else { return try await body(listening) }
        try await connection.listen(on: channel.rawValue) { notifications in
            var listening = listening
            listening[channel] = notifications
            try await listen(on: channels.dropFirst(), connection: connection, listening: listening, body)
        }
    }
}
