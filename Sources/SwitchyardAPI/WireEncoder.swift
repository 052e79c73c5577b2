import Foundation
import SwitchyardCore

/// Encodes a wire type into a ``JSONValue``, which the server then writes with
/// `JSONValue.compactJSON` (keys sorted, integral doubles as `1.0`), so a response built
/// from a wire type is byte for byte what the hand-built dictionaries produced.
///
/// Why not `JSONEncoder`: it would write `1.0` as `1` and leave out nil optionals. The
/// API has always written every optional field as an explicit `null`, so this encoder's
/// `encodeIfPresent` writes `null` for nil; the few fields that are absent rather than
/// null (`error.details`, a run's `steps` in a list) are left out by their types' own
/// `encode(to:)`.
public enum WireEncoder {
    /// The JSON value of `value`.
    public static func json(_ value: some Encodable) throws -> JSONValue {
        let encoder = ValueEncoder(codingPath: [])
        try value.encode(to: encoder)
        return encoder.box.value
    }

    /// The compact JSON text of `value`, as the server writes it.
    public static func text(_ value: some Encodable) throws -> String {
        try json(value).compactJSON
    }
}

/// Decoding wire types, on both sides: the server's request bodies and the CLI's responses.
public enum WireDecoder {
    /// Decodes `type` from JSON bytes.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }

    /// Decodes `type` from an already parsed JSON value.
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try JSONDecoder().decode(type, from: Data(value.compactJSON.utf8))
    }
}

/// A mutable slot for the value being built; the containers of one level share it.
/// Only ever used within one synchronous `encode(to:)` call, never across threads.
private final class Box {
    var value: JSONValue
    init(_ value: JSONValue) { self.value = value }
}

private struct ValueEncoder: Encoder {
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let box = Box(.null)

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if box.value.objectValue == nil { box.value = .object([:]) }
        return KeyedEncodingContainer(KeyedContainer<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if box.value.arrayValue == nil { box.value = .array([]) }
        return UnkeyedContainer(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(box: box, codingPath: codingPath)
    }
}

/// The JSON value of one encodable, at `path`.
private func encodeValue(_ value: some Encodable, path: [any CodingKey]) throws -> JSONValue {
    switch value {
    case let json as JSONValue: return json
    case let text as String: return .string(text)
    case let flag as Bool: return .bool(flag)
    case let number as Int: return .int(number)
    case let number as Int64: return .int(Int(number))
    case let number as Int32: return .int(Int(number))
    case let number as Double: return .double(number)
    default:
        let encoder = ValueEncoder(codingPath: path)
        try value.encode(to: encoder)
        return encoder.box.value
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: Box
    var codingPath: [any CodingKey]

    private func set(_ value: JSONValue, _ key: Key) {
        guard case .object(var object) = box.value else { return }
        object[key.stringValue] = value
        box.value = .object(object)
    }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(.double(value), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(.int(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        set(try encodeValue(value, path: codingPath + [key]), key)
    }

    // An absent optional is an explicit `null`: the API's convention (see ``WireEncoder``).
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { set(value.map(JSONValue.bool) ?? .null, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { set(value.map(JSONValue.string) ?? .null, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { set(value.map(JSONValue.double) ?? .null, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { set(value.map(JSONValue.int) ?? .null, key) }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        guard let value else { return set(.null, key) }
        try encode(value, forKey: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let encoder = ValueEncoder(codingPath: codingPath + [key])
        let container = encoder.container(keyedBy: keyType)
        set(encoder.box.value, key)
        return KeyedEncodingContainer(
            NestedKeyed(
                inner: container,
                commit: { [box] value in
                    guard case .object(var object) = box.value else { return }
                    object[key.stringValue] = value
                    box.value = .object(object)
                }, box: encoder.box))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        // Not used by the wire types; a nested array is encoded as a value.
        UnkeyedContainer(box: Box(.array([])), codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { ValueEncoder(codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { ValueEncoder(codingPath: codingPath + [key]) }
}

/// A nested keyed container that writes its object back to its parent after each change.
private struct NestedKeyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
    var inner: KeyedEncodingContainer<Key>
    let commit: (JSONValue) -> Void
    let box: Box
    var codingPath: [any CodingKey] { inner.codingPath }

    private mutating func after(_ change: (inout KeyedEncodingContainer<Key>) throws -> Void) rethrows {
        try change(&inner)
        commit(box.value)
    }

    mutating func encodeNil(forKey key: Key) throws { try after { try $0.encodeNil(forKey: key) } }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try after { try $0.encode(value, forKey: key) } }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws { try after { try $0.encodeIfPresent(value, forKey: key) } }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        inner.nestedContainer(keyedBy: keyType, forKey: key)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { inner.nestedUnkeyedContainer(forKey: key) }
    mutating func superEncoder() -> any Encoder { inner.superEncoder() }
    mutating func superEncoder(forKey key: Key) -> any Encoder { inner.superEncoder(forKey: key) }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let box: Box
    var codingPath: [any CodingKey]
    var count: Int { box.value.arrayValue?.count ?? 0 }

    private func append(_ value: JSONValue) {
        guard case .array(var items) = box.value else { return }
        items.append(value)
        box.value = .array(items)
    }

    mutating func encodeNil() throws { append(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { append(try encodeValue(value, path: codingPath)) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        // Not used by the wire types; a nested object is encoded as a value.
        ValueEncoder(codingPath: codingPath).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { UnkeyedContainer(box: Box(.array([])), codingPath: codingPath) }
    mutating func superEncoder() -> any Encoder { ValueEncoder(codingPath: codingPath) }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let box: Box
    var codingPath: [any CodingKey]

    mutating func encodeNil() throws { box.value = .null }
    mutating func encode<T: Encodable>(_ value: T) throws { box.value = try encodeValue(value, path: codingPath) }
}
