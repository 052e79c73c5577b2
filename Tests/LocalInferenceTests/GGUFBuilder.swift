@testable import LocalInference

/// Writes small GGUF files byte by byte, so reader tests need no model on disk and can
/// produce every value type and every kind of damage.
struct GGUFBuilder {
    var bytes: [UInt8] = []
    var alignment = 32

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes += Array(s.utf8)
    }

    enum Value {
        case u8(UInt8)
        case i8(Int8)
        case u16(UInt16)
        case i16(Int16)
        case u32(UInt32)
        case i32(Int32)
        case f32(Float)
        case bool(Bool)
        case string(String)
        case array(UInt32, [Value])
        case u64(UInt64)
        case i64(Int64)
        case f64(Double)

        var code: UInt32 {
            switch self {
            case .u8: return 0
            case .i8: return 1
            case .u16: return 2
            case .i16: return 3
            case .u32: return 4
            case .i32: return 5
            case .f32: return 6
            case .bool: return 7
            case .string: return 8
            case .array: return 9
            case .u64: return 10
            case .i64: return 11
            case .f64: return 12
            }
        }
    }

    mutating func value(_ v: Value) {
        switch v {
        case .u8(let x): u8(x)
        case .i8(let x): u8(UInt8(bitPattern: x))
        case .u16(let x): u16(x)
        case .i16(let x): u16(UInt16(bitPattern: x))
        case .u32(let x): u32(x)
        case .i32(let x): u32(UInt32(bitPattern: x))
        case .f32(let x): f32(x)
        case .bool(let x): u8(x ? 1 : 0)
        case .string(let s): string(s)
        case .array(let type, let values):
            u32(type)
            u64(UInt64(values.count))
            for e in values { value(e) }
        case .u64(let x): u64(x)
        case .i64(let x): u64(UInt64(bitPattern: x))
        case .f64(let x): f64(x)
        }
    }

    struct Tensor {
        var name: String
        var dims: [UInt64]
        var type: UInt32
        var data: [UInt8]
    }

    /// A complete file: header, metadata, tensor infos, padding, tensor data (each aligned).
    static func file(version: UInt32 = 3, metadata: [(String, Value)], tensors: [Tensor], alignment: Int = 32) -> [UInt8] {
        var b = GGUFBuilder()
        b.u32(0x4655_4747)
        b.u32(version)
        b.u64(UInt64(tensors.count))
        b.u64(UInt64(metadata.count))
        for (k, v) in metadata {
            b.string(k)
            b.u32(v.code)
            b.value(v)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, off) in zip(tensors, offsets) {
            b.string(t.name)
            b.u32(UInt32(t.dims.count))
            for d in t.dims { b.u64(d) }
            b.u32(t.type)
            b.u64(UInt64(off))
        }
        while b.bytes.count % alignment != 0 { b.u8(0) }
        for t in tensors {
            b.bytes += t.data
            while b.bytes.count % alignment != 0 { b.u8(0) }
        }
        return b.bytes
    }
}
