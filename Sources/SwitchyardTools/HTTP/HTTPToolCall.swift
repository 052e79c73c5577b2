import Foundation
import SwitchyardCore

/// How a declared HTTP tool's call becomes a request. Pure (no I/O), so it can be
/// tested without a server.
///
/// - `url` is rendered with `args`. Every string argument is percent-encoded before
///   it is put into the URL, so an argument cannot change the URL's structure
///   (`../admin`, `?x=`, `#`, another host): tool URLs are fixed by the tool's
///   author; fetching a URL chosen by the model is what `http_get` is for.
/// - Arguments the URL does not read go to the query string for GET, HEAD and
///   DELETE, and to a JSON object body for POST, PUT and PATCH. Each argument goes
///   to one place.
/// - Header values are rendered with `args` and `secrets`; only headers can read
///   secrets, and a secret the tenant has not set is an error rather than an empty
///   `Bearer `.
struct HTTPToolCall {
    static let methods: Set<String> = ["GET", "HEAD", "DELETE", "POST", "PUT", "PATCH"]
    static let queryMethods: Set<String> = ["GET", "HEAD", "DELETE"]

    var method: String
    var url: URL
    /// Headers in the order the tool declares them (sorted by name).
    var headers: [(name: String, value: String)]
    var body: [UInt8]?
    /// Rendered header values that read a secret: redacted wherever text leaves.
    var sensitiveValues: [String]

    init(method: String, url: URL, headers: [(name: String, value: String)], body: [UInt8]?, sensitiveValues: [String] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.sensitiveValues = sensitiveValues
    }

    init(spec: HTTPToolSpec, toolName: String, arguments: JSONValue, secrets: [String: String]) throws(ToolError) {
        method = spec.method.uppercased()
        guard Self.methods.contains(method) else {
            throw ToolError(.invalidTool, "tool \(toolName): method \(spec.method) is not supported")
        }

        let urlTemplate: Template
        do {
            urlTemplate = try Template(parsing: spec.url)
        } catch {
            throw ToolError(.invalidTool, "tool \(toolName): url: \(error)")
        }
        let rendered: JSONValue
        do {
            rendered = try urlTemplate.evaluate(TemplateScope(variables: ["args": Self.percentEncodingStrings(arguments)]))
        } catch {
            throw ToolError(.invalidTool, "tool \(toolName): url: \(error)")
        }
        guard case .string(let urlText) = rendered, var components = URLComponents(string: urlText) else {
            throw ToolError(.invalidTool, "tool \(toolName): url does not render to a URL")
        }
        components.fragment = nil

        var remaining = arguments.objectValue ?? [:]
        for name in Self.argumentNames(readBy: spec.url) { remaining[name] = nil }
        if Self.queryMethods.contains(method) {
            let extra = Self.queryString(remaining)
            if !extra.isEmpty {
                let existing = components.percentEncodedQuery ?? ""
                components.percentEncodedQuery = existing.isEmpty ? extra : existing + "&" + extra
            }
            body = nil
        } else {
            body = Self.encodeJSON(.object(remaining))
        }
        guard let url = components.url else {
            throw ToolError(.invalidTool, "tool \(toolName): url does not render to a URL")
        }
        self.url = url

        let secretScope = JSONValue.object(secrets.mapValues { .string($0) })
        var headers: [(name: String, value: String)] = []
        var sensitive: [String] = []
        for name in spec.headers.keys.sorted() {
            guard let source = spec.headers[name] else { continue }
            guard Self.isValidHeaderName(name) else {
                throw ToolError(.invalidTool, "tool \(toolName): \(name) is not a valid header name")
            }
            let readsSecrets = Self.secretNames(readBy: source)
            if let missing = readsSecrets.first(where: { secrets[$0] == nil }) {
                throw ToolError(.secretMissing, "tool \(toolName): header \(name) reads secrets.\(missing), which is not set for this tenant")
            }
            let value: JSONValue
            do {
                value = try Template(parsing: source).evaluate(TemplateScope(variables: ["args": arguments, "secrets": secretScope]))
            } catch {
                throw ToolError(.invalidTool, "tool \(toolName): header \(name): \(error)")
            }
            let text: String
            switch value {
            case .null: continue
            case .string(let s): text = s
            default: text = value.compactJSON
            }
            guard !text.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw ToolError(.invalidTool, "tool \(toolName): header \(name) renders to a value with a line break")
            }
            if !readsSecrets.isEmpty || source.contains("secrets") { sensitive.append(text) }
            headers.append((name, text))
        }
        if body != nil, !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append(("Content-Type", "application/json"))
        }
        self.headers = headers
        sensitiveValues = sensitive
    }

    // MARK: Helpers

    static func isValidHeaderName(_ name: String) -> Bool {
        !name.isEmpty
            && name.unicodeScalars.allSatisfy { s in
                s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || "!#$%&'*+-.^_`|~".unicodeScalars.contains(s))
            }
    }

    /// Names read as `args.NAME` or `args["NAME"]` in a template source (the parsed
    /// template's references, so a name inside a string literal is not one).
    static func argumentNames(readBy source: String) -> Set<String> {
        (try? Template(parsing: source))?.referencedKeys(of: "args") ?? []
    }

    static func secretNames(readBy source: String) -> Set<String> {
        (try? Template(parsing: source))?.referencedSecrets ?? []
    }

    /// Every string inside `value` percent-encoded for use in a URL.
    static func percentEncodingStrings(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let s): .string(percentEncode(s, dotSegments: true))
        case .array(let a): .array(a.map(percentEncodingStrings))
        case .object(let o): .object(o.mapValues(percentEncodingStrings))
        default: value
        }
    }

    /// RFC 3986 unreserved characters stay; everything else is `%XX`. With
    /// `dotSegments`, `.` and `..` are encoded too, so that they cannot climb the path.
    static func percentEncode(_ s: String, dotSegments: Bool = false) -> String {
        if dotSegments, s == "." || s == ".." { return String(repeating: "%2E", count: s.count) }
        var out = ""
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// `a=1&b=x&tags=p&tags=q`, keys sorted; `null` omitted, arrays repeat the key,
    /// objects are sent as compact JSON.
    static func queryString(_ arguments: [String: JSONValue]) -> String {
        var pairs: [String] = []
        func scalar(_ v: JSONValue) -> String? {
            switch v {
            case .null: nil
            case .string(let s): s
            default: v.compactJSON
            }
        }
        for key in arguments.keys.sorted() {
            guard let value = arguments[key] else { continue }
            let items: [JSONValue] = if case .array(let a) = value { a } else { [value] }
            for item in items {
                if let text = scalar(item) { pairs.append(percentEncode(key) + "=" + percentEncode(text)) }
            }
        }
        return pairs.joined(separator: "&")
    }

    static func encodeJSON(_ value: JSONValue) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(value) { return Array(data) }
        return Array(value.compactJSON.utf8)
    }
}
