import Foundation
import LocalInference
import SwitchyardCore
import SwitchyardExperts
import Synchronization
import Testing

/// The `local` provider on the synthetic DeepSeek-2 (MoE, MLA) fixtures of LocalInference's
/// tests: the same front door as Gemma 3, chosen by the file's architecture. The models are
/// random-weight toys, so the assertions compare the provider with the engine's own
/// `Generator` rather than with any expected wording. Serialized: the batching assertions
/// need no other test decoding on the same model at the same time.
@Suite(.serialized)
struct LocalExpertDeepSeek2Tests {
    static let fixtures = ["deepseek2-v3-tiny", "deepseek2-lite-tiny"]

    static func path(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("LocalInferenceTests/Fixtures/\(name).gguf").path
    }

    static func expert(_ name: String, maxTokens: Int = 16) -> LocalExpert {
        LocalExpert(name: "moe", configuration: LocalExpertConfiguration(modelPath: path(name), maxTokens: maxTokens, concurrency: 4))
    }

    @Test(arguments: fixtures)
    func answerIsTheGeneratorsContinuationWithRealUsageAndDeltas(_ name: String) async throws {
        let expert = Self.expert(name)
        let model = try await expert.runtime.model().model
        #expect(model.architecture == "deepseek2")
        let request = LocalExpertTests.request("the ant sat on a hat", maxTokens: 12)
        let deltas = Mutex<[String]>([])
        let response = try await expert.complete(request, onDelta: { delta in deltas.withLock { $0.append(delta.text) } })
        let expected = try LocalExpertTests.reference(request, maxTokens: 12, model: model)
        #expect(response.text == LocalExpertTests.trimmedLeading(expected.text))
        #expect(!response.text.isEmpty)
        #expect(deltas.withLock { $0.joined() } == response.text)
        let promptTokens = model.tokenizer.encode(LocalPromptFormat.render(request), parseSpecial: false)
        #expect(response.usage.promptTokens == promptTokens.count)
        #expect(response.usage.promptTokens == expected.promptTokenCount)
        #expect(response.usage.completionTokens == expected.tokens.count)
        #expect(response.usage.completionTokens > 0)
        #expect(response.usage.cacheMissTokens == promptTokens.count)
        #expect(response.usage.usageKnown)
        #expect(response.model == name)
        #expect(response.finishReason == (expected.finishReason == .length ? "length" : "stop"))
    }

    @Test(arguments: fixtures)
    func twoConcurrentCallsShareForwardPassesAndAnswerAsAlone(_ name: String) async throws {
        let runtime = Self.expert(name).runtime
        let prompts = ["the ant sat on a hat", "a cat in the hut"]
        @Sendable func generate(_ prompt: String) async throws -> LocalGeneration {
            try await runtime.generate(
                prompt: LocalPromptFormat.render(LocalExpertTests.request(prompt, maxTokens: 10)), maxTokens: 10, sampling: .greedy,
                stop: [], onDelta: nil)
        }
        var alone: [LocalGeneration] = []
        for prompt in prompts {
            let generation = try await generate(prompt)
            #expect(generation.maxBatchSeen == 1)
            alone.append(generation)
        }
        let together = try await LocalExpertTests.concurrently(prompts, generate)
        #expect(together.map(\.text) == alone.map(\.text))
        #expect(together.map(\.completionTokens) == alone.map(\.completionTokens))
        #expect(together.map(\.maxBatchSeen).max() == prompts.count, "both sequences shared forward passes")
    }

    /// A file of an architecture the engine does not run fails the call with the loader's
    /// message naming it.
    @Test func unsupportedArchitectureFailsTheCallClearly() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("local-arch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("llama.gguf")
        try Self.minimalGGUF(architecture: "llama").write(to: file)
        let expert = LocalExpert(name: "x", configuration: LocalExpertConfiguration(modelPath: file.path, maxTokens: 4, concurrency: 1))
        do {
            _ = try await expert.complete(LocalExpertTests.request("hi", maxTokens: 2))
            Issue.record("a llama-architecture file answered")
        } catch {
            #expect(error.code == .providerError)
            #expect(error.message.contains("architecture llama is not supported"))
            #expect(error.message.contains("gemma3, deepseek2"))
        }
    }

    /// A GGUF v3 file with only `general.architecture` in its metadata and no tensors.
    static func minimalGGUF(architecture: String) -> Data {
        var data = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        func string(_ s: String) {
            u64(UInt64(s.utf8.count))
            data.append(contentsOf: Array(s.utf8))
        }
        data.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(0)  // tensors
        u64(1)  // metadata entries
        string("general.architecture")
        u32(8)  // string
        string(architecture)
        while data.count % 32 != 0 { data.append(0) }
        return data
    }
}
