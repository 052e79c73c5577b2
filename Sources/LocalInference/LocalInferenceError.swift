/// Every failure the local engine reports. Each case carries enough context for the
/// message to say what was wrong and what to do, because these errors surface in the
/// CLI and in step failures where nobody can attach a debugger.
public enum LocalInferenceError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file could not be opened or mapped (missing, unreadable, a directory).
    case cannotOpen(path: String, reason: String)
    /// The file does not start with the GGUF magic: not a GGUF model at all.
    case notGGUF(path: String)
    /// A GGUF version this reader does not know (it reads 2 and 3).
    case unsupportedVersion(UInt32)
    /// The file ends before a structure that the header promises.
    case truncated(what: String, offset: Int, needed: Int, available: Int)
    /// A structurally impossible value (bad type code, absurd count, misplaced tensor).
    case corrupt(String)
    /// A tensor stored in a ggml type that this engine has no kernel for.
    case unsupportedTensorType(tensor: String, typeCode: UInt32)
    /// A metadata key the model needs is absent or has the wrong type.
    case missingMetadata(key: String, expected: String)
    /// A tensor the architecture needs is absent or has the wrong shape.
    case missingTensor(name: String)
    case badTensorShape(name: String, expected: [Int], actual: [Int])
    /// The architecture named in `general.architecture` is not one this engine runs.
    case unsupportedArchitecture(String)
    /// The architecture is supported, but this file uses a variant of it (a RoPE scaling,
    /// a gating function) that the engine does not implement.
    case unsupportedFeature(architecture: String, feature: String)
    /// The tokenizer model named in `tokenizer.ggml.model` is not SentencePiece ("llama").
    case unsupportedTokenizer(String)
    /// A request would overflow the context the cache was sized for.
    case contextFull(limit: Int)
    /// A token id outside the vocabulary was fed to the model.
    case invalidToken(Int32)
    /// Something else the caller asked for that makes no sense (empty prompt, bad option).
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open model file \(path): \(reason)"
        case .notGGUF(let path):
            return "\(path) is not a GGUF file (bad magic); pass a .gguf model, e.g. the one Scripts/setup-local-model.sh installs"
        case .unsupportedVersion(let v):
            return "GGUF version \(v) is not supported (this reader handles versions 2 and 3)"
        case .truncated(let what, let offset, let needed, let available):
            return
                "GGUF file is truncated: \(what) at byte \(offset) needs \(needed) bytes, only \(available) remain; re-download or re-assemble the model"
        case .corrupt(let message):
            return "GGUF file is corrupt: \(message)"
        case .unsupportedTensorType(let tensor, let code):
            return "tensor \(tensor) uses ggml type \(code), which this engine cannot compute (supported: F32, F16, BF16, Q8_0, Q5_0, Q4_K, Q6_K)"
        case .missingMetadata(let key, let expected):
            return "model metadata \(key) is missing or is not \(expected)"
        case .missingTensor(let name):
            return "model has no tensor \(name)"
        case .badTensorShape(let name, let expected, let actual):
            return "tensor \(name) has shape \(actual), expected \(expected)"
        case .unsupportedArchitecture(let arch):
            return "architecture \(arch) is not supported by the local engine (supported: "
                + LanguageModel.supportedArchitectures.joined(separator: ", ") + "); pass a GGUF of one of those"
        case .unsupportedFeature(let arch, let feature):
            return "this \(arch) model uses \(feature), which the local engine does not implement"
        case .unsupportedTokenizer(let model):
            return "tokenizer model \(model) is not supported (supported: llama/SentencePiece)"
        case .contextFull(let limit):
            return "the sequence reached the context limit of \(limit) tokens"
        case .invalidToken(let id):
            return "token id \(id) is outside the vocabulary"
        case .invalidArgument(let message):
            return message
        }
    }
}
