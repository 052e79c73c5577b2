import AsyncHTTPClient
import Foundation
import SwitchyardCore

/// One entry of the server config's `experts:` map.
///
/// Durations are written as in workflows (`500ms`, `10s`, `1m`). Keys that only mean
/// something for one provider are refused on another, so that a typo'd provider does
/// not silently ignore half of its entry.
public struct ExpertConfiguration: Sendable, Hashable, Codable {
    /// Where the expert's answers come from.
    public enum Provider: String, Sendable, Hashable, Codable, CaseIterable {
        /// Answers from a rules file: deterministic, for workflow tests and the demo.
        case scripted
        /// An OpenAI-compatible chat-completions API (DeepSeek's by default).
        case openai
        /// The in-process GGUF engine.
        case local
    }

    public var provider: Provider
    /// For `scripted`: the rules file, relative to the config file's folder or the
    /// working directory.
    public var script: String?
    /// The model name to call or report. For `local`: the GGUF file, relative to the
    /// config file's folder or the working directory (default: the installed model).
    public var model: String?
    /// For `openai`: the API root that serves `/chat/completions`. Default: DeepSeek's.
    public var baseURL: String?
    /// For `openai`: the environment variable holding the API key. Default:
    /// `DEEPSEEK_API_KEY` for DeepSeek's API, none (no `Authorization`) elsewhere.
    public var apiKeyEnv: String?
    public var connectTimeout: TimeSpan?
    public var readTimeout: TimeSpan?
    public var concurrency: Int?
    public var queueTimeout: TimeSpan?
    public var maxRetries: Int?
    /// Thinking mode for calls that do not say; unset leaves it to the provider.
    public var thinking: Bool?
    public var reasoningEffort: ReasoningEffort?
    /// For `local`: the most tokens one answer may have; a request asking for more is capped.
    public var maxTokens: Int?

    public init(
        provider: Provider, script: String? = nil, model: String? = nil, baseURL: String? = nil, apiKeyEnv: String? = nil,
        connectTimeout: TimeSpan? = nil, readTimeout: TimeSpan? = nil, concurrency: Int? = nil, queueTimeout: TimeSpan? = nil,
        maxRetries: Int? = nil, thinking: Bool? = nil, reasoningEffort: ReasoningEffort? = nil, maxTokens: Int? = nil
    ) {
        self.provider = provider
        self.script = script
        self.model = model
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.concurrency = concurrency
        self.queueTimeout = queueTimeout
        self.maxRetries = maxRetries
        self.thinking = thinking
        self.reasoningEffort = reasoningEffort
        self.maxTokens = maxTokens
    }

    /// DeepSeek's API, the `openai` provider's default endpoint.
    public static let deepSeekBaseURL = "https://api.deepseek.com"
    /// The connect and read timeouts may not exceed the process-wide HTTP client's own.
    public static let maximumTimeout = TimeSpan.seconds(90)

    /// The keys an `experts.NAME` entry may have, as written in YAML.
    public static let keys = CodingKeys.allCases.map(\.rawValue)

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case provider, script, model
        case baseURL = "base_url"
        case apiKeyEnv = "api_key_env"
        case connectTimeout = "connect_timeout"
        case readTimeout = "read_timeout"
        case concurrency
        case queueTimeout = "queue_timeout"
        case maxRetries = "max_retries"
        case thinking
        case reasoningEffort = "reasoning_effort"
        case maxTokens = "max_tokens"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let path = (decoder.codingPath.map(\.stringValue) + [""]).joined(separator: ".")
        func duration(_ key: CodingKeys) throws -> TimeSpan? {
            guard let text = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let span = TimeSpan.parse(text) else {
                throw ExpertConfigurationError("\(path)\(key.rawValue): \(text) is not a duration (write 500ms, 10s, 1m)")
            }
            return span
        }
        let providerName = try container.decode(String.self, forKey: .provider)
        guard let provider = Provider(rawValue: providerName) else {
            throw ExpertConfigurationError("\(path.dropLast()): unknown provider \(providerName) (expected openai, scripted or local)")
        }
        self.provider = provider
        script = try container.decodeIfPresent(String.self, forKey: .script)
        model = try container.decodeIfPresent(String.self, forKey: .model)
        baseURL = try container.decodeIfPresent(String.self, forKey: .baseURL)
        apiKeyEnv = try container.decodeIfPresent(String.self, forKey: .apiKeyEnv)
        connectTimeout = try duration(.connectTimeout)
        readTimeout = try duration(.readTimeout)
        concurrency = try container.decodeIfPresent(Int.self, forKey: .concurrency)
        queueTimeout = try duration(.queueTimeout)
        maxRetries = try container.decodeIfPresent(Int.self, forKey: .maxRetries)
        thinking = try container.decodeIfPresent(Bool.self, forKey: .thinking)
        if let effort = try container.decodeIfPresent(String.self, forKey: .reasoningEffort) {
            guard let parsed = ReasoningEffort(rawValue: effort) else {
                throw ExpertConfigurationError("\(path)reasoning_effort: \(effort) is not one of low, high, max")
            }
            reasoningEffort = parsed
        }
        maxTokens = try container.decodeIfPresent(Int.self, forKey: .maxTokens)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(provider, forKey: .provider)
        try container.encodeIfPresent(script, forKey: .script)
        try container.encodeIfPresent(model, forKey: .model)
        try container.encodeIfPresent(baseURL, forKey: .baseURL)
        try container.encodeIfPresent(apiKeyEnv, forKey: .apiKeyEnv)
        try container.encodeIfPresent(connectTimeout?.description, forKey: .connectTimeout)
        try container.encodeIfPresent(readTimeout?.description, forKey: .readTimeout)
        try container.encodeIfPresent(concurrency, forKey: .concurrency)
        try container.encodeIfPresent(queueTimeout?.description, forKey: .queueTimeout)
        try container.encodeIfPresent(maxRetries, forKey: .maxRetries)
        try container.encodeIfPresent(thinking, forKey: .thinking)
        try container.encodeIfPresent(reasoningEffort, forKey: .reasoningEffort)
        try container.encodeIfPresent(maxTokens, forKey: .maxTokens)
    }

    /// Checks the entry without touching the environment or the file system, so that
    /// the config file's mistakes are reported when it is read.
    public func validate(name: String) throws(ExpertConfigurationError) {
        let key = "experts.\(name)"
        let openAIOnly: [(String, Bool)] = [
            ("base_url", baseURL != nil), ("api_key_env", apiKeyEnv != nil), ("connect_timeout", connectTimeout != nil),
            ("read_timeout", readTimeout != nil), ("concurrency", concurrency != nil), ("queue_timeout", queueTimeout != nil),
            ("max_retries", maxRetries != nil), ("thinking", thinking != nil), ("reasoning_effort", reasoningEffort != nil),
        ]
        switch provider {
        case .scripted:
            if let (field, _) = openAIOnly.first(where: \.1) {
                let providers = field == "concurrency" ? "openai or local" : "openai"
                throw ExpertConfigurationError("\(key).\(field) applies only to provider: \(providers) (this expert is scripted)")
            }
            if maxTokens != nil { throw ExpertConfigurationError("\(key).max_tokens applies only to provider: local (this expert is scripted)") }
            if script == nil { throw ExpertConfigurationError("\(key): the scripted provider needs `script: FILE`") }
        case .openai:
            if script != nil { throw ExpertConfigurationError("\(key).script applies only to provider: scripted") }
            if maxTokens != nil {
                throw ExpertConfigurationError(
                    "\(key).max_tokens applies only to provider: local (an openai expert's answers are capped by each step's max_tokens)")
            }
            _ = try openAIConfiguration(name: name)
        case .local:
            try validateLocal(name: name)
        }
    }

    /// The `openai` provider's settings, defaults filled in and ranges checked.
    public func openAIConfiguration(name: String) throws(ExpertConfigurationError) -> OpenAIExpertConfiguration {
        let key = "experts.\(name)"
        let base = baseURL ?? Self.deepSeekBaseURL
        let isDeepSeek = URL(string: base)?.host?.lowercased() == "api.deepseek.com"
        guard let model = model ?? (isDeepSeek && ExpertTier(rawValue: name) != nil ? "deepseek-v4-\(name)" : nil) else {
            throw ExpertConfigurationError("\(key).model is required for the openai provider (for example deepseek-v4-flash)")
        }
        var configuration = OpenAIExpertConfiguration(
            baseURL: base, model: model, apiKeyEnvironmentVariable: apiKeyEnv ?? (isDeepSeek ? "DEEPSEEK_API_KEY" : nil))
        if let connectTimeout {
            guard (100...Self.maximumTimeout.milliseconds).contains(connectTimeout.milliseconds) else {
                throw ExpertConfigurationError("\(key).connect_timeout must be 100ms to \(Self.maximumTimeout)")
            }
            configuration.connectTimeout = connectTimeout.duration
        }
        if let readTimeout {
            guard (100...Self.maximumTimeout.milliseconds).contains(readTimeout.milliseconds) else {
                throw ExpertConfigurationError(
                    "\(key).read_timeout must be 100ms to \(Self.maximumTimeout) (it is the longest silence, not the longest answer; streaming keeps long answers alive)"
                )
            }
            configuration.readTimeout = readTimeout.duration
        }
        if let queueTimeout {
            guard queueTimeout <= TimeSpan(milliseconds: 3_600_000) else { throw ExpertConfigurationError("\(key).queue_timeout must be at most 1h") }
            configuration.queueTimeout = queueTimeout.duration
        }
        if let concurrency {
            guard (1...100_000).contains(concurrency) else { throw ExpertConfigurationError("\(key).concurrency must be 1 to 100000") }
            configuration.concurrency = concurrency
        }
        if let maxRetries {
            guard (0...10).contains(maxRetries) else { throw ExpertConfigurationError("\(key).max_retries must be 0 to 10") }
            configuration.maxRetries = maxRetries
        }
        if let apiKeyEnv, apiKeyEnv.isEmpty || apiKeyEnv.contains("=") {
            throw ExpertConfigurationError("\(key).api_key_env must name an environment variable, like DEEPSEEK_API_KEY (not the key itself)")
        }
        configuration.thinking = thinking
        configuration.reasoningEffort = reasoningEffort
        return configuration
    }
}

extension ExpertPool {
    /// Builds the pool from configuration. `flash` and `pro` must both exist.
    /// `baseDirectory` is where relative script paths are looked up first. `openai`
    /// experts read their API keys from the environment now and share `httpClient`.
    public static func make(
        from configuration: [String: ExpertConfiguration], baseDirectory: String?, httpClient: HTTPClient = .shared
    ) throws(ExpertConfigurationError) -> ExpertPool {
        var experts: [any Expert] = []
        for (name, entry) in configuration.sorted(by: { $0.key < $1.key }) {
            try entry.validate(name: name)
            switch entry.provider {
            case .scripted:
                guard let script = entry.script else {
                    throw ExpertConfigurationError("experts.\(name): the scripted provider needs `script: FILE`")
                }
                let path = try resolve(script, baseDirectory: baseDirectory, key: "experts.\(name).script")
                experts.append(ScriptedExpert(name: name, model: entry.model ?? "scripted", rules: try ScriptedExpert.loadRules(path: path)))
            case .openai:
                experts.append(try OpenAIExpert(name: name, configuration: try entry.openAIConfiguration(name: name), httpClient: httpClient))
            case .local:
                // Cheap: the model loads on the first call, off the cooperative pool, once per file.
                experts.append(LocalExpert(name: name, configuration: try entry.localConfiguration(name: name, baseDirectory: baseDirectory)))
            }
        }
        let names = Set(experts.map(\.name))
        for required in ExpertTier.allCases.map(\.rawValue) where !names.contains(required) {
            throw ExpertConfigurationError("experts: the `\(required)` expert must be configured")
        }
        return ExpertPool(experts)
    }

    private static func resolve(_ path: String, baseDirectory: String?, key: String) throws(ExpertConfigurationError) -> String {
        if path.hasPrefix("/") { return path }
        let fm = FileManager.default
        var candidates: [String] = []
        if let baseDirectory { candidates.append(baseDirectory + "/" + path) }
        candidates.append(fm.currentDirectoryPath + "/" + path)
        if let found = candidates.first(where: { fm.fileExists(atPath: $0) }) { return found }
        throw ExpertConfigurationError("\(key): file \(path) not found (looked in \(candidates.joined(separator: ", ")))")
    }
}
