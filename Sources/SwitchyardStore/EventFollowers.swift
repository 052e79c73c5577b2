import Foundation
import PostgresNIO
import SwitchyardCore

/// The `event_followers` table: which server processes have live event streams open
/// on which runs, so that appending a followed run's events notifies `NotificationChannel.runEvents` (see
/// `Migrations/0007_event_followers.sql`).
public struct EventFollowers: Sendable {
    public let database: Database
    /// The following process.
    public let follower: UUID

    public init(database: Database, follower: UUID) {
        self.database = database
        self.follower = follower
    }

    /// Records (or renews) that this process follows `runs` until `lifetime` from now.
    public func follow(_ runs: [UUID], lifetime: Duration) async throws {
        guard !runs.isEmpty else { return }
        try await database.query(
            """
            INSERT INTO event_followers (run_id, follower, expires_at)
            SELECT run, \(follower), now() + \(lifetime.inMilliseconds) * interval '1 millisecond'
            FROM unnest(\(runs)::uuid[]) AS r(run)
            ON CONFLICT (run_id, follower) DO UPDATE SET expires_at = EXCLUDED.expires_at
            """)
    }

    /// Drops this process's rows for runs it no longer follows, and every process's
    /// expired rows (a process that stopped without cleaning up).
    public func prune(keeping runs: [UUID]) async throws {
        try await database.query(
            """
            DELETE FROM event_followers
            WHERE (follower = \(follower) AND run_id <> ALL(\(runs)::uuid[])) OR expires_at < now()
            """)
    }
}
