#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file (or an owned copy of a byte buffer, for tests).
///
/// Model weights are hundreds of megabytes and are only ever read, so they are mapped rather
/// than loaded: the kernel pages them in on first touch and shares them between processes.
///
/// `@unchecked Sendable` is safe because the mapping is created `PROT_READ`, never written
/// through, never remapped, and unmapped only in `deinit`, when no other reference can exist.
/// Every pointer handed out is derived from `base` and is valid while the `MappedFile` lives;
/// holders of such pointers (tensors, the model) keep a strong reference to it.
public final class MappedFile: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let count: Int
    private let isMapped: Bool

    /// Maps `path` read-only.
    public init(path: String) throws(LocalInferenceError) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(path: path, reason: "not a regular file") }
        let size = Int(st.st_size)
        guard size > 0 else { throw .truncated(what: "GGUF header", offset: 0, needed: 24, available: 0) }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw .cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))") }
        base = UnsafeRawPointer(p)
        count = size
        isMapped = true
    }

    /// Copies `bytes` into an owned, 64-byte aligned buffer (used by tests and synthetic models).
    public init(bytes: [UInt8]) {
        let n = max(bytes.count, 1)
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 64)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress { p.copyMemory(from: s, byteCount: bytes.count) }
        }
        base = UnsafeRawPointer(p)
        count = bytes.count
        isMapped = false
    }

    deinit {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}

/// A GGUF metadata value. Arrays keep their element type so that an empty array still
/// says what it would have held.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    case array(elementType: UInt32, values: [GGUFValue])
    /// An array of strings, kept compact: a vocabulary of 262k tokens as 262k enum values
    /// and Swift strings would cost tens of MB while the model loads.
    case strings(GGUFStringArray)
    /// An array of 8-, 16- or 32-bit integers or of floats (element type code kept), each
    /// value exact as a Double: token scores and types without an enum value per element.
    case numbers(elementType: UInt32, values: [Double])

    /// The value as an integer when it is any integer type (GGUF writers differ on widths).
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        case .bool(let v): return v ? 1 : 0
        default: return nil
        }
    }

    public var floatValue: Float? {
        switch self {
        case .float32(let v): return v
        case .float64(let v): return Float(v)
        default: return intValue.map { Float($0) }
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements of any array value (materialized for the compact forms).
    public var arrayValue: [GGUFValue]? {
        switch self {
        case .array(_, let values): return values
        case .strings(let table): return table.map { .string(String(decoding: $0, as: UTF8.self)) }
        case .numbers(let type, let values): return values.map { Self.number($0, type: type) }
        default: return nil
        }
    }

    /// The element count of any array value, without materializing it.
    public var arrayCount: Int? {
        switch self {
        case .array(_, let values): return values.count
        case .strings(let table): return table.count
        case .numbers(_, let values): return values.count
        default: return nil
        }
    }

    /// An element of a `.numbers` array as the typed value it was in the file.
    static func number(_ v: Double, type: UInt32) -> GGUFValue {
        switch type {
        case 0: return .uint8(UInt8(v))
        case 1: return .int8(Int8(v))
        case 2: return .uint16(UInt16(v))
        case 3: return .int16(Int16(v))
        case 4: return .uint32(UInt32(v))
        case 5: return .int32(Int32(v))
        default: return .float32(Float(v))
        }
    }
}

/// A GGUF array of strings as one byte buffer and `count + 1` offsets into it.
public struct GGUFStringArray: Sendable, Equatable, RandomAccessCollection {
    public let bytes: [UInt8]
    public let starts: [Int32]

    public var startIndex: Int { 0 }
    public var endIndex: Int { starts.count - 1 }
    public subscript(i: Int) -> ArraySlice<UInt8> { bytes[Int(starts[i])..<Int(starts[i + 1])] }
}

/// The ggml tensor element types: codes as in ggml.h.
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case bf16 = 30

    /// Elements per block and bytes per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        }
    }

    public var bytesPerBlock: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        }
    }

    /// Whether this engine has kernels for the type (the others are only described).
    public var isComputable: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q5_0, .q4_K, .q6_K: return true
        default: return false
        }
    }
}

/// One tensor's description from the GGUF header, with its bytes located in the mapping.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// ggml order: `dims[0]` is the contiguous (row) length.
    public let dims: [Int]
    public let typeCode: UInt32
    /// The ggml type when this reader knows it (unknown codes are kept, and rejected only
    /// when a tensor of that type is actually used).
    public let type: GGMLType?
    /// Offset of the tensor's first byte from the start of the file.
    public let fileOffset: Int
    public let byteCount: Int

    public var elementCount: Int { dims.reduce(1, *) }
}

/// A parsed GGUF file: metadata and tensor infos, with tensor bytes left in the mapping.
public struct GGUFFile: Sendable {
    public let file: MappedFile
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order (the dictionary loses it).
    public let metadataKeys: [String]
    public let tensors: [GGUFTensorInfo]
    public let tensorsByName: [String: Int]
    public let alignment: Int
    public let dataOffset: Int

    /// Opens and parses the file at `path`.
    public init(path: String) throws(LocalInferenceError) {
        let file = try MappedFile(path: path)
        do {
            try self.init(file: file)
        } catch .notGGUF {
            throw .notGGUF(path: path)
        }
    }

    /// Parses an already mapped (or in-memory) file. Every read is bounds-checked, so a
    /// truncated or corrupt file yields an error, never a crash or an absurd allocation.
    public init(file: MappedFile) throws(LocalInferenceError) {
        var r = ByteReader(base: file.base, count: file.count)
        guard file.count >= 4 else { throw .truncated(what: "GGUF magic", offset: 0, needed: 4, available: file.count) }
        let magic = try r.u32("magic")
        guard magic == 0x4655_4747 else { throw .notGGUF(path: "<buffer>") }
        let version = try r.u32("version")
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        let tensorCount = try r.u64("tensor count")
        let kvCount = try r.u64("metadata count")
        // Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least 8+4+4+8.
        guard kvCount <= UInt64(r.remaining / 13) else { throw .corrupt("metadata count \(kvCount) cannot fit in the file") }
        guard tensorCount <= UInt64(r.remaining / 24) else { throw .corrupt("tensor count \(tensorCount) cannot fit in the file") }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(Int(kvCount))
        for _ in 0..<Int(kvCount) {
            let key = try r.string("metadata key")
            let type = try r.u32("type of \(key)")
            let value = try r.value(type: type, context: key, depth: 0)
            if metadata[key] == nil { keys.append(key) }
            metadata[key] = value
        }

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.intValue, v > 0, v & (v - 1) == 0, v <= 1 << 20 else {
                throw .corrupt("general.alignment must be a power of two, got \(a)")
            }
            alignment = v
        }

        var infos: [(String, [Int], UInt32, UInt64)] = []
        infos.reserveCapacity(Int(tensorCount))
        for i in 0..<Int(tensorCount) {
            let name = try r.string("tensor \(i) name")
            let nDims = try r.u32("dimension count of \(name)")
            guard nDims >= 1, nDims <= 4 else { throw .corrupt("tensor \(name) has \(nDims) dimensions (1–4 allowed)") }
            var dims: [Int] = []
            for _ in 0..<Int(nDims) {
                let d = try r.u64("dimensions of \(name)")
                guard d >= 1, d <= 1 << 40 else { throw .corrupt("tensor \(name) has dimension \(d)") }
                dims.append(Int(d))
            }
            let type = try r.u32("type of \(name)")
            let offset = try r.u64("offset of \(name)")
            infos.append((name, dims, type, offset))
        }

        let dataOffset = (r.offset + alignment - 1) / alignment * alignment
        var tensors: [GGUFTensorInfo] = []
        var byName: [String: Int] = [:]
        for (name, dims, code, offset) in infos {
            let type = GGMLType(rawValue: code)
            var bytes = 0
            if let type {
                let (elements, overflow) = dims.reduce((1, false)) { acc, d in
                    let m = acc.0.multipliedReportingOverflow(by: d)
                    return (m.partialValue, acc.1 || m.overflow)
                }
                guard !overflow else { throw .corrupt("tensor \(name) has too many elements") }
                guard dims[0] % type.blockSize == 0 else {
                    throw .corrupt("tensor \(name) row length \(dims[0]) is not a multiple of its block size \(type.blockSize)")
                }
                bytes = elements / type.blockSize * type.bytesPerBlock
            }
            guard offset % UInt64(alignment) == 0 else { throw .corrupt("tensor \(name) offset \(offset) is not aligned to \(alignment)") }
            guard offset <= UInt64(file.count) else {
                throw .truncated(what: "tensor \(name)", offset: dataOffset, needed: Int(clamping: offset), available: file.count - dataOffset)
            }
            let start = dataOffset + Int(offset)
            guard start <= file.count, bytes <= file.count - start else {
                throw .truncated(what: "data of tensor \(name)", offset: start, needed: bytes, available: max(0, file.count - start))
            }
            guard byName[name] == nil else { throw .corrupt("tensor \(name) appears twice") }
            byName[name] = tensors.count
            tensors.append(GGUFTensorInfo(name: name, dims: dims, typeCode: code, type: type, fileOffset: start, byteCount: bytes))
        }

        self.file = file
        self.version = version
        self.metadata = metadata
        self.metadataKeys = keys
        self.tensors = tensors
        self.tensorsByName = byName
        self.alignment = alignment
        self.dataOffset = dataOffset
    }

    public func tensor(_ name: String) -> GGUFTensorInfo? {
        tensorsByName[name].map { tensors[$0] }
    }

    // MARK: typed metadata access

    public func int(_ key: String) throws(LocalInferenceError) -> Int {
        guard let v = metadata[key]?.intValue else { throw .missingMetadata(key: key, expected: "an integer") }
        return v
    }

    public func float(_ key: String) throws(LocalInferenceError) -> Float {
        guard let v = metadata[key]?.floatValue else { throw .missingMetadata(key: key, expected: "a number") }
        return v
    }

    public func string(_ key: String) throws(LocalInferenceError) -> String {
        guard let v = metadata[key]?.stringValue else { throw .missingMetadata(key: key, expected: "a string") }
        return v
    }
}

/// Bounds-checked little-endian reader over the mapping.
struct ByteReader {
    let base: UnsafeRawPointer
    let count: Int
    var offset = 0

    var remaining: Int { count - offset }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws(LocalInferenceError) {
        guard n >= 0, n <= remaining else {
            throw .truncated(what: what(), offset: offset, needed: n, available: remaining)
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(LocalInferenceError) -> T {
        try need(MemoryLayout<T>.size, what())
        let v = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(LocalInferenceError) -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws(LocalInferenceError) -> UInt64 { try load(UInt64.self, what()) }

    mutating func string(_ what: @autoclosure () -> String) throws(LocalInferenceError) -> String {
        let n = try u64("length of \(what())")
        guard n <= UInt64(remaining) else {
            throw .truncated(what: what(), offset: offset, needed: Int(clamping: n), available: remaining)
        }
        let len = Int(n)
        let s = String(decoding: UnsafeRawBufferPointer(start: base + offset, count: len), as: UTF8.self)
        offset += len
        return s
    }

    mutating func value(type: UInt32, context: String, depth: Int) throws(LocalInferenceError) -> GGUFValue {
        switch type {
        case 0: return .uint8(try load(UInt8.self, context))
        case 1: return .int8(try load(Int8.self, context))
        case 2: return .uint16(try load(UInt16.self, context))
        case 3: return .int16(try load(Int16.self, context))
        case 4: return .uint32(try load(UInt32.self, context))
        case 5: return .int32(try load(Int32.self, context))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, context)))
        case 7:
            let b = try load(UInt8.self, context)
            guard b <= 1 else { throw .corrupt("boolean \(context) has value \(b)") }
            return .bool(b == 1)
        case 8: return .string(try string(context))
        case 9:
            guard depth < 4 else { throw .corrupt("arrays nested too deeply in \(context)") }
            let elementType = try u32("array type of \(context)")
            let n = try u64("array length of \(context)")
            // Every element takes at least one byte: a larger count is a lie.
            guard n <= UInt64(remaining) else {
                throw .truncated(what: "array \(context)", offset: offset, needed: Int(clamping: n), available: remaining)
            }
            switch elementType {
            case 8:
                var bytes: [UInt8] = []
                var starts: [Int32] = [0]
                // Every string takes at least its 8-byte length: a larger count is a lie.
                guard n <= UInt64(remaining / 8) else {
                    throw .truncated(what: "strings of \(context)", offset: offset, needed: Int(clamping: n) * 8, available: remaining)
                }
                starts.reserveCapacity(Int(n) + 1)
                for _ in 0..<Int(n) {
                    let len = try u64("string length in \(context)")
                    guard len <= UInt64(remaining) else {
                        throw .truncated(what: "string in \(context)", offset: offset, needed: Int(clamping: len), available: remaining)
                    }
                    guard bytes.count + Int(len) <= Int(Int32.max) else { throw .corrupt("strings of \(context) exceed 2 GiB") }
                    bytes.append(contentsOf: UnsafeRawBufferPointer(start: base + offset, count: Int(len)))
                    offset += Int(len)
                    starts.append(Int32(bytes.count))
                }
                return .strings(GGUFStringArray(bytes: bytes, starts: starts))
            case 0...6:
                var values: [Double] = []
                values.reserveCapacity(Int(n))
                for _ in 0..<Int(n) {
                    switch try value(type: elementType, context: context, depth: depth + 1) {
                    case .float32(let v): values.append(Double(v))
                    case let element: values.append(Double(element.intValue ?? 0))
                    }
                }
                return .numbers(elementType: elementType, values: values)
            default:
                var values: [GGUFValue] = []
                values.reserveCapacity(Int(n))
                for _ in 0..<Int(n) {
                    values.append(try value(type: elementType, context: context, depth: depth + 1))
                }
                return .array(elementType: elementType, values: values)
            }
        case 10: return .uint64(try load(UInt64.self, context))
        case 11: return .int64(try load(Int64.self, context))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, context)))
        default:
            throw .corrupt("metadata \(context) has unknown value type \(type)")
        }
    }
}
