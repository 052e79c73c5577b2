import Foundation

/// Builds request paths, percent-encoding every segment, so that a name with `/`,
/// `?`, `#`, `%` or a space reaches its route as one segment. The one path builder of
/// `yard` (and of tests): no command interpolates a name into a path itself.
public enum APIPath {
    /// `/v1/` and the segments, each percent-encoded: `APIPath.v1("runs", id, "cancel")`.
    public static func v1(_ segments: String..., query: [(String, String?)] = []) -> String {
        "/v1/" + segments.map(segment).joined(separator: "/") + queryString(query)
    }

    /// A name as one URL path segment.
    public static func segment(_ name: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%;")
        return name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name
    }

    /// A query string of the items that have a value (`?a=1&b=2`), or "" when none has.
    public static func queryString(_ items: [(String, String?)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:,")
        let parts = items.compactMap { name, value in value.map { "\(name)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0)" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}
