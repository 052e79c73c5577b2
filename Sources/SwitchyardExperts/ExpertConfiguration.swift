import Foundation

/// One entry of the server config's `experts:` map.
public struct ExpertConfiguration: Sendable, Hashable, Codable {
    /// `scripted` today; `openai` and `local` arrive with their issues.
    public var provider: String
    /// For `scripted`: the rules file, relative to the config file's folder or the
    /// working directory.
    public var script: String?
    /// The model name to call or report.
    public var model: String?

    public init(provider: String, script: String? = nil, model: String? = nil) {
        self.provider = provider
        self.script = script
        self.model = model
    }
}

extension ExpertPool {
    /// Builds the pool from configuration. `flash` and `pro` must both exist.
    /// `baseDirectory` is where relative script paths are looked up first.
    public static func make(from configuration: [String: ExpertConfiguration], baseDirectory: String?) throws(ExpertConfigurationError) -> ExpertPool {
        var experts: [any Expert] = []
        for (name, entry) in configuration.sorted(by: { $0.key < $1.key }) {
            switch entry.provider {
            case "scripted":
                guard let script = entry.script else {
                    throw ExpertConfigurationError("experts.\(name): the scripted provider needs `script: FILE`")
                }
                let path = try resolve(script, baseDirectory: baseDirectory, key: "experts.\(name).script")
                experts.append(ScriptedExpert(name: name, model: entry.model ?? "scripted", rules: try ScriptedExpert.loadRules(path: path)))
            case "openai", "local":
                throw ExpertConfigurationError("experts.\(name): the \(entry.provider) provider is not available in this build yet; use provider: scripted")
            default:
                throw ExpertConfigurationError("experts.\(name): unknown provider \(entry.provider) (expected scripted, openai or local)")
            }
        }
        let names = Set(experts.map(\.name))
        for required in ["flash", "pro"] where !names.contains(required) {
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
