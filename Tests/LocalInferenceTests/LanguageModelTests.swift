import Foundation
import Testing

@testable import LocalInference

/// The architecture-neutral front door: a GGUF loads as the architecture it declares and
/// `Generator` runs it, whatever it is.
struct LanguageModelTests {
    static func fixturePath(_ name: String) -> String {
        Support.testsDir.appendingPathComponent("Fixtures/\(name).gguf").path
    }

    @Test(arguments: DeepSeek2EndToEndTests.names)
    func deepSeek2FilesAreDetectedByTheirArchitecture(_ name: String) throws {
        let model = try LanguageModel(path: Self.fixturePath(name))
        guard case .deepseek2(let deepseek) = model else {
            Issue.record("\(name) loaded as \(model.architecture)")
            return
        }
        #expect(model.architecture == "deepseek2")
        #expect(model.vocabularySize == deepseek.config.vocabularySize)
        #expect(model.contextLength == deepseek.config.contextLength)
        let reloaded = try LanguageModel(path: Self.fixturePath(name))
        #expect(model.isSame(as: model) && !model.isSame(as: reloaded))
    }

    /// Greedy `Generator` output on each synthetic DeepSeek-2 model is the NumPy reference's
    /// continuation (an end-of-sequence token ends it and is not returned, as for Gemma).
    @Test(arguments: DeepSeek2EndToEndTests.names)
    func generatorGreedyMatchesNumPy(_ name: String) throws {
        let ref = try #require(try Support.fixture("deepseek2-reference.json", as: DeepSeek2Reference.self).models[name])
        let model = try LanguageModel(path: Self.fixturePath(name))
        let eos = model.tokenizer.eos
        let expected = Array(ref.greedy.continuation.prefix { $0 != eos })
        for maxBatch in [64, 3] {  // one prefill chunk, and several
            let generator = Generator(model: model, maxBatch: maxBatch)
            var streamed = ""
            let result = try generator.generate(promptTokens: ref.greedy.prompt, maxTokens: ref.greedy.continuation.count) { piece in
                streamed += piece
                return true
            }
            #expect(result.tokens == expected, "maxBatch \(maxBatch)")
            #expect(result.promptTokenCount == ref.greedy.prompt.count)
            #expect(result.finishReason == (expected.count < ref.greedy.continuation.count ? .endOfSequence : .length))
            #expect(streamed == result.text)
        }
    }

    /// The adapter adds no arithmetic: logits through `LanguageModelContext` are the
    /// architecture context's, bit for bit.
    @Test func contextAdapterIsBitIdenticalToTheArchitecturesContext() throws {
        let name = "deepseek2-v3-tiny"
        let ref = try #require(try Support.fixture("deepseek2-reference.json", as: DeepSeek2Reference.self).models[name])
        let model = try LanguageModel(path: Self.fixturePath(name))
        guard case .deepseek2(let deepseek) = model else { throw LocalInferenceError.unsupportedArchitecture(model.architecture) }
        let ids = ref.cases[0].ids
        let direct = DeepSeek2Context(model: deepseek, maxBatch: 8)
        let directCache = direct.makeCache(capacity: ids.count)
        let want = try direct.forward(ids.enumerated().map { .init(cache: directCache, token: $1, position: $0, wantsLogits: true) })
        let adapted = LanguageModelContext(model: model, maxBatch: 8)
        let cache = adapted.makeCache(capacity: ids.count)
        let got = try adapted.forward(ids.enumerated().map { SequenceToken(cache: cache, token: $1, position: $0, wantsLogits: true) })
        #expect(got == want)
        #expect(cache.count == ids.count)

        // A cache of another model's context is refused, not misread.
        final class ForeignCache: SequenceCache {
            let capacity = 4
            let count = 0
        }
        let foreign = ForeignCache()
        #expect(throws: LocalInferenceError.self) {
            try adapted.forward([SequenceToken(cache: foreign, token: 1, position: 0, wantsLogits: true)])
        }
    }

    /// A file of any other architecture fails to load with an error naming it and the
    /// architectures that do load.
    @Test func unsupportedArchitectureIsAClearError() throws {
        let gguf = try GGUFFile(file: MappedFile(bytes: GGUFBuilder.file(metadata: [("general.architecture", .string("llama"))], tensors: [])))
        #expect(throws: LocalInferenceError.unsupportedArchitecture("llama")) { try LanguageModel(gguf: gguf) }
        let message = LocalInferenceError.unsupportedArchitecture("llama").description
        #expect(message.contains("llama") && message.contains("gemma3") && message.contains("deepseek2"))
    }
}
