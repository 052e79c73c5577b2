import Testing

@testable import SwitchyardTools

@Suite struct IPAddressTests {
    @Test func parsesStrictIPv4() {
        #expect(IPAddress("127.0.0.1") == .v4(0x7F00_0001))
        #expect(IPAddress("255.255.255.255") == .v4(0xFFFF_FFFF))
        for bad in ["127.1", "0x7f.0.0.1", "2130706433", "127.000.0.1", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", " 1.2.3.4"] {
            #expect(IPAddress(bad) == nil, "\(bad) must not parse as an address")
        }
    }

    @Test func parsesIPv6IncludingCompressionAndDottedTail() {
        #expect(IPAddress("::1") == .v6(1))
        #expect(IPAddress("::") == .v6(0))
        #expect(IPAddress("fe80::1")?.description == "fe80::1")
        #expect(IPAddress("2001:0db8:0000:0000:0000:0000:0000:0001")?.description == "2001:db8::1")
        #expect(IPAddress("::ffff:127.0.0.1")?.description == "::ffff:127.0.0.1")
        #expect(IPAddress("::ffff:7f00:1") == IPAddress("::ffff:127.0.0.1"))
        for bad in ["1::2::3", "12345::", "fe80::1%eth0", "[::1]", ":::", "1:2:3:4:5:6:7:8:9", "g::1"] {
            #expect(IPAddress(bad) == nil, "\(bad) must not parse as an address")
        }
    }

    @Test func mappedIPv6IsJudgedAsIPv4() {
        #expect(IPAddress("::ffff:127.0.0.1")?.canonical == IPAddress("127.0.0.1"))
        #expect(IPAddress("::ffff:127.0.0.1")?.specialUse == .loopback)
        #expect(IPAddress("::ffff:8.8.8.8")?.specialUse == nil)
    }

    @Test func classifiesSpecialPurposeBlocks() {
        let expected: [(String, SpecialUse?)] = [
            ("127.0.0.1", .loopback), ("127.255.1.2", .loopback), ("::1", .loopback),
            ("10.0.0.1", .private), ("172.16.0.1", .private), ("172.31.255.255", .private), ("192.168.1.1", .private),
            ("fd12::1", .private), ("fc00::1", .private),
            ("169.254.1.1", .linkLocal), ("fe80::1", .linkLocal),
            ("169.254.169.254", .metadata), ("fd00:ec2::254", .metadata),
            ("0.0.0.0", .unspecified), ("::", .unspecified),
            ("100.64.0.1", .sharedAddressSpace), ("100.127.255.255", .sharedAddressSpace),
            ("224.0.0.1", .multicast), ("ff02::1", .multicast),
            ("255.255.255.255", .broadcast), ("240.0.0.1", .reserved),
            ("192.0.2.1", .documentation), ("2001:db8::1", .documentation),
            ("64:ff9b::7f00:1", .loopback),  // NAT64 of 127.0.0.1
            ("2002:0a00:0001::1", .private),  // 6to4 of 10.0.0.1
            ("2001::1", .reserved),  // Teredo
            ("::7f00:1", .reserved),  // deprecated IPv4-compatible
            ("8.8.8.8", nil), ("1.1.1.1", nil), ("172.32.0.1", nil), ("100.128.0.1", nil),
            ("2606:4700:4700::1111", nil), ("64:ff9b::808:808", nil),
        ]
        for (text, use) in expected {
            #expect(IPAddress(text)?.specialUse == use, "\(text)")
        }
    }
}

@Suite struct EgressPolicyTests {
    let resolver = StaticResolver([
        "kb.test": [IPAddress("10.0.0.1")!],
        "api.example.com": [IPAddress("93.184.216.34")!],
        "mixed.example.com": [IPAddress("93.184.216.34")!, IPAddress("127.0.0.1")!],
        "rebind.example.com": [IPAddress("::ffff:169.254.169.254")!],
        "metadata.google.internal": [IPAddress("169.254.169.254")!],
        "internal.corp.example": [IPAddress("10.1.2.3")!],
        "docs.partner.example": [IPAddress("93.184.216.35")!],
    ])

    func denied(_ host: String, policy: EgressPolicy = .publicOnly, mode: EgressMode = .publicOrAllowed) async -> ToolError? {
        do {
            _ = try await policy.vet(host: host, mode: mode, resolver: resolver)
            return nil
        } catch {
            return error
        }
    }

    @Test func refusesEachForbiddenClassOfAddress() async {
        for host in [
            "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.0.10", "169.254.169.254", "169.254.10.10", "100.64.1.1", "0.0.0.0",
            "224.0.0.251", "255.255.255.255", "::1", "[::1]", "::ffff:127.0.0.1", "[::ffff:10.0.0.1]", "fd00::5", "fe80::1", "::", "fd00:ec2::254",
        ] {
            let error = await denied(host)
            #expect(error?.code == .egressDenied, "\(host) must be refused")
        }
    }

    @Test func refusesAHostThatResolvesToAForbiddenAddress() async throws {
        let error = try #require(await denied("kb.test"))
        #expect(error.code == .egressDenied)
        #expect(error.message.contains("kb.test resolves to 10.0.0.1"))
        #expect(await denied("rebind.example.com")?.code == .egressDenied)
    }

    @Test func refusesWhenAnyResolvedAddressIsForbidden() async {
        #expect(await denied("mixed.example.com")?.code == .egressDenied)
    }

    @Test func refusesMetadataHostNamesWhateverTheyResolveTo() async {
        #expect(await denied("metadata.google.internal")?.code == .egressDenied)
        #expect(await denied("METADATA.google.internal.")?.code == .egressDenied)
    }

    @Test func allowsPublicAddresses() async throws {
        #expect(
            try await EgressPolicy.publicOnly.vet(host: "api.example.com", mode: .publicOrAllowed, resolver: resolver) == IPAddress("93.184.216.34"))
        #expect(try await EgressPolicy.publicOnly.vet(host: "8.8.8.8", mode: .publicOrAllowed, resolver: resolver) == IPAddress("8.8.8.8"))
        #expect(
            try await EgressPolicy.publicOnly.vet(host: "[2606:4700:4700::1111]", mode: .publicOrAllowed, resolver: resolver)
                == IPAddress("2606:4700:4700::1111"))
    }

    @Test func allowsAnAllowListedAddress() async throws {
        let policy = try EgressPolicy(allowing: ["127.0.0.1"])
        #expect(await denied("127.0.0.1", policy: policy) == nil)
        #expect(await denied("::ffff:127.0.0.1", policy: policy) == nil)
        #expect(await denied("127.0.0.2", policy: policy)?.code == .egressDenied)
    }

    @Test func allowsAddressesInsideAnAllowListedBlock() async throws {
        let policy = try EgressPolicy(allowing: ["10.0.0.0/8", "fd00::/8"])
        #expect(await denied("kb.test", policy: policy) == nil)
        #expect(await denied("10.255.0.1", policy: policy) == nil)
        #expect(await denied("fd12:3456::1", policy: policy) == nil)
        #expect(await denied("192.168.0.1", policy: policy)?.code == .egressDenied)
    }

    @Test func allowsAnAllowListedHostNameWhateverItResolvesTo() async throws {
        let policy = try EgressPolicy(allowing: ["KB.test", "*.corp.example"])
        #expect(try await policy.vet(host: "kb.test", mode: .publicOrAllowed, resolver: resolver) == IPAddress("10.0.0.1"))
        #expect(await denied("internal.corp.example", policy: policy) == nil)
        #expect(await denied("corp.example", policy: policy)?.code != nil)
    }

    @Test func metadataAddressesNeedAnExactEntry() async throws {
        let wide = try EgressPolicy(allowing: ["169.254.0.0/16"])
        #expect(await denied("169.254.169.254", policy: wide)?.code == .egressDenied)
        #expect(await denied("169.254.1.1", policy: wide) == nil)
        let exact = try EgressPolicy(allowing: ["169.254.169.254"])
        #expect(await denied("169.254.169.254", policy: exact) == nil)
    }

    @Test func allowListOnlyModeRefusesPublicHostsNotOnTheList() async throws {
        let policy = try EgressPolicy(allowing: ["docs.partner.example", "127.0.0.1"])
        #expect(await denied("api.example.com", policy: policy, mode: .allowListOnly)?.code == .egressDenied)
        #expect(await denied("8.8.8.8", policy: policy, mode: .allowListOnly)?.code == .egressDenied)
        #expect(await denied("docs.partner.example", policy: policy, mode: .allowListOnly) == nil)
        #expect(await denied("127.0.0.1", policy: policy, mode: .allowListOnly) == nil)
    }

    @Test func unresolvableNamesAreAResolutionFailure() async {
        #expect(await denied("nowhere.test")?.code == .resolutionFailed)
    }

    @Test func parsesEveryKindOfEntry() throws {
        let policy = try EgressPolicy(allowing: [" Kb.Example.com. ", "*.example.org", "127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"])
        #expect(policy.entries.map(\.description) == ["kb.example.com", "*.example.org", "127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"])
        #expect(policy.allowsHostName("KB.EXAMPLE.COM"))
        #expect(policy.allowsHostName("a.b.example.org"))
        #expect(!policy.allowsHostName("example.org"))
        #expect(!policy.allowsHostName("evilexample.org"))
    }

    @Test func rejectsMalformedEntriesWithAClearMessage() {
        let cases: [(String, String)] = [
            ("", "is empty"),
            ("https://kb.example.com", "not a URL"),
            ("kb.example.com:443", "ports are not part"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("10.0.0.0/33", "prefix length"),
            ("256.1.1.1", "not a valid IPv4"),
            ("*", "wildcard"),
            ("*.com", "at least two labels"),
            ("a.*.example.com", "only as the whole first label"),
            ("exa mple.com", "not a valid host name"),
            ("[::1]", "without brackets"),
            ("fd00::1/8", "did you mean fd00::/8?"),
        ]
        for (entry, fragment) in cases {
            do {
                _ = try EgressPolicy.parseEntry(entry)
                Issue.record("\(entry) should be rejected")
            } catch {
                #expect(error.message.contains(fragment), "\(entry): \(error.message)")
                #expect(error.description.contains("egress allow-list entry"))
            }
        }
    }

    @Test func unionKeepsBothListsOnce() throws {
        let server = try EgressPolicy(allowing: ["127.0.0.1", "kb.example.com"])
        let tenant = try EgressPolicy(allowing: ["kb.example.com", "10.0.0.0/8"])
        #expect(server.union(tenant).entries.map(\.description) == ["127.0.0.1", "kb.example.com", "10.0.0.0/8"])
    }

    @Test func theSystemResolverResolvesLocalhostOffThePool() async throws {
        let addresses = try await SystemResolver(timeout: .seconds(5)).resolve(host: "localhost")
        #expect(addresses.contains { $0.specialUse == .loopback })
        #expect(await denied("localhost")?.code != nil)
    }
}
