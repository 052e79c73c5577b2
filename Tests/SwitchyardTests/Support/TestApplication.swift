import Hummingbird
import Logging
import ServiceLifecycle

/// Runs a Hummingbird application on 127.0.0.1 (port 0) for the length of `body`, then
/// stops it with a graceful shutdown, never by cancellation: cancelling a server that
/// has just accepted a connection drops the connection's async channel unserved, which
/// trips NIO's check that every channel writer is finished and kills the test process
/// (apple/swift-nio#2813). The graceful path drains every accepted connection.
func withTestApplication<Builder: HTTPResponderBuilder, T: Sendable>(
    router: Builder, logger: Logger, _ body: @Sendable (_ port: Int) async throws -> T
) async throws -> T where Builder.Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let app = Application(
        router: router,
        configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: nil),
        onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) },
        logger: logger)
    let services = ServiceGroup(
        configuration: ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { portContinuation.finish() }
            try? await services.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            throw TestFailure("the test HTTP server did not start")
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(port))
        } catch {
            result = .failure(error)
        }
        await services.triggerGracefulShutdown()
        try await group.waitForAll()
        return try result.get()
    }
}
