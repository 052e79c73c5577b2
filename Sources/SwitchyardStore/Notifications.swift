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

    /// Listens on the handlers' channels on one connection of its own and hands each
    /// notification's payload to its channel's handler, until the connection fails or
    /// the task is cancelled. `onListening` runs once every channel is listened to
    /// (notifications sent before were lost: the caller looks for what it missed). The
    /// connection is held without a deadline: a listener is meant to last.
    public func listen(
        dispatching handlers: [NotificationChannel: @Sendable (String) -> Void], onListening: @Sendable () -> Void
    ) async throws {
        try await client.withConnection { connection in
            try await Self.listen(on: handlers.keys.sorted { $0.rawValue < $1.rawValue }[...], connection: connection, listening: [:]) { sequences in
                onListening()
                try await withThrowingDiscardingTaskGroup { group in
                    for (channel, notifications) in sequences {
                        guard let handle = handlers[channel] else { continue }
                        group.addTask {
                            for try await notification in notifications { handle(notification.payload) }
                        }
                    }
                }
            }
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
