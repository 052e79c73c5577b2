/// Replaces known secret values in text that is about to leave the tool runner
/// (error messages, response excerpts, logs).
///
/// Why: a server that echoes the request (a 401 page quoting the `Authorization`
/// header, a debug endpoint) would otherwise put a tenant's token into the model's
/// context, the run's event log and the API's responses.
public struct SecretRedactor: Sendable {
    public static let marker = "[REDACTED]"
    /// Longest first, so that a secret containing another is replaced whole.
    private let values: [String]

    /// Empty values are ignored; everything else is redacted, however short.
    public init(secrets: some Sequence<String>) {
        var unique = Set<String>()
        for value in secrets where !value.isEmpty {
            unique.insert(value)
            let encoded = Self.percentEncoded(value)
            if encoded != value { unique.insert(encoded) }
        }
        values = unique.sorted { $0.utf8.count != $1.utf8.count ? $0.utf8.count > $1.utf8.count : $0 < $1 }
    }

    public var isEmpty: Bool { values.isEmpty }

    public func redact(_ text: String) -> String {
        guard !values.isEmpty else { return text }
        var out = text
        for value in values where out.contains(value) {
            out = out.replacing(value, with: Self.marker)
        }
        return out
    }

    private static func percentEncoded(_ s: String) -> String {
        var out = ""
        for byte in s.utf8 {
            if (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x2E
                || byte == 0x5F || byte == 0x7E
            {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
