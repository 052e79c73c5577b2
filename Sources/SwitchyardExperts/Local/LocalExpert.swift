import Foundation
import LocalInference

/// An expert answered by a GGUF model running in this process (``LocalInference``), at no
/// cost and with no network: `experts: {flash: {provider: local, model: PATH}}`. The file
/// may be any architecture the engine runs (Gemma 3, DeepSeek-V2/V3), detected from it.
///
/// - The model is shared: every expert naming the same file (by any path) uses one
///   ``LocalModelRuntime`` from ``LocalModelRegistry/shared``, which loads the weights once,
///   on first use, on the runtime's own thread.
/// - Calls are batched: concurrent calls decode together, one forward pass per token for
///   all of them (``LocalBatchScheduler``), up to the batch limit; the rest wait in line.
/// - The prompt is a plain transcript for a base model (``LocalPromptFormat``). The model
///   cannot call tools: a request offering tools gets a text answer without tool calls.
/// - `max_tokens` is the request's, capped by the expert's; `temperature` is the request's
///   (nil or 0: greedy, deterministic; above 0: top-k 40, top-p 0.95, a fresh seed).
/// - Usage is counted in the model's own tokens: the prompt's (BOS included, all cache
///   misses: there is no prompt cache) and the generated ones; no reasoning tokens. The
///   reported model is the file's name without `.gguf`, so that a price-book row can
///   price it; without one a call costs nothing.
public final class LocalExpert: Expert {
    public let name: String
    public let configuration: LocalExpertConfiguration
    public let runtime: LocalModelRuntime

    public var model: String { configuration.modelName }

    /// Cheap: finds (or creates) the file's runtime; the model loads on the first call
    /// (or on ``load()``).
    public init(name: String, configuration: LocalExpertConfiguration, registry: LocalModelRegistry = .shared) {
        self.name = name
        self.configuration = configuration
        self.runtime = registry.runtime(for: configuration.modelPath, batchLimit: configuration.concurrency)
    }

    /// Loads the model now (off the cooperative pool), instead of on the first call.
    public func load() async throws(ExpertError) {
        _ = try await runtime.model()
    }

    public func complete(_ request: ModelRequest) async throws(ExpertError) -> ModelResponse {
        try await complete(request, onDelta: nil)
    }

    public func complete(_ request: ModelRequest, onDelta: DeltaHandler?) async throws(ExpertError) -> ModelResponse {
        let prompt = LocalPromptFormat.render(request)
        let maxTokens = min(max(0, request.maxTokens ?? configuration.maxTokens), configuration.maxTokens)
        var sampling = SamplingParameters.greedy
        if let temperature = request.temperature, temperature > 0 {
            sampling = SamplingParameters(temperature: Float(temperature), seed: UInt64.random(in: 0...UInt64.max))
        }
        let generation = try await runtime.generate(
            prompt: prompt, maxTokens: maxTokens, sampling: sampling, stop: LocalPromptFormat.stopStrings, onDelta: onDelta)
        return ModelResponse(
            text: generation.text, finishReason: generation.finishReason == .length ? "length" : "stop", model: model,
            usage: ReportedUsage(
                promptTokens: generation.promptTokens, completionTokens: generation.completionTokens, cacheHitTokens: 0,
                cacheMissTokens: generation.promptTokens, reasoningTokens: 0))
    }
}
