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

    func load() throws -> Gemma3Model {
        let path = try resolve()
        do {
            return try Gemma3Model(path: path)
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
            FileHandle.standardError.write(Data(
                "prompt \(result.promptTokenCount) tokens, generated \(result.tokens.count) tokens in \(String(format: "%.2f", secs)) s (\(result.finishReason.rawValue))\n".utf8))
        }
    }
}
