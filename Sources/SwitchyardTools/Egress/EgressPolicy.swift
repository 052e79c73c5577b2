/// Which destinations tool calls may reach: the server's allow list
/// united with the tenant's.
///
/// Why this exists: an HTTP tool's URL is written by a tenant and its arguments by
/// a model, so without a policy a tool call is a server-side request forgery waiting
/// to happen (cloud metadata credentials, the database, the admin API on loopback).
///
/// Rules, in order:
/// - A host name on the allow list (exactly, case-insensitively, or under a
///   `*.example.com` wildcard) is allowed, whatever it resolves to.
/// - Otherwise every address the host resolves to must be allowed: an address inside
///   an allowed CIDR block is; a public unicast address is in
///   ``EgressMode/publicOrAllowed`` mode; special-purpose addresses (loopback,
///   private, link-local, CGNAT, multicast, reserved, …, see ``SpecialUse``) are not.
/// - Cloud metadata addresses (169.254.169.254, fd00:ec2::254) are allowed only by an
///   entry naming exactly that address, not by a wider block such as 169.254.0.0/16;
///   metadata host names (`metadata.google.internal`, …) only by that exact name.
///
/// The caller then connects to the address that was vetted (see ``ToolRunner``), so
/// a DNS answer that changes between check and connect cannot redirect the call.
public struct EgressPolicy: Sendable, Hashable {
    /// One allow-list entry.
    public enum Entry: Sendable, Hashable, CustomStringConvertible {
        /// An exact host name, lower-cased, without a trailing dot.
        case host(String)
        /// `*.suffix`: any name ending in `.suffix` (not `suffix` itself).
        case wildcard(suffix: String)
        /// An address block; a single address is a full-length prefix.
        case network(IPNetwork)

        public var description: String {
            switch self {
            case .host(let name): name
            case .wildcard(let suffix): "*.\(suffix)"
            case .network(let n): n.prefixLength == (n.address.isIPv4 ? 32 : 128) ? n.address.description : n.description
            }
        }
    }

    public private(set) var entries: [Entry]

    /// A policy that allows only public addresses.
    public static let publicOnly = EgressPolicy(entries: [])

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Parses allow-list entries as written in configuration; the first malformed
    /// entry is reported.
    public init(allowing entries: [String]) throws(EgressPolicyError) {
        var parsed: [Entry] = []
        for entry in entries { parsed.append(try Self.parseEntry(entry)) }
        self.entries = parsed
    }

    /// Both policies' entries (the server's list ∪ a tenant's).
    public func union(_ other: EgressPolicy) -> EgressPolicy {
        var merged = entries
        for entry in other.entries where !merged.contains(entry) { merged.append(entry) }
        return EgressPolicy(entries: merged)
    }

    /// Host names that are never reached unless allow-listed by that exact name:
    /// they serve cloud instance credentials.
    public static let metadataHostNames: Set<String> = [
        "metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal",
        "metadata.azure.internal",
    ]

    /// Parses one entry: a host name (`kb.example.com`), a wildcard (`*.example.com`),
    /// an address (`127.0.0.1`, `::1`) or a CIDR block (`10.0.0.0/8`, `fd00::/8`).
    public static func parseEntry(_ raw: String) throws(EgressPolicyError) -> Entry {
        let text = String(raw.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard !text.isEmpty else { throw EgressPolicyError(entry: raw, message: "is empty") }
        if text.contains("://") {
            throw EgressPolicyError(entry: raw, message: "write a host name, address or CIDR block, not a URL")
        }
        if text.hasPrefix("["), text.hasSuffix("]") {
            throw EgressPolicyError(entry: raw, message: "write IPv6 addresses without brackets")
        }
        if text.contains("/") || IPAddress(text) != nil || text.contains(":") {
            if !text.contains("/"), text.contains(":"), IPAddress(text) == nil, text.split(separator: ":").count == 2 {
                throw EgressPolicyError(entry: raw, message: "ports are not part of an entry; write the host alone")
            }
            return .network(try IPNetwork(parsing: text))
        }
        let lowered = normalizedHost(text)
        if lowered.hasPrefix("*.") {
            let suffix = String(lowered.dropFirst(2))
            guard isValidHostName(suffix) else {
                throw EgressPolicyError(entry: raw, message: "not a valid wildcard host name (expected *.example.com)")
            }
            guard suffix.contains(".") else {
                throw EgressPolicyError(entry: raw, message: "a wildcard must name at least two labels (*.example.com, not *.com)")
            }
            return .wildcard(suffix: suffix)
        }
        if lowered.contains("*") {
            throw EgressPolicyError(entry: raw, message: "a wildcard is allowed only as the whole first label (*.example.com)")
        }
        if lowered.split(separator: ".").allSatisfy({ part in part.allSatisfy { $0.isASCII && $0.isNumber } }) {
            throw EgressPolicyError(entry: raw, message: "not a valid IPv4 address (four numbers from 0 to 255, no leading zeros)")
        }
        guard isValidHostName(lowered) else {
            throw EgressPolicyError(entry: raw, message: "not a valid host name (letters, digits, '-' and '_' in dot-separated labels)")
        }
        return .host(lowered)
    }

    /// Whether `host` (a name, not an address) is on the allow list by name.
    public func allowsHostName(_ host: String) -> Bool {
        let name = Self.normalizedHost(host)
        for entry in entries {
            switch entry {
            case .host(let allowed) where allowed == name: return true
            case .wildcard(let suffix) where name.hasSuffix("." + suffix) && !Self.metadataHostNames.contains(name): return true
            default: continue
            }
        }
        return false
    }

    /// Why `address` may not be reached, or nil when it may.
    public func denial(for address: IPAddress, mode: EgressMode = .publicOrAllowed) -> String? {
        let canonical = address.canonical
        let use = canonical.specialUse
        let candidates = canonical == address ? [address] : [address, canonical]
        for entry in entries {
            guard case .network(let network) = entry, candidates.contains(where: network.contains) else { continue }
            let fullLength = network.prefixLength == (network.address.isIPv4 ? 32 : 128)
            if use == .metadata, !fullLength { continue }
            return nil
        }
        if let use {
            return "\(address) is a \(use.rawValue) address and is not on the egress allow list"
        }
        if mode == .allowListOnly {
            return "\(address) is not on the egress allow list"
        }
        return nil
    }

    /// Checks `host` (a URL's host: a name or an address, IPv6 with or without
    /// brackets) and returns the address to connect to: the first resolved address,
    /// all of which were checked.
    public func vet(host rawHost: String, mode: EgressMode, resolver: any HostResolver) async throws(ToolError) -> IPAddress {
        var host = rawHost
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if let literal = IPAddress(host) {
            if let reason = denial(for: literal, mode: mode) { throw ToolError(.egressDenied, reason) }
            return literal
        }
        let name = Self.normalizedHost(host)
        guard !name.isEmpty else { throw ToolError(.egressDenied, "the URL has no host") }
        let nameAllowed = allowsHostName(name)
        if !nameAllowed, Self.metadataHostNames.contains(name) {
            throw ToolError(.egressDenied, "\(name) is a cloud metadata host and is not on the egress allow list")
        }
        if !nameAllowed, mode == .allowListOnly, !entries.contains(where: { if case .network = $0 { true } else { false } }) {
            throw ToolError(.egressDenied, "\(name) is not on the egress allow list")
        }
        let addresses: [IPAddress]
        do {
            addresses = try await resolver.resolve(host: name)
        } catch {
            throw ToolError(error.timedOut ? .timeout : .resolutionFailed, error.message, retryable: true)
        }
        guard let first = addresses.first else {
            throw ToolError(.resolutionFailed, "\(name) resolved to no address", retryable: true)
        }
        if !nameAllowed {
            for address in addresses {
                if let reason = denial(for: address, mode: mode) {
                    throw ToolError(.egressDenied, "\(name) resolves to \(address): \(reason)")
                }
            }
        }
        return first
    }

    static func normalizedHost(_ host: String) -> String {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return name
    }

    static func isValidHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy {
                    $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_")
                }
        }
    }
}

/// How strict a check is.
public enum EgressMode: Sendable, Hashable {
    /// Declared HTTP tools: public addresses, plus whatever the allow list adds.
    case publicOrAllowed
    /// Calls to URLs chosen at run time (the `http_get` built-in): only destinations
    /// the allow list names, by host name or address block.
    case allowListOnly
}

/// A malformed allow-list entry, for configuration validation.
public struct EgressPolicyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var entry: String
    public var message: String

    public init(entry: String, message: String) {
        self.entry = entry
        self.message = message
    }

    public var description: String { "egress allow-list entry \"\(entry)\": \(message)" }
}
