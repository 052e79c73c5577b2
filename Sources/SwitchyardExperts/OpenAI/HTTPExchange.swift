import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// One HTTP request over AsyncHTTPClient's delegate API, seen as an async sequence of
/// response parts, with the two timeouts a streamed model answer needs.
///
/// Why the delegate API: it says when the request head and body were written. Before
/// that nothing reached the provider, so a failure is safe to retry and cannot have
/// been billed; after it, DeepSeek bills even a cancelled request. The async
/// `execute` cannot tell the two apart. And its single deadline would also end a
/// long, healthy stream, where what is wanted is:
/// - a connect timeout, until the request head is written (DNS, TCP, TLS, pool wait);
/// - an idle (read) timeout, reset by every byte written or read, never a total.
final class HTTPExchange: HTTPClientResponseDelegate {
    typealias Response = Void

    enum Part: Sendable {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
    }

    enum Timeout: Sendable {
        case connect, idle
    }

    private struct State {
        var headSent = false
        var requestSent = false
        var finished = false
        var timedOut: Timeout?
        var lastActivity = NIODeadline.now()
        var timer: Scheduled<Void>?
        var task: HTTPClient.Task<Void>?
    }

    let parts: AsyncThrowingStream<Part, any Error>
    private let continuation: AsyncThrowingStream<Part, any Error>.Continuation
    private let eventLoop: any EventLoop
    private let connectTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let state = Mutex(State())

    private init(eventLoop: any EventLoop, connectTimeout: TimeAmount, idleTimeout: TimeAmount) {
        (parts, continuation) = AsyncThrowingStream.makeStream()
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }

    /// Starts the request. The delegate and the connection share one event loop, which
    /// also makes the pool open an extra connection rather than queue behind its
    /// per-host limit: the expert's bulkhead is the only queue.
    static func start(
        _ request: HTTPClient.Request, on client: HTTPClient, connectTimeout: Duration, idleTimeout: Duration
    ) -> HTTPExchange {
        let eventLoop = client.eventLoopGroup.next()
        let exchange = HTTPExchange(eventLoop: eventLoop, connectTimeout: .init(connectTimeout), idleTimeout: .init(idleTimeout))
        let task = client.execute(request: request, delegate: exchange, eventLoop: .delegateAndChannel(on: eventLoop))
        exchange.continuation.onTermination = { [weak exchange] termination in
            if case .cancelled = termination { exchange?.cancel() }
        }
        exchange.attach(task)
        return exchange
    }

    /// Whether the whole request was written: from then on the provider may bill it.
    var requestSent: Bool { state.withLock { $0.requestSent } }
    /// Whether the request head was written (a connection existed).
    var headSent: Bool { state.withLock { $0.headSent } }
    /// Which of our timeouts ended the exchange, if one did.
    var timedOut: Timeout? { state.withLock { $0.timedOut } }

    /// Abandons the request (the caller was cancelled or has read enough).
    func cancel() {
        let task = state.withLock { $0.task }
        task?.cancel()
    }

    private func attach(_ task: HTTPClient.Task<Void>) {
        let deadline = state.withLock { state -> NIODeadline? in
            state.task = task
            if state.finished { return nil }
            // The head may already be on the wire: then the idle phase has begun.
            return state.headSent ? state.lastActivity + idleTimeout : .now() + connectTimeout
        }
        if let deadline { armTimer(at: deadline) }
    }

    private func armTimer(at deadline: NIODeadline) {
        let scheduled = eventLoop.scheduleTask(deadline: deadline) { [weak self] () -> Void in self?.timerFired() }
        let stale = state.withLock { state -> Bool in
            if state.finished { return true }
            state.timer?.cancel()
            state.timer = scheduled
            return false
        }
        if stale { scheduled.cancel() }
    }

    /// In the connect phase the deadline is absolute; afterwards it moves with activity.
    private func timerFired() {
        enum Next {
            case none
            case expire(HTTPClient.Task<Void>?)
            case rearm(NIODeadline)
        }
        let next = state.withLock { state -> Next in
            guard !state.finished else { return .none }
            guard state.headSent else {
                state.timedOut = .connect
                return .expire(state.task)
            }
            let deadline = state.lastActivity + idleTimeout
            if deadline <= .now() {
                state.timedOut = .idle
                return .expire(state.task)
            }
            return .rearm(deadline)
        }
        switch next {
        case .none: break
        case .expire(let task): task?.cancel()
        case .rearm(let deadline): armTimer(at: deadline)
        }
    }

    private func touch() {
        state.withLock { $0.lastActivity = .now() }
    }

    private func end() {
        let timer = state.withLock { state -> Scheduled<Void>? in
            state.finished = true
            // The task holds this delegate until it completes: drop the cycle back.
            state.task = nil
            defer { state.timer = nil }
            return state.timer
        }
        timer?.cancel()
    }

    // MARK: HTTPClientResponseDelegate (called on `eventLoop`)

    func didSendRequestHead(task: HTTPClient.Task<Void>, _ head: HTTPRequestHead) {
        let attached = state.withLock { state -> Bool in
            state.headSent = true
            state.lastActivity = .now()
            return state.task != nil
        }
        // The connect deadline no longer applies; the idle one starts now.
        if attached { armTimer(at: .now() + idleTimeout) }
    }

    func didSendRequestPart(task: HTTPClient.Task<Void>, _ part: IOData) {
        touch()
    }

    func didSendRequest(task: HTTPClient.Task<Void>) {
        state.withLock { state in
            state.requestSent = true
            state.lastActivity = .now()
        }
    }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        touch()
        continuation.yield(.head(head))
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        touch()
        continuation.yield(.body(buffer))
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        end()
        continuation.finish(throwing: error)
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        end()
        continuation.finish()
    }
}
