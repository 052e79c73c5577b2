import Foundation
import LocalInference
import Logging
import SwitchyardCore
import SwitchyardEngine
import SwitchyardExperts
import SwitchyardServer
import SwitchyardStore
import SwitchyardTools
import Synchronization
import Testing

/// The `local` provider on the real Gemma 3 270M model. Serialized: the batching
/// assertions need no other test decoding on the same model at the same time.
@Suite(.serialized)
struct LocalExpertTests {
    /// The installed model ($SWITCHYARD_LOCAL_MODEL, then the usual places), or a failure
    /// that says how to install it.
    static func modelPath() throws -> String {
        try #require(
            LocalModelLocator.find(repoRoot: FileManager.default.currentDirectoryPath),
            Comment(rawValue: LocalModelLocator.missingMessage(repoRoot: FileManager.default.currentDirectoryPath)))
    }

    static func expert(name: String = "flash", maxTokens: Int = 64, concurrency: Int = 8) throws -> LocalExpert {
        LocalExpert(name: name, configuration: LocalExpertConfiguration(modelPath: try modelPath(), maxTokens: maxTokens, concurrency: concurrency))
    }

    static func request(_ prompt: String, system: String? = nil, maxTokens: Int) -> ModelRequest {
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(.system, system)) }
        messages.append(ChatMessage(.user, prompt))
        return ModelRequest(messages: messages, maxTokens: maxTokens, tenant: "test")
    }

    /// What the engine's own `Generator` (as `yard local generate`) continues the same
    /// prompt with, greedy, with the same stop strings and token count.
    static func reference(_ request: ModelRequest, maxTokens: Int, model: LanguageModel) throws -> GenerationResult {
        let generator = Generator(model: model)
        return try generator.generate(prompt: LocalPromptFormat.render(request), maxTokens: maxTokens, stop: LocalPromptFormat.stopStrings)
    }

    static func trimmedLeading(_ text: String) -> String { String(text.drop(while: \.isWhitespace)) }

    /// Runs `generate` on every prompt at once; the results in prompt order.
    static func concurrently(
        _ prompts: [String], _ generate: @escaping @Sendable (String) async throws -> LocalGeneration
    ) async throws -> [LocalGeneration] {
        try await withThrowingTaskGroup(of: (Int, LocalGeneration).self) { group in
            for (index, prompt) in prompts.enumerated() {
                group.addTask { (index, try await generate(prompt)) }
            }
            var out = [LocalGeneration?](repeating: nil, count: prompts.count)
            for try await (index, generation) in group { out[index] = generation }
            return out.compactMap { $0 }
        }
    }

    @Test func greedyAnswerIsTheGeneratorsContinuationWithRealUsageAndDeltas() async throws {
        let expert = try Self.expert()
        let model = try await expert.runtime.model().model
        var responses: [ModelResponse] = []
        for (prompt, maxTokens) in [("What is the capital of France?", 24), ("List the numbers from 1 to 50, separated by commas.", 10)] {
            let request = Self.request(prompt, maxTokens: maxTokens)
            let deltas = Mutex<[String]>([])
            let response = try await expert.complete(request, onDelta: { delta in deltas.withLock { $0.append(delta.text) } })
            let expected = try Self.reference(request, maxTokens: maxTokens, model: model)
            #expect(response.text == Self.trimmedLeading(expected.text))
            #expect(!response.text.isEmpty)
            #expect(deltas.withLock { $0.joined() } == response.text)
            #expect(deltas.withLock { $0.count } > 1, "the answer streams in pieces")
            // Real tokens: the prompt as the tokenizer counts it (BOS included), the generated ones.
            let promptTokens = model.tokenizer.encode(LocalPromptFormat.render(request), parseSpecial: false)
            #expect(promptTokens.first == model.tokenizer.bos)
            #expect(response.usage.promptTokens == promptTokens.count)
            #expect(response.usage.promptTokens == expected.promptTokenCount)
            #expect(response.usage.completionTokens == expected.tokens.count)
            #expect(response.usage.cacheMissTokens == promptTokens.count)
            #expect(response.usage.cacheHitTokens == 0)
            #expect(response.usage.reasoningTokens == 0)
            #expect(response.usage.usageKnown)
            #expect(response.model == "gemma-3-270m-q4_k_m")
            #expect(response.toolCalls.isEmpty)
            #expect(response.finishReason == (expected.finishReason == .length ? "length" : "stop"))
            responses.append(response)
        }
        // The first prompt stops at the next turn; the second runs into its cap.
        let capital = responses[0]
        let story = responses[1]
        #expect(capital.text.contains("Paris"))
        #expect(!capital.text.contains("User:"))
        #expect(capital.finishReason == "stop")
        #expect(story.finishReason == "length")
        #expect(story.usage.completionTokens == 10)
    }

    @Test func maxTokensIsTheRequestsCappedByTheExperts() async throws {
        let expert = try Self.expert(maxTokens: 5)
        let response = try await expert.complete(Self.request("Write a long story about a dragon.", maxTokens: 8_192))
        #expect(response.usage.completionTokens == 5)
        #expect(response.finishReason == "length")
        let shorter = try await expert.complete(Self.request("Write a long story about a dragon.", maxTokens: 3))
        #expect(shorter.usage.completionTokens == 3)
        // With a temperature the answer is sampled (top-k 40, top-p 0.95), still capped.
        var sampled = Self.request("Write a long story about a dragon.", maxTokens: 5)
        sampled.temperature = 0.9
        let answer = try await expert.complete(sampled)
        #expect(answer.usage.completionTokens <= 5)
    }

    @Test func concurrentCallsAreDecodedInOneBatchAndAnswerAsAlone() async throws {
        let expert = try Self.expert()
        let runtime = expert.runtime
        let prompts = ["Write a poem about the sea.", "List three colours.", "Tell me about the moon.", "What is two plus two?"]
        @Sendable func generate(_ prompt: String) async throws -> LocalGeneration {
            try await runtime.generate(
                prompt: LocalPromptFormat.render(Self.request(prompt, maxTokens: 12)), maxTokens: 12, sampling: .greedy, stop: [], onDelta: nil)
        }
        var alone: [String] = []
        for prompt in prompts {
            let generation = try await generate(prompt)
            #expect(generation.maxBatchSeen == 1)
            alone.append(generation.text)
        }
        let before = await runtime.statistics()
        let together = try await Self.concurrently(prompts, generate)
        let after = await runtime.statistics()
        #expect(together.map(\.text) == alone)
        #expect(together.allSatisfy { $0.completionTokens == 12 })
        #expect(together.map(\.maxBatchSeen).max() == prompts.count, "all four sequences shared forward passes")
        #expect(after.maxSequencesPerStep >= prompts.count)
        // Batched: far fewer forward passes than one per token per sequence.
        #expect(after.steps - before.steps < prompts.count * 12)
    }

    @Test func cancellingOneCallLeavesTheOthersInTheBatchAlone() async throws {
        let expert = try Self.expert()
        let keep = Self.request("Tell me about the moon.", maxTokens: 24)
        let dropped = Self.request("Write a long story about a dragon.", maxTokens: 32)
        let alone = try await expert.complete(keep)

        let (firstDelta, signal) = AsyncStream<Void>.makeStream()
        let victim = Task {
            defer { signal.finish() }  // never leave the wait below hanging
            return try await expert.complete(dropped, onDelta: { _ in signal.yield() })
        }
        let survivor = Task { try await expert.complete(keep) }
        for await _ in firstDelta { break }
        victim.cancel()
        do {
            _ = try await victim.value
            Issue.record("the cancelled call returned an answer")
        } catch let error as ExpertError {
            #expect(error.code == .cancelled)
            #expect((error.usage?.promptTokens ?? 0) > 0)
        }
        let kept = try await survivor.value
        #expect(kept.text == alone.text)
        #expect(kept.usage == alone.usage)
    }

    @Test func aCallCancelledBeforeItStartsFailsAsCancelled() async throws {
        let expert = try Self.expert()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await expert.complete(Self.request("Hello", maxTokens: 4))
        }
        do {
            _ = try await task.value
            Issue.record("the cancelled call returned an answer")
        } catch let error as ExpertError {
            #expect(error.code == .cancelled)
        }
    }

    @Test func promptIsAPlainTranscriptForTheBaseModel() {
        let request = ModelRequest(
            messages: [
                ChatMessage(.system, "Be brief."),
                ChatMessage(.user, "Look it up."),
                ChatMessage(.assistant, "", toolCalls: [ToolCall(id: "c1", name: "search", arguments: "{\"q\":\"x\"}")]),
                .toolResult(callID: "c1", "found x"),
                ChatMessage(.user, "And?"),
            ],
            tools: [FunctionDefinition(name: "search")], wantsJSON: true, tenant: "t")
        #expect(
            LocalPromptFormat.render(request) == """
                Be brief.

                Answer with a single JSON object and nothing else.

                User: Look it up.
                Assistant: (called search with {"q":"x"})
                Tool: found x
                User: And?
                Assistant:
                """)
        #expect(LocalPromptFormat.render(Self.request("Hi", maxTokens: 1)) == "User: Hi\nAssistant:")
    }

    @Test func toolsAreOfferedButNeverCalled() async throws {
        let expert = try Self.expert()
        var request = Self.request("Search the web for the weather in Paris.", maxTokens: 8)
        request.tools = [FunctionDefinition(name: "web_search", description: "Searches the web")]
        let response = try await expert.complete(request)
        #expect(response.toolCalls.isEmpty)
        #expect(["stop", "length"].contains(response.finishReason))
    }

    // MARK: - Configuration

    @Test func configurationBuildsLocalExpertsThatShareOneModel() throws {
        let path = try Self.modelPath()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("local-expert-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory + "/model.gguf", withDestinationPath: path)

        let configuration = try ServerConfiguration.parse(
            """
            experts:
              flash: {provider: local, model: \(path), max_tokens: 256, concurrency: 8}
              pro: {provider: local, model: model.gguf, max_tokens: 512}
            """, file: "test.yaml")
        let pool = try ExpertPool.make(from: configuration.experts, baseDirectory: directory)
        let flash = try #require(try pool.expert(named: "flash") as? LocalExpert)
        let pro = try #require(try pool.expert(named: "pro") as? LocalExpert)
        #expect(flash.runtime === pro.runtime, "one loaded model per file, whatever the path")
        #expect(flash.configuration.maxTokens == 256)
        #expect(flash.configuration.concurrency == 8)
        #expect(pro.configuration.maxTokens == 512)
        #expect(pro.configuration.concurrency == LocalExpertConfiguration.defaultConcurrency)
        #expect(flash.model == "gemma-3-270m-q4_k_m")
        #expect(pro.model == "model")
        #expect(flash.runtime.batchLimit >= 8)

        // Round trip through the Codable form.
        let entry = try #require(configuration.experts["flash"])
        let decoded = try JSONDecoder().decode(ExpertConfiguration.self, from: JSONEncoder().encode(entry))
        #expect(decoded == entry)
    }

    @Test func configurationMistakesAreClear() throws {
        func message(_ entry: ExpertConfiguration) -> String {
            do {
                _ = try ExpertPool.make(from: ["flash": entry, "pro": entry], baseDirectory: "/nonexistent")
                return ""
            } catch {
                return error.message
            }
        }
        let missing = message(ExpertConfiguration(provider: .local, model: "no-such-model.gguf"))
        #expect(missing.contains("experts.flash.model"))
        #expect(missing.contains("Scripts/setup-local-model.sh"))
        #expect(message(ExpertConfiguration(provider: .local, baseURL: "http://x")).contains("base_url does not apply to provider: local"))
        #expect(message(ExpertConfiguration(provider: .local, maxTokens: 0)).contains("max_tokens must be 1 to"))
        #expect(message(ExpertConfiguration(provider: .local, concurrency: 100)).contains("concurrency must be 1 to 32"))
        #expect(
            message(ExpertConfiguration(provider: .openai, model: "m", apiKeyEnv: "PATH", maxTokens: 10)).contains(
                "max_tokens applies only to provider: local"))
        #expect(
            message(ExpertConfiguration(provider: .scripted, script: "s.yaml", maxTokens: 10)).contains("max_tokens applies only to provider: local"))
        #expect(throws: ConfigurationError.self) {
            try ServerConfiguration.parse("experts:\n  flash: {provider: local, max_token: 3}\n", file: "bad.yaml")
        }
    }

    // MARK: - End to end

    @Test func aWorkflowStepRunsOnTheLocalModel() async throws {
        let path = try Self.modelPath()
        let entry = ExpertConfiguration(provider: .local, model: path, concurrency: 8, maxTokens: 32)
        let experts = try ExpertPool.make(from: ["flash": entry, "pro": entry], baseDirectory: nil)
        let flash = try #require(try experts.expert(named: "flash") as? LocalExpert)
        let expected = try await flash.complete(Self.request("What is the capital of France?", maxTokens: 12))
        try await withTestStore { store in
            try await withLocalEngine(on: store, experts: experts) { _ in
                try await store.apply(
                    """
                    kind: Workflow
                    name: local-answer
                    steps:
                      - id: ask
                        model: flash
                        prompt: "What is the capital of France?"
                        max_tokens: 12
                    outputs:
                      answer: "{{ steps.ask.output }}"
                    """)
                let run = try await store.wait(for: try await store.start("local-answer").id, timeout: .seconds(60))
                #expect(run.status == .succeeded)
                let step = try #require(run.steps.first)
                #expect(step.output == .string(expected.text))
                let called = try await store.events(of: run.id).filter { $0.type == "model.called" }
                #expect(called.count == 1)
                #expect(called.first?.data["expert"] == "flash")
                #expect(called.first?.data["model"] == "gemma-3-270m-q4_k_m")
                #expect(called.first?.data["prompt_tokens"] == .int(expected.usage.promptTokens))
                #expect(called.first?.data["completion_tokens"] == .int(expected.usage.completionTokens))
            }
        }
    }

    // MARK: - Throughput (not an assertion)

    /// Aggregate decode tokens/s through the expert for 1 and 4 concurrent calls.
    /// Run with SWITCHYARD_LOCAL_BENCH=1 on a quiet machine.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SWITCHYARD_LOCAL_BENCH"] == "1"))
    func throughput() async throws {
        let expert = try Self.expert(maxTokens: 128)
        let runtime = expert.runtime
        _ = try await runtime.model()
        let tokens = 64
        for concurrency in [1, 4, 8] {
            let clock = ContinuousClock()
            let start = clock.now
            let generated = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<concurrency {
                    group.addTask {
                        try await runtime.generate(
                            prompt: "User: Tell me story number \(index).\nAssistant:", maxTokens: tokens, sampling: .greedy, stop: [], onDelta: nil
                        ).completionTokens
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = clock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(
                "local expert: \(concurrency) concurrent, \(generated) tokens in \(String(format: "%.2f", seconds)) s = \(String(format: "%.1f", Double(generated) / seconds)) tokens/s (prompts included)"
            )
        }
    }
}

/// Runs an engine whose experts are `experts` (here: local ones) on an existing store.
func withLocalEngine<T: Sendable>(
    on store: TestStore, experts: ExpertPool, _ body: @Sendable (Engine) async throws -> T
) async throws -> T {
    let logger = testLogger("test.engine.local")
    let tools = ToolEnvironment(
        runner: ToolRunner(logger: logger), secretBox: SecretBox(current: testSecretKey), egress: try EgressPolicy(allowing: []))
    let engine = Engine(database: store.database, experts: experts, tools: tools, configuration: fastEngineConfiguration(), logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await engine.run() }
        defer { group.cancelAll() }
        return try await body(engine)
    }
}
