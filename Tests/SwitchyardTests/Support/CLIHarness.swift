import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import Testing

/// The real `yard` executable, run as a subprocess the way a user or a script runs it.
enum YardCLI {
    struct Result: Sendable, CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        /// Whether the process ended by `exit`, not by a signal (such as our timeout's).
        var exited: Bool

        var description: String { "exit \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
    }

    /// The `yard` built with the tests: next to the test bundle, else in `.build/debug`.
    static let binary: URL = {
        var candidates: [URL] = []
        for argument in [CommandLine.arguments.first, ProcessInfo.processInfo.arguments.first].compactMap({ $0 }) {
            var directory = URL(fileURLWithPath: argument).deletingLastPathComponent()
            candidates.append(directory.appendingPathComponent("yard"))
            // On macOS the test binary sits inside `X.xctest/Contents/MacOS/`.
            for _ in 0..<3 {
                directory = directory.deletingLastPathComponent()
                candidates.append(directory.appendingPathComponent("yard"))
            }
        }
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("yard"))
        // This package's own `.build/debug`, found from this file's place in it.
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(package.appendingPathComponent(".build/debug/yard"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    /// A running `yard`, for a test that acts while it runs.
    struct Running: Sendable {
        fileprivate let stdoutURL: URL
        fileprivate let state: ExitState

        /// What it has written to stdout so far.
        var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

        /// Waits until its stdout contains `text`; fails if it exits first or the time is up.
        func waitForOutput(_ text: String, timeout: Duration = .seconds(30)) async throws {
            let deadline = ContinuousClock.now + timeout
            while !stdout.contains(text) {
                if state.exited { throw TestFailure("yard exited without printing `\(text)`:\n\(stdout)") }
                if ContinuousClock.now > deadline { throw TestFailure("yard did not print `\(text)` within \(timeout):\n\(stdout)") }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    fileprivate final class ExitState: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var exited: Bool {
            get { lock.withLock { value } }
            set { lock.withLock { value = newValue } }
        }
    }

    /// Runs `yard ARGUMENTS` against `server` with `YARD_URL`, `YARD_API_KEY` and
    /// `YARD_ADMIN_KEY` set (nil leaves a variable unset), and returns when it exits.
    /// Output goes to temporary files, so a chatty process never blocks on a full pipe,
    /// and the wait is a termination handler, so no thread of the test blocks.
    /// `stdin` is its standard input (none when nil); `during` runs while it does.
    static func run(
        _ arguments: [String], url: String, apiKey: String? = nil, adminKey: String? = nil,
        stdin: String? = nil, timeout: Duration = .seconds(60),
        during: (@Sendable (Running) async throws -> Void)? = nil
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("yard-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stdoutURL = directory.appendingPathComponent("stdout")
        let stderrURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let stdout = try FileHandle(forWritingTo: stdoutURL)
        let stderr = try FileHandle(forWritingTo: stderrURL)

        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("YARD_") }
        environment["YARD_URL"] = url
        environment["YARD_API_KEY"] = apiKey
        environment["YARD_ADMIN_KEY"] = adminKey
        process.environment = environment
        if let stdin {
            let stdinURL = directory.appendingPathComponent("stdin")
            try stdin.write(to: stdinURL, atomically: true, encoding: .utf8)
            process.standardInput = try FileHandle(forReadingFrom: stdinURL)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        process.standardOutput = stdout
        process.standardError = stderr

        let (ended, continuation) = AsyncStream<Void>.makeStream()
        let state = ExitState()
        process.terminationHandler = { _ in
            state.exited = true
            continuation.finish()
        }
        try process.run()
        try? stdout.close()
        try? stderr.close()
        let timer = Task {
            try await Task.sleep(for: timeout)
            process.terminate()
        }
        if let during {
            do {
                try await during(Running(stdoutURL: stdoutURL, state: state))
            } catch {
                process.terminate()
                for await _ in ended {}
                timer.cancel()
                throw error
            }
        }
        for await _ in ended {}
        timer.cancel()
        let out = (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? ""
        let result = Result(
            status: process.terminationStatus, stdout: out, stderr: err, exited: process.terminationReason == .exit)
        if !result.exited { throw TestFailure("yard \(arguments.joined(separator: " ")) did not finish within \(timeout):\n\(result)") }
        return result
    }
}

/// A stand-in for `GET /v1/runs/{id}/events` whose first connection breaks off after
/// three stored events and a live delta (which has no `id:`), and whose later ones send
/// the rest after the client's `Last-Event-ID`. It records what each connection asked for.
struct BreakingEventServer: Sendable {
    struct Connection: Sendable, Equatable {
        var lastEventID: String?
        var query: String
    }

    let port: Int
    private let log: Log
    var base: String { "http://127.0.0.1:\(port)" }
    var connections: [Connection] { log.all }

    final class Log: Sendable {
        private let entries = Mutex<[Connection]>([])
        func append(_ entry: Connection) -> Int {
            entries.withLock {
                $0.append(entry)
                return $0.count
            }
        }
        var all: [Connection] { entries.withLock { $0 } }
    }

    struct Broken: Error {}

    static let events: [(Int, String, String)] = [
        (1, "run.created", "-"), (2, "step.started", "write"), (3, "model.routed", "write"), (4, "run.succeeded", "-"),
    ]

    static func block(_ event: (Int, String, String)) -> String {
        let step = event.2 == "-" ? "null" : "\"\(event.2)\""
        return "id: \(event.0)\nevent: \(event.1)\ndata: {\"seq\":\(event.0),\"type\":\"\(event.1)\",\"step\":\(step),\"data\":{}}\n\n"
    }

    static func with<T: Sendable>(_ body: @Sendable (BreakingEventServer) async throws -> T) async throws -> T {
        let log = Log()
        let router = Router()
        router.get("/v1/runs/:id/events") { request, _ -> Response in
            let number = log.append(Connection(lastEventID: request.headers[.init("Last-Event-ID")!], query: request.uri.query ?? ""))
            let after = Int(request.headers[.init("Last-Event-ID")!] ?? "0") ?? 0
            let body = ResponseBody { writer in
                var text = ""
                for event in events where event.0 > after && (number > 1 || event.0 <= 3) { text += block(event) }
                if number == 1 { text += "event: model.delta\ndata: {\"step\":\"write\",\"call\":0,\"expert\":\"flash\",\"text\":\"hello \"}\n\n" }
                try await writer.write(ByteBuffer(string: text))
                if number == 1 { throw Broken() }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream"], body: body)
        }
        var logger = Logger(label: "breaking-events")
        logger.logLevel = .critical
        return try await withTestApplication(router: router, logger: logger) { port in
            try await body(BreakingEventServer(port: port, log: log))
        }
    }
}
