import ArgumentParser
import Foundation
import LocalInference

/// `yard local …`: run the in-process GGUF engine directly (no server, no database).
struct Local: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the in-process local model (GGUF) directly.",
        subcommands: [LocalTokenize.self, LocalGenerate.self])
}

/// The `--model` option shared by the local commands: a path, or the installed default.
struct LocalModelOptions: ParsableArguments {
    @Option(help: "Path to a GGUF model (default: $SWITCHYARD_LOCAL_MODEL or the file Scripts/setup-local-model.sh installs).")
    var model: String?

    func resolve() throws -> String {
        if let model { return model }
        guard let found = LocalModelLocator.find(repoRoot: FileManager.default.currentDirectoryPath) else {
            throw ValidationError(LocalModelLocator.missingMessage(repoRoot: FileManager.default.currentDirectoryPath))
        }
        return found
    }

    /// The model at the resolved path, as the architecture its GGUF declares.
    func load() throws -> LanguageModel {
        let path = try resolve()
        do {
            return try LanguageModel(path: path)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

/// `yard local tokenize --model PATH TEXT`: the token ids, BOS first, as a JSON array.
struct LocalTokenize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Print the token ids of TEXT (BOS included) as a JSON array.")

    @OptionGroup var options: LocalModelOptions

    @Argument(help: "The text to tokenize.")
    var text: String

    func run() async throws {
        let path = try options.resolve()
        let tokenizer: SentencePieceTokenizer
        do {
            tokenizer = try SentencePieceTokenizer(gguf: try GGUFFile(path: path))
        } catch {
            throw ValidationError(error.description)
        }
        let ids = tokenizer.encode(text)
        print("[" + ids.map(String.init).joined(separator: ", ") + "]")
    }
}

/// `yard local generate --model PATH --prompt TEXT --max-tokens N`: streams the continuation.
struct LocalGenerate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Stream a continuation of --prompt to stdout (greedy when --temperature is 0).")

    @OptionGroup var options: LocalModelOptions

    @Option(help: "The prompt text.")
    var prompt: String

    @Option(help: "Maximum number of tokens to generate.")
    var maxTokens = 64

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Top-k cut-off when sampling (0 = none).")
    var topK = 40

    @Option(help: "Top-p (nucleus) cut-off when sampling.")
    var topP: Float = 0.95

    @Option(help: "Random seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Stop when this string appears (repeatable); it is not printed.")
    var stop: [String] = []

    @Option(help: "Threads for the kernels (default: all cores).")
    var threads: Int?

    @Flag(help: "Print prompt/decode timings to stderr.")
    var timings = false

    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be ≥ 0") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
    }

    func run() async throws {
        let model = try options.load()
        let generator = Generator(model: model, threads: threads)
        let params = SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let start = DispatchTime.now().uptimeNanoseconds
        let result: GenerationResult
        do {
            result = try generator.generate(prompt: prompt, maxTokens: maxTokens, sampling: params, stop: stop) { piece in
                FileHandle.standardOutput.write(Data(piece.utf8))
                return true
            }
        } catch {
            throw ValidationError(error.description)
        }
        FileHandle.standardOutput.write(Data("\n".utf8))
        if timings {
            let secs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            FileHandle.standardError.write(
                Data(
                    "prompt \(result.promptTokenCount) tokens, generated \(result.tokens.count) tokens in \(String(format: "%.2f", secs)) s (\(result.finishReason.rawValue))\n"
                        .utf8))
        }
    }
}

/// `yard bench local`: prompt-processing and decode throughput of the in-process engine on
/// the real model. Figures, not assertions: run on a quiet machine (release build) and
/// compare with `llama-bench` from Scripts/llama-reference.sh on the same file.
struct LocalBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local", abstract: "Measure local-engine prefill and decode tokens/s (1 and N threads, batched sequences) and peak memory.")

    @OptionGroup var options: LocalModelOptions

    @Option(help: "Prompt tokens for the prefill figure.")
    var promptTokens = 64

    @Option(help: "Decoded tokens per measurement.")
    var decodeTokens = 64

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    func run() async throws {
        guard case .gemma3(let model) = try options.load() else {
            throw ValidationError("yard bench local measures Gemma 3 models only; use yard local generate --timings for other architectures")
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // A prompt of exactly promptTokens tokens: BOS then a repeated ordinary word.
        let prompt: [Int32] = [model.tokenizer.bos] + Array(repeating: Int32(818), count: max(1, promptTokens - 1))

        func seconds(_ body: () throws -> Void) rethrows -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }

        /// Decodes `decodeTokens` steps for `sequences` sequences in one batch per step.
        func decodeRate(threads: Int, sequences: Int) throws -> Double {
            let ctx = InferenceContext(model: model, maxBatch: max(64, sequences), threads: threads)
            var caches: [KVCache] = []
            var next: [Int32] = []
            for _ in 0..<sequences {
                let cache = ctx.makeCache(capacity: 16 + decodeTokens + 1)
                let b = [model.tokenizer.bos, 818, 5279].enumerated().map { BatchToken(cache: cache, token: $1, position: $0, wantsLogits: $0 == 2) }
                next.append(Sampler.argmax(try ctx.forward(b)[0]))
                caches.append(cache)
            }
            let t = try seconds {
                for _ in 0..<decodeTokens {
                    let batch = (0..<sequences).map { BatchToken(cache: caches[$0], token: next[$0], position: caches[$0].count, wantsLogits: true) }
                    next = try ctx.forward(batch).map { Sampler.argmax($0) }
                }
            }
            return Double(decodeTokens * sequences) / t
        }

        /// The median of three runs: one prompt takes only ~0.15 s, short enough for a
        /// scheduler hiccup to show.
        func prefillRate(threads: Int) throws -> Double {
            let ctx = InferenceContext(model: model, maxBatch: 64, threads: threads)
            var rates: [Double] = []
            for _ in 0..<3 {
                let cache = ctx.makeCache(capacity: prompt.count + 1)
                let batch = prompt.enumerated().map { BatchToken(cache: cache, token: $1, position: $0, wantsLogits: $0 == prompt.count - 1) }
                let t = try seconds { _ = try ctx.forward(batch) }
                rates.append(Double(prompt.count) / t)
            }
            return rates.sorted()[1]
        }

        do {
            _ = try decodeRate(threads: cores, sequences: 1)  // warm the page cache
            let prefill = try prefillRate(threads: cores)
            let decode = try decodeRate(threads: cores, sequences: 1)
            let decode1 = try decodeRate(threads: 1, sequences: 1)
            var aggregate: [String: Double] = [:]
            for n in [1, 4, 8] { aggregate[String(n)] = try decodeRate(threads: cores, sequences: n) }
            let rss = Self.peakRSSMegabytes()
            if output == .json {
                let agg = ["1", "4", "8"].map { "\"\($0)\": \(String(format: "%.1f", aggregate[$0] ?? 0))" }.joined(separator: ", ")
                print(
                    "{\"prefill_tps\": \(String(format: "%.1f", prefill)), \"decode_tps\": \(String(format: "%.1f", decode)), \"decode_tps_1thread\": \(String(format: "%.1f", decode1)), \"aggregate_decode_tps\": {\(agg)}, \"rss_mb\": \(String(format: "%.0f", rss))}"
                )
            } else {
                print("threads            \(cores)")
                print("prefill tok/s      \(String(format: "%.1f", prefill)) (\(prompt.count)-token prompt)")
                print("decode tok/s       \(String(format: "%.1f", decode)) (1 thread: \(String(format: "%.1f", decode1)))")
                for n in ["1", "4", "8"] { print("aggregate decode   \(n) seq: \(String(format: "%.1f", aggregate[n] ?? 0)) tok/s") }
                print("peak RSS           \(String(format: "%.0f", rss)) MB")
            }
        } catch let error as LocalInferenceError {
            throw ValidationError(error.description)
        }
    }

    /// VmHWM from /proc/self/status (Linux); 0 where unavailable.
    static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}
