import NIOCore
import PostgresNIO
import SwitchyardCore
import Synchronization

/// One database call raced against its deadlines: a connection within
/// `acquireTimeout`, the whole call within `timeout`.
///
/// The call's work runs in a task of its own, and the caller waits on a continuation
/// that the first of three things resumes: the work finishing, a deadline passing, or
/// the caller's cancellation. A plain task group cannot give this guarantee: leaving a
/// group waits for every child, and PostgresNIO's queries are not cancellable (and one
/// written to a connection that was closing is never answered at all), so a group
/// would wait as long as the driver does. When a deadline passes, the work's
/// connection is closed, which fails whatever it was waiting for and makes PostgreSQL
/// roll its transaction back; the work task is cancelled and ends on its own.
///
/// The work task is the one unstructured task here. It ends when the driver answers or
/// fails, which it does for every statement but one written in the instant its
/// connection closes: none is written to a connection known to be closed (``attach``
/// refuses one, and a transaction sends no ROLLBACK to a broken one), so only that
/// instant is left, and a task caught in it stays suspended holding nothing but its
/// own captures.
final class DeadlineCall<Value: Sendable>: AbortableCall {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var ended = false
        var connection: PostgresConnection?
        var work: Task<Void, Never>?
        var timer: Scheduled<Void>?
    }

    private let state = Mutex(State())
    let acquireTimeout: Duration
    let timeout: Duration
    /// Where the call was made, for the error a caller (and an operator) reads.
    let site: String

    init(acquireTimeout: Duration, timeout: Duration, site: String) {
        self.acquireTimeout = acquireTimeout
        self.timeout = timeout
        self.site = site
    }

    /// Runs `work`, returning its value, or throwing when a deadline passes or the
    /// calling task is cancelled, whichever comes first.
    func run(_ work: @escaping @Sendable (DeadlineCall<Value>) async throws -> Value) async throws -> Value {
        let eventLoop = PostgresConnection.defaultEventLoopGroup.any()
        let started = NIODeadline.now()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let proceed = state.withLock { state -> Bool in
                    guard !state.ended else { return false }
                    state.continuation = continuation
                    return true
                }
                guard proceed else {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                // Until the work attaches a connection, only the acquire deadline runs.
                let acquireBy = started + .nanoseconds(min(acquireTimeout, timeout).inNanoseconds)
                let timer = eventLoop.scheduleTask(deadline: acquireBy) {
                    var error = DatabaseError(
                        .unavailable,
                        "no database connection within \(self.acquireTimeout) (\(self.site)): PostgreSQL is unreachable or every connection is busy")
                    error.isConnectionFailure = true
                    self.expire(error)
                }
                let task = Task {
                    let result: Result<Value, any Error>
                    do {
                        result = .success(try await work(self))
                    } catch {
                        result = .failure(error)
                    }
                    self.end(result)
                }
                let keep = state.withLock { state -> Bool in
                    guard !state.ended else { return false }
                    state.timer = timer
                    state.work = task
                    return true
                }
                if !keep {
                    timer.cancel()
                    task.cancel()
                }
            }
        } onCancel: {
            end(.failure(CancellationError()))
        }
    }

    /// Called by the work once it holds its connection: from now on the whole call's
    /// deadline applies, and passing it closes this connection. Throws when the call has
    /// already ended (its caller stopped waiting) or the connection is closed, so that
    /// no statement is sent that could never be answered.
    func attach(_ connection: PostgresConnection) throws {
        let remaining = timeout
        let eventLoop = connection.eventLoop
        if connection.isClosed {
            var error = DatabaseError(.unavailable, "the database connection was closed (\(site))")
            error.isConnectionFailure = true
            throw error
        }
        let previous = try state.withLock { state -> Scheduled<Void>? in
            guard !state.ended else { throw DatabaseError(.unavailable, "the call was abandoned before its connection arrived (\(site))") }
            state.connection = connection
            let previous = state.timer
            state.timer = eventLoop.scheduleTask(in: .nanoseconds(remaining.inNanoseconds)) {
                self.expire(DatabaseError(.unavailable, "PostgreSQL did not answer within \(remaining) (\(self.site))"))
            }
            return previous
        }
        previous?.cancel()
        ConnectionWatch.shared.attach(self, to: connection)
    }

    /// Called by the work when it is done with its connection, before the connection
    /// goes back to the pool: the caller is answered with `outcome` now, and nothing
    /// that happens later (a deadline, the connection closing) can touch it.
    func finish(_ outcome: Result<Value, any Error>, on connection: PostgresConnection) {
        ConnectionWatch.shared.detach(connection)
        end(outcome)
    }

    /// The connection closed under the call: whatever it waits for will not come.
    func abort(_ error: DatabaseError) {
        expire(error)
    }

    private func expire(_ error: DatabaseError) {
        let connection = state.withLock { $0.ended ? nil : $0.connection }
        // Closing fails what the work waits for and rolls its transaction back.
        connection?.close().whenComplete { _ in }
        end(.failure(error))
    }

    /// Resumes the caller once, with the first outcome; later ones are dropped.
    private func end(_ result: Result<Value, any Error>) {
        let (continuation, timer, work) = state.withLock { state -> (CheckedContinuation<Value, any Error>?, Scheduled<Void>?, Task<Void, Never>?) in
            guard !state.ended else { return (nil, nil, nil) }
            state.ended = true
            defer {
                state.continuation = nil
                state.timer = nil
                state.work = nil
                state.connection = nil
            }
            return (state.continuation, state.timer, state.work)
        }
        timer?.cancel()
        if case .failure = result { work?.cancel() }
        continuation?.resume(with: result)
    }
}

/// A database call that can be ended from outside.
protocol AbortableCall: Sendable {
    var site: String { get }
    func abort(_ error: DatabaseError)
}

/// Ends the call using a connection as soon as that connection closes.
///
/// A statement written to a connection at the moment it closes (PostgreSQL restarting)
/// is never answered by PostgresNIO, so without this its caller would wait for its
/// whole deadline. One close callback is registered per connection, not per call
/// (futures' callbacks cannot be removed, and a connection serves thousands of calls);
/// the call using the connection now is looked up when it fires.
final class ConnectionWatch: Sendable {
    static let shared = ConnectionWatch()

    private struct State {
        var watched: Set<ObjectIdentifier> = []
        var attached: [ObjectIdentifier: any AbortableCall] = [:]
    }

    private let state = Mutex(State())

    func attach(_ call: any AbortableCall, to connection: PostgresConnection) {
        let id = ObjectIdentifier(connection)
        let first = state.withLock { state -> Bool in
            state.attached[id] = call
            return state.watched.insert(id).inserted
        }
        if first {
            connection.closeFuture.whenComplete { _ in
                let call = self.state.withLock { state -> (any AbortableCall)? in
                    state.watched.remove(id)
                    return state.attached.removeValue(forKey: id)
                }
                var error = DatabaseError(.unavailable, "the database connection closed during the call (\(call?.site ?? "?"))")
                error.isConnectionFailure = true
                call?.abort(error)
            }
        }
        // Closed between the caller's check and here: the callback above has fired
        // already, or fires now, and ends the call.
    }

    func detach(_ connection: PostgresConnection) {
        let id = ObjectIdentifier(connection)
        state.withLock { _ = $0.attached.removeValue(forKey: id) }
    }
}
