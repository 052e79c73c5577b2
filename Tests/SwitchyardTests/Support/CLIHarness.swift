import Foundation
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
        candidates.append(URL(fileURLWithPath: "/work/main/.build/debug/yard"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }()

    /// Runs `yard ARGUMENTS` against `server` with `YARD_URL`, `YARD_API_KEY` and
    /// `YARD_ADMIN_KEY` set (nil leaves a variable unset), and returns when it exits.
    /// Output goes to temporary files, so a chatty process never blocks on a full pipe,
    /// and the wait is a termination handler, so no thread of the test blocks.
    static func run(
        _ arguments: [String], url: String, apiKey: String? = nil, adminKey: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("yard-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stdoutURL = directory.appendingPathComponent("stdout"), stderrURL = directory.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        let stdout = try FileHandle(forWritingTo: stdoutURL), stderr = try FileHandle(forWritingTo: stderrURL)

        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("YARD_") }
        environment["YARD_URL"] = url
        environment["YARD_API_KEY"] = apiKey
        environment["YARD_ADMIN_KEY"] = adminKey
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr

        let (ended, continuation) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in continuation.finish() }
        try process.run()
        try? stdout.close()
        try? stderr.close()
        let timer = Task {
            try await Task.sleep(for: timeout)
            process.terminate()
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
