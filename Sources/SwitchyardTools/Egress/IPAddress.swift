/// An IPv4 or IPv6 address as a plain number, so that egress checks are integer
/// comparisons rather than string matching (string matching is how SSRF filters are
/// usually bypassed: `127.1`, `0x7f.0.0.1`, `::ffff:127.0.0.1`, …).
///
/// Parsing is strict: IPv4 is exactly four decimal octets without leading zeros;
/// IPv6 is RFC 4291 text (with `::` and an optional trailing dotted IPv4), without a
/// zone (`%eth0`) and without brackets. Anything else is not an address; a URL host
/// such as `2130706433` is then treated as a name and judged by what it resolves to.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    public init?(_ text: String) {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    /// The address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into the IPv4
    /// address it designates: a socket connecting to the mapped form reaches that
    /// IPv4 host, so it must be judged as one.
    public var canonical: IPAddress {
        if case .v6(let v) = self, v >> 32 == 0xFFFF { return .v4(UInt32(truncatingIfNeeded: v)) }
        return self
    }

    public var isIPv4: Bool {
        if case .v4 = self { true } else { false }
    }

    public var description: String {
        switch self {
        case .v4(let v): Self.formatV4(v)
        case .v6(let v): Self.formatV6(v)
        }
    }

    // MARK: Parsing

    static func parseV4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                part == "0" || part.first != "0", let octet = UInt32(part), octet <= 255
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func parseV6(_ text: String) -> UInt128? {
        guard text.contains(":"), text.count <= 45 else { return nil }
        let halves = text.split(separator: "::", omittingEmptySubsequences: false).map(String.init)
        guard halves.count <= 2 else { return nil }

        func groups(_ part: String, allowTrailingV4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            var out: [UInt16] = []
            for (i, piece) in pieces.enumerated() {
                if i == pieces.count - 1, allowTrailingV4, piece.contains(".") {
                    guard let v4 = parseV4(piece) else { return nil }
                    out.append(UInt16(v4 >> 16))
                    out.append(UInt16(v4 & 0xFFFF))
                } else {
                    guard !piece.isEmpty, piece.count <= 4, piece.allSatisfy(\.isHexDigit), let g = UInt16(piece, radix: 16) else { return nil }
                    out.append(g)
                }
            }
            return out
        }

        var all: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowTrailingV4: false), let tail = groups(halves[1], allowTrailingV4: true),
                head.count + tail.count <= 7
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let only = groups(halves[0], allowTrailingV4: true), only.count == 8 else { return nil }
            all = only
        }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    // MARK: Formatting

    static func formatV4(_ v: UInt32) -> String {
        "\(v >> 24).\(v >> 16 & 0xFF).\(v >> 8 & 0xFF).\(v & 0xFF)"
    }

    /// RFC 5952: lower-case hex, the longest run (≥ 2) of zero groups as `::`, and
    /// IPv4-mapped addresses with a dotted tail.
    static func formatV6(_ v: UInt128) -> String {
        if v >> 32 == 0xFFFF { return "::ffff:" + formatV4(UInt32(truncatingIfNeeded: v)) }
        let groups = (0..<8).map { UInt16(truncatingIfNeeded: v >> (UInt128(7 - $0) * 16)) }
        var bestStart = -1
        var bestLength = 0
        var runStart = -1
        for i in 0...8 {
            if i < 8, groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength {
                    bestStart = runStart
                    bestLength = i - runStart
                }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard bestLength >= 2 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

/// A block of addresses (`10.0.0.0/8`, `fd00::/8`); a single address is a full-length prefix.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// The network with the host bits of `address` cleared.
    public init(_ address: IPAddress, prefixLength: Int) {
        let bits = address.isIPv4 ? 32 : 128
        let length = max(0, min(prefixLength, bits))
        switch address {
        case .v4(let v): self.address = .v4(v & Self.mask32(length))
        case .v6(let v): self.address = .v6(v & Self.mask128(length))
        }
        self.prefixLength = length
    }

    /// Parses `a.b.c.d/n`, `x::y/n` or a bare address. Host bits must be zero, so
    /// that `10.0.0.1/8` (probably a typo) is reported rather than silently widened.
    public init(parsing text: String) throws(EgressPolicyError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else {
            throw EgressPolicyError(entry: text, message: "not an IP address or CIDR block")
        }
        let bits = address.isIPv4 ? 32 : 128
        var length = bits
        if parts.count == 2 {
            guard let n = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), (0...bits).contains(n) else {
                throw EgressPolicyError(entry: text, message: "the prefix length must be a number from 0 to \(bits)")
            }
            length = n
        }
        let network = IPNetwork(address, prefixLength: length)
        guard network.address == address else {
            throw EgressPolicyError(entry: text, message: "has host bits set; did you mean \(network)?")
        }
        self = network
    }

    public func contains(_ candidate: IPAddress) -> Bool {
        switch (address, candidate) {
        case (.v4(let n), .v4(let a)): a & Self.mask32(prefixLength) == n
        case (.v6(let n), .v6(let a)): a & Self.mask128(prefixLength) == n
        default: false
        }
    }

    public var description: String { "\(address)/\(prefixLength)" }

    static func mask32(_ length: Int) -> UInt32 { length == 0 ? 0 : ~UInt32(0) << UInt32(32 - length) }
    static func mask128(_ length: Int) -> UInt128 { length == 0 ? 0 : ~UInt128(0) << UInt128(128 - length) }
}

/// Why an address is not on the public internet (RFC 6890 special-purpose blocks,
/// plus cloud metadata endpoints). Tool calls may reach such addresses only where
/// the egress allow list names them.
public enum SpecialUse: String, Sendable, Hashable, CaseIterable {
    case unspecified
    case loopback
    case `private` = "private"
    case linkLocal = "link-local"
    case metadata = "cloud metadata"
    case sharedAddressSpace = "carrier-grade NAT"
    case multicast
    case broadcast
    case documentation
    case benchmarking
    case reserved
}

extension IPAddress {
    private static let v4Blocks: [(IPNetwork, SpecialUse)] = [
        // Most specific first: the first match names the reason.
        (net4(169, 254, 169, 254, 32), .metadata),
        (net4(255, 255, 255, 255, 32), .broadcast),
        (net4(0, 0, 0, 0, 8), .unspecified),
        (net4(10, 0, 0, 0, 8), .private),
        (net4(100, 64, 0, 0, 10), .sharedAddressSpace),
        (net4(127, 0, 0, 0, 8), .loopback),
        (net4(169, 254, 0, 0, 16), .linkLocal),
        (net4(172, 16, 0, 0, 12), .private),
        (net4(192, 0, 0, 0, 24), .reserved),  // IETF protocol assignments
        (net4(192, 0, 2, 0, 24), .documentation),
        (net4(192, 88, 99, 0, 24), .reserved),  // 6to4 relay anycast
        (net4(192, 168, 0, 0, 16), .private),
        (net4(198, 18, 0, 0, 15), .benchmarking),
        (net4(198, 51, 100, 0, 24), .documentation),
        (net4(203, 0, 113, 0, 24), .documentation),
        (net4(224, 0, 0, 0, 4), .multicast),
        (net4(240, 0, 0, 0, 4), .reserved),
    ]

    private static let v6Blocks: [(IPNetwork, SpecialUse)] = [
        (net6("fd00:ec2::254", 128), .metadata),
        (net6("::", 128), .unspecified),
        (net6("::1", 128), .loopback),
        (net6("fc00::", 7), .private),
        (net6("fe80::", 10), .linkLocal),
        (net6("fec0::", 10), .private),  // deprecated site-local
        (net6("ff00::", 8), .multicast),
        (net6("2001:db8::", 32), .documentation),
        (net6("2001:2::", 48), .benchmarking),
        (net6("64:ff9b:1::", 48), .private),  // local-use NAT64
        (net6("100::", 64), .reserved),  // discard-only
        (net6("2001::", 23), .reserved),  // IETF protocol assignments, incl. Teredo
    ]

    private static let globalUnicast = net6("2000::", 3)
    private static let nat64 = net6("64:ff9b::", 96)
    private static let sixToFour = net6("2002::", 16)

    /// Why this address is not public, or nil when it is a public unicast address.
    ///
    /// IPv4-mapped addresses are judged as their IPv4 address; NAT64 (`64:ff9b::/96`)
    /// and 6to4 (`2002::/16`) addresses by the IPv4 address they embed, since that
    /// is where a translating gateway delivers them. Any other IPv6 address outside
    /// global unicast (`2000::/3`) is reserved.
    public var specialUse: SpecialUse? {
        switch canonical {
        case .v4(let v):
            return Self.v4Blocks.first { $0.0.contains(.v4(v)) }?.1
        case .v6(let v):
            let address = IPAddress.v6(v)
            if let hit = Self.v6Blocks.first(where: { $0.0.contains(address) }) { return hit.1 }
            if Self.nat64.contains(address) { return IPAddress.v4(UInt32(truncatingIfNeeded: v)).specialUse }
            if Self.sixToFour.contains(address) { return IPAddress.v4(UInt32(truncatingIfNeeded: v >> 80)).specialUse }
            return Self.globalUnicast.contains(address) ? nil : .reserved
        }
    }

    private static func net4(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, _ length: Int) -> IPNetwork {
        IPNetwork(.v4(a << 24 | b << 16 | c << 8 | d), prefixLength: length)
    }

    /// Only for the constant tables above, whose literals are known to parse.
    private static func net6(_ text: String, _ length: Int) -> IPNetwork {
        IPNetwork(IPAddress(text) ?? .v6(0), prefixLength: length)
    }
}
