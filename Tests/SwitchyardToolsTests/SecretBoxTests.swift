import Foundation
import Testing

@testable import SwitchyardTools

@Suite struct SecretBoxTests {
    let tenant = UUID()
    let other = UUID()
    let box = SecretBox(current: .generate(id: 1))

    @Test func sealedSecretsOpenForTheSameTenantAndName() throws {
        let sealed = try box.seal("s3cr3t-token", tenant: tenant, name: "KB_TOKEN")
        #expect(sealed.first == 1)
        #expect(sealed.count == 1 + 12 + "s3cr3t-token".utf8.count + 16)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("s3cr3t"))
        #expect(try box.open(sealed, tenant: tenant, name: "KB_TOKEN") == "s3cr3t-token")
    }

    @Test func sealingTwiceGivesDifferentCiphertexts() throws {
        #expect(try box.seal("x", tenant: tenant, name: "A") != box.seal("x", tenant: tenant, name: "A"))
    }

    @Test func aCiphertextMovedToAnotherTenantOrNameDoesNotOpen() throws {
        let sealed = try box.seal("s3cr3t", tenant: tenant, name: "KB_TOKEN")
        #expect(throws: SecretBoxError.self) { try box.open(sealed, tenant: other, name: "KB_TOKEN") }
        #expect(throws: SecretBoxError.self) { try box.open(sealed, tenant: tenant, name: "OTHER") }
    }

    @Test func anyChangedByteIsDetected() throws {
        let sealed = try box.seal("s3cr3t", tenant: tenant, name: "KB_TOKEN")
        for index in 1..<sealed.count {
            var tampered = sealed
            tampered[tampered.startIndex + index] ^= 0x01
            #expect(throws: SecretBoxError.self) { try box.open(tampered, tenant: tenant, name: "KB_TOKEN") }
        }
        #expect(throws: SecretBoxError.self) { try box.open(sealed.prefix(20), tenant: tenant, name: "KB_TOKEN") }
    }

    @Test func theWrongKeyDoesNotOpen() throws {
        let sealed = try box.seal("s3cr3t", tenant: tenant, name: "KB_TOKEN")
        let wrong = SecretBox(current: .generate(id: 1))
        let error = #expect(throws: SecretBoxError.self) { try wrong.open(sealed, tenant: tenant, name: "KB_TOKEN") }
        #expect(error?.message.contains("s3cr3t") == false)
    }

    @Test func rotatedKeysStillOpenOldCiphertexts() throws {
        let old = SecretKey.generate(id: 1)
        let sealedWithOld = try SecretBox(current: old).seal("v1", tenant: tenant, name: "A")
        let rotated = SecretBox(current: .generate(id: 2), previous: [old])
        #expect(try rotated.open(sealedWithOld, tenant: tenant, name: "A") == "v1")
        #expect(try rotated.seal("v2", tenant: tenant, name: "A").first == 2)
        let withoutOld = SecretBox(current: .generate(id: 2))
        let error = #expect(throws: SecretBoxError.self) { try withoutOld.open(sealedWithOld, tenant: tenant, name: "A") }
        #expect(error?.message.contains("key id 1") == true)
    }

    @Test func keysParseFromHexAndBase64() throws {
        let bytes = (0..<32).map { UInt8($0) }
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let base64 = Data(bytes).base64EncodedString()
        let urlSafeUnpadded = base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
            of: "=", with: "")
        for text in [hex, hex.uppercased(), base64, " \(base64)\n", urlSafeUnpadded] {
            let key = try SecretKey(parsing: text)
            let sealed = try SecretBox(current: try SecretKey(bytes: bytes)).seal("x", tenant: tenant, name: "A")
            #expect(try SecretBox(current: key).open(sealed, tenant: tenant, name: "A") == "x")
        }
    }

    @Test func badKeysAreRejectedWithoutEchoingThem() {
        let cases: [(String, String)] = [
            ("", "empty"),
            ("c2hvcnQ=", "decodes from base64 to 5 bytes"),
            ("not a key at all!!", "neither 64 hex characters nor base64"),
            (String(repeating: "ab", count: 31), "decodes from base64 to"),
        ]
        for (text, fragment) in cases {
            let error = #expect(throws: SecretKeyError.self) { try SecretKey(parsing: text) }
            #expect(error?.message.contains(fragment) == true, "\(text): \(error?.message ?? "")")
            if !text.isEmpty { #expect(error?.message.contains(text) == false) }
        }
        #expect(throws: SecretKeyError.self) { try SecretKey(bytes: [UInt8](repeating: 0, count: 32), id: 0) }
    }

    @Test func theKeyComesFromTheEnvironment() throws {
        let hex = String(repeating: "0f", count: 32)
        #expect(throws: Never.self) { try SecretKey.fromEnvironment(["SWITCHYARD_SECRET_KEY": hex]) }
        let missing = #expect(throws: SecretKeyError.self) { try SecretKey.fromEnvironment([:]) }
        #expect(missing?.message.contains("SWITCHYARD_SECRET_KEY is not set") == true)
        let bad = #expect(throws: SecretKeyError.self) { try SecretKey.fromEnvironment(["SWITCHYARD_SECRET_KEY": "xyz"]) }
        #expect(bad?.message.hasPrefix("SWITCHYARD_SECRET_KEY:") == true)
    }

    @Test func theRedactorReplacesEveryKnownSecret() {
        let redactor = SecretRedactor(secrets: ["tok-123", "tok-123-long", "", "a b"])
        #expect(redactor.redact("Bearer tok-123-long and tok-123 and a%20b") == "Bearer [REDACTED] and [REDACTED] and [REDACTED]")
        #expect(redactor.redact("nothing here") == "nothing here")
    }
}
