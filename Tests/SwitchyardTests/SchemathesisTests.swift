import Foundation
import Testing

/// The API as served conforms to its document: `Scripts/schemathesis.sh` runs
/// Schemathesis (pinned, installed by `Scripts/setup.sh`) against a live `yard serve`
/// with `docs/openapi.yaml`, a bounded and reproducible number of requests per
/// operation, and fails on any 5xx and on any status, content type or body the
/// document does not describe.
@Suite struct SchemathesisTests {
    /// This package's root, found from this file's place in it.
    static let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Runs the script with `arguments`; its output goes to a file (a pipe could fill up).
    static func script(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("schemathesis-\(UUID().uuidString).log")
        try Data().write(to: log)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [package.appendingPathComponent("Scripts/schemathesis.sh").path] + arguments
        process.currentDirectoryURL = package
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        try handle.close()
        return (status, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// Whether Schemathesis is installed or pip can install it (exit 3 when it cannot).
    static let installed: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [package.appendingPathComponent("Scripts/schemathesis.sh").path, "--install-only"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    @Test(
        .enabled(if: installed, "skipped: Schemathesis could not be installed with pip (run Scripts/schemathesis.sh --install-only to see why)"),
        .timeLimit(.minutes(10)))
    func theServerConformsToItsOpenAPIDocument() async throws {
        let (status, output) = try await Self.script([], environment: ["YARD_BIN": YardCLI.binary.path])
        let summary = output.split(separator: "\n").filter {
            $0.contains("Test cases:") || $0.contains("generated,") || $0.contains("operations tested")
        }
        print(summary.joined(separator: "\n"))
        #expect(status == 0, "Scripts/schemathesis.sh exited \(status):\n\(output.suffix(12_000))")
    }
}
