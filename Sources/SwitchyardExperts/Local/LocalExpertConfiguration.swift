import Foundation
import LocalInference

/// How one `local` expert runs: which GGUF file, how long an answer may be, and how
/// many calls are decoded together.
///
/// ```yaml
/// experts:
///   flash: {provider: local, model: models/gemma-3-270m-q4_k_m.gguf, max_tokens: 256, concurrency: 8}
/// ```
///
/// - `model`: the GGUF file, resolved like a scripted expert's `script:` (absolute; else
///   relative to the config file's folder, then to the working directory). Omitted: the
///   installed model (`$SWITCHYARD_LOCAL_MODEL`, `$SWITCHYARD_MODEL_DIR`,
///   /var/lib/switchyard/models), which `Scripts/setup-local-model.sh` installs.
/// - `max_tokens`: the cap on one answer's tokens (default 512). A step's own
///   `max_tokens` (the engine always sends one) applies when it is lower.
/// - `concurrency`: the most calls decoded together in one forward pass (default 8,
///   at most 32); further calls wait in line, in arrival order, until a sequence finishes.
///   Experts that use the same file share one batch, whose limit is the largest of theirs.
public struct LocalExpertConfiguration: Sendable, Hashable {
    /// The GGUF file as resolved from the configuration (not canonicalized).
    public var modelPath: String
    public var maxTokens: Int
    public var concurrency: Int

    public static let defaultMaxTokens = 512
    public static let defaultConcurrency = 8
    public static let maximumConcurrency = 32
    public static let maximumMaxTokens = 32_768

    public init(modelPath: String, maxTokens: Int = defaultMaxTokens, concurrency: Int = defaultConcurrency) {
        self.modelPath = modelPath
        self.maxTokens = maxTokens
        self.concurrency = concurrency
    }

    /// The name the expert reports and the price book matches: the file name without
    /// `.gguf` (`gemma-3-270m-q4_k_m`).
    public var modelName: String {
        var file = (modelPath as NSString).lastPathComponent
        if file.lowercased().hasSuffix(".gguf") { file.removeLast(5) }
        return file
    }
}

extension ExpertConfiguration {
    /// The installed local model's path, if there is one: where the default `flash`
    /// and `pro` experts find it when no API key is set. (Callers need not know how
    /// the local engine looks for its files.)
    public static func installedLocalModel() -> String? {
        LocalModelLocator.find()
    }

    /// The `local` provider's checks that need neither the file system nor the environment.
    func validateLocal(name: String) throws(ExpertConfigurationError) {
        let key = "experts.\(name)"
        let foreign: [(String, Bool)] = [
            ("script", script != nil), ("base_url", baseURL != nil), ("api_key_env", apiKeyEnv != nil),
            ("connect_timeout", connectTimeout != nil), ("read_timeout", readTimeout != nil), ("queue_timeout", queueTimeout != nil),
            ("max_retries", maxRetries != nil), ("thinking", thinking != nil), ("reasoning_effort", reasoningEffort != nil),
        ]
        if let (field, _) = foreign.first(where: \.1) {
            throw ExpertConfigurationError(
                "\(key).\(field) does not apply to provider: local (it takes model, max_tokens and concurrency)")
        }
        if let model, model.isEmpty {
            throw ExpertConfigurationError("\(key).model must be the path of a GGUF file (or be left out for the installed model)")
        }
        if let maxTokens, !(1...LocalExpertConfiguration.maximumMaxTokens).contains(maxTokens) {
            throw ExpertConfigurationError("\(key).max_tokens must be 1 to \(LocalExpertConfiguration.maximumMaxTokens)")
        }
        if let concurrency, !(1...LocalExpertConfiguration.maximumConcurrency).contains(concurrency) {
            throw ExpertConfigurationError(
                "\(key).concurrency must be 1 to \(LocalExpertConfiguration.maximumConcurrency) (the most calls decoded together)")
        }
    }

    /// The `local` provider's settings: the model file found (a configuration error
    /// naming the setup script when it is not), defaults filled in.
    public func localConfiguration(name: String, baseDirectory: String?) throws(ExpertConfigurationError) -> LocalExpertConfiguration {
        try validateLocal(name: name)
        let key = "experts.\(name).model"
        let fm = FileManager.default
        let path: String
        if let model {
            var candidates: [String] = []
            if model.hasPrefix("/") {
                candidates = [model]
            } else {
                if let baseDirectory { candidates.append(baseDirectory + "/" + model) }
                candidates.append(fm.currentDirectoryPath + "/" + model)
            }
            guard let found = candidates.first(where: { Self.isReadableFile($0) }) else {
                throw ExpertConfigurationError(
                    "\(key): the GGUF file \(model) was not found (looked in \(candidates.joined(separator: ", "))); "
                        + "run \(LocalModelLocator.setupCommand) to install the local model (it prints its path), or point model: at a .gguf file")
            }
            path = found
        } else {
            guard let found = LocalModelLocator.find(repoRoot: baseDirectory ?? fm.currentDirectoryPath) else {
                throw ExpertConfigurationError("\(key): " + LocalModelLocator.missingMessage(repoRoot: baseDirectory ?? fm.currentDirectoryPath))
            }
            path = found
        }
        return LocalExpertConfiguration(
            modelPath: path, maxTokens: maxTokens ?? LocalExpertConfiguration.defaultMaxTokens,
            concurrency: concurrency ?? LocalExpertConfiguration.defaultConcurrency)
    }

    private static func isReadableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isReadableFile(atPath: path)
    }
}
