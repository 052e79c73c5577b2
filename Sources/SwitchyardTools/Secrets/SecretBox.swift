import Crypto
import Foundation

/// The key that encrypts tenant secrets at rest: 32 bytes for AES-256-GCM, with a
/// one-byte id written in front of every ciphertext so that keys can be rotated
/// (new secrets sealed with the new key, old ones still opened with the old).
public struct SecretKey: Sendable {
    /// The environment variable the server reads the key from.
    public static let environmentVariable = "SWITCHYARD_SECRET_KEY"

    /// 1…255; written as the first byte of every ciphertext.
    public let id: UInt8
    /// Raw bytes rather than `SymmetricKey`, which is not `Sendable` in swift-crypto 3;
    /// a `SymmetricKey` is made from them for each operation.
    private let bytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: bytes) }

    /// A key from raw bytes (exactly 32).
    public init(bytes: some Collection<UInt8>, id: UInt8 = 1) throws(SecretKeyError) {
        guard id != 0 else { throw SecretKeyError("the key id must be from 1 to 255") }
        guard bytes.count == 32 else {
            throw SecretKeyError("the key must be 32 bytes, got \(bytes.count)")
        }
        self.id = id
        self.bytes = Array(bytes)
    }

    /// Parses a key as written in the environment: 64 hex characters, or base64
    /// (standard or URL-safe, padding optional) of 32 bytes. Surrounding whitespace
    /// is ignored. Errors never repeat the text, which may be a real key.
    public init(parsing text: String, id: UInt8 = 1) throws(SecretKeyError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else {
            throw SecretKeyError("the key is empty; expected 64 hex characters or base64 of 32 bytes (e.g. `openssl rand -base64 32`)")
        }
        if trimmed.utf8.count == 64, trimmed.allSatisfy(\.isHexDigit) {
            var bytes: [UInt8] = []
            var index = trimmed.startIndex
            while index < trimmed.endIndex {
                let next = trimmed.index(index, offsetBy: 2)
                guard let byte = UInt8(trimmed[index..<next], radix: 16) else { break }
                bytes.append(byte)
                index = next
            }
            try self.init(bytes: bytes, id: id)
            return
        }
        var base64 = trimmed.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else {
            throw SecretKeyError("the key is neither 64 hex characters nor base64 (\(trimmed.utf8.count) characters given)")
        }
        guard data.count == 32 else {
            throw SecretKeyError("the key decodes from base64 to \(data.count) bytes; it must be 32 (e.g. `openssl rand -base64 32`)")
        }
        try self.init(bytes: data, id: id)
    }

    /// The key from `SWITCHYARD_SECRET_KEY` (or another variable).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment,
        variable: String = environmentVariable, id: UInt8 = 1
    ) throws(SecretKeyError) -> SecretKey {
        guard let text = environment[variable] else {
            throw SecretKeyError("\(variable) is not set; set it to 64 hex characters or base64 of 32 random bytes")
        }
        do {
            return try SecretKey(parsing: text, id: id)
        } catch {
            throw SecretKeyError("\(variable): \(error.message)")
        }
    }

    /// A fresh random key (for tests and `yard` set-up helpers).
    public static func generate(id: UInt8 = 1) -> SecretKey {
        SecretKey(random: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }, id: id)
    }

    private init(random bytes: [UInt8], id: UInt8) {
        self.bytes = bytes
        self.id = id
    }
}

/// Why a key could not be read.
public struct SecretKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Encrypts tenant secrets at rest with AES-256-GCM.
///
/// Sealed format: `[key id: 1 byte][nonce: 12][ciphertext][tag: 16]`, i.e. the key id
/// followed by CryptoKit's combined representation. The associated data binds each
/// ciphertext to its tenant and secret name (and key id): a ciphertext copied to
/// another tenant's or another name's row fails to open instead of leaking under
/// the wrong identity, and any change to a byte is detected.
///
/// Rotation: seal with `current`; open with whichever key the id byte names, so old
/// rows keep working while they are re-sealed.
public struct SecretBox: Sendable {
    public let current: SecretKey
    private let keys: [UInt8: SecretKey]

    public init(current: SecretKey, previous: [SecretKey] = []) {
        self.current = current
        var keys: [UInt8: SecretKey] = [:]
        for key in previous { keys[key.id] = key }
        keys[current.id] = current
        self.keys = keys
    }

    public func seal(_ plaintext: String, tenant: UUID, name: String) throws(SecretBoxError) -> Data {
        do {
            let box = try AES.GCM.seal(
                Data(plaintext.utf8), using: current.key, authenticating: Self.associatedData(keyID: current.id, tenant: tenant, name: name))
            guard let combined = box.combined else { throw SecretBoxError("cannot seal the secret") }
            var out = Data([current.id])
            out.append(combined)
            return out
        } catch let error as SecretBoxError {
            throw error
        } catch {
            throw SecretBoxError("cannot seal the secret: \(error)")
        }
    }

    public func open(_ sealed: Data, tenant: UUID, name: String) throws(SecretBoxError) -> String {
        guard let keyID = sealed.first, sealed.count >= 1 + 12 + 16 else {
            throw SecretBoxError("the stored secret \(name) is truncated")
        }
        guard let key = keys[keyID] else {
            throw SecretBoxError("the stored secret \(name) was sealed with key id \(keyID), which is not configured")
        }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(combined: sealed.dropFirst())
            plaintext = try AES.GCM.open(box, using: key.key, authenticating: Self.associatedData(keyID: keyID, tenant: tenant, name: name))
        } catch {
            throw SecretBoxError("the stored secret \(name) cannot be opened: wrong key, wrong tenant or name, or altered data")
        }
        guard let text = String(data: plaintext, encoding: .utf8) else {
            throw SecretBoxError("the stored secret \(name) is not UTF-8 text")
        }
        return text
    }

    static func associatedData(keyID: UInt8, tenant: UUID, name: String) -> Data {
        var data = Data("switchyard.secret.v1".utf8)
        data.append(0)
        data.append(keyID)
        withUnsafeBytes(of: tenant.uuid) { data.append(contentsOf: $0) }
        data.append(contentsOf: name.utf8)
        return data
    }
}

/// Why a secret could not be sealed or opened. Never contains the secret.
public struct SecretBoxError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
