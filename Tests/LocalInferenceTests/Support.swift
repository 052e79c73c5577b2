import Foundation
import Testing

@testable import LocalInference

/// Fixture files and the real model, shared by the golden tests.
enum Support {
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repoRoot = testsDir.deletingLastPathComponent().deletingLastPathComponent().path

    static func fixture<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        let data = try Data(contentsOf: testsDir.appendingPathComponent("Fixtures/\(name)"))
        return try JSONDecoder().decode(T.self, from: data)
    }

    struct ModelMissing: Error, CustomStringConvertible {
        var description: String
    }

    /// Loaded once per test process (a static let is initialised once, thread-safely).
    static let loaded: Result<Gemma3Model, ModelMissing> = {
        guard let path = LocalModelLocator.find(repoRoot: repoRoot) else {
            return .failure(ModelMissing(description: LocalModelLocator.missingMessage(repoRoot: repoRoot)))
        }
        do {
            return .success(try Gemma3Model(path: path))
        } catch {
            return .failure(ModelMissing(description: "cannot load \(path): \(error); re-run \(LocalModelLocator.setupCommand)"))
        }
    }()

    /// The real Gemma 3 270M model, or a failure that names the setup script.
    static func model() throws -> Gemma3Model {
        try loaded.get()
    }
}

struct TokenizerFixture: Decodable {
    struct Case: Decodable {
        var text: String
        var ids: [Int32]
    }
    var source: String
    var cases: [Case]
}

struct GenerationFixture: Decodable {
    struct Position: Decodable {
        var pos: Int
        var top: [[Double]]
    }
    struct Case: Decodable {
        var prompt: String
        var prompt_ids: [Int32]
        var continuation: [Int32]
        var pieces: [String]
        var positions: [Position]
        var min_margin: Double?
    }
    var source: String
    var n_predict: Int
    var cases: [Case]
}
