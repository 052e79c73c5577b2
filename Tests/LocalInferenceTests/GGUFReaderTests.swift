import Testing

@testable import LocalInference

@Suite struct GGUFReaderTests {
    static let allValues: [(String, GGUFBuilder.Value)] = [
        ("general.architecture", .string("test")),
        ("v.u8", .u8(200)), ("v.i8", .i8(-5)), ("v.u16", .u16(60000)), ("v.i16", .i16(-30000)),
        ("v.u32", .u32(4_000_000_000)), ("v.i32", .i32(-2_000_000_000)), ("v.f32", .f32(1.5)),
        ("v.bool", .bool(true)), ("v.string", .string("héllo ▁ wörld")),
        ("v.u64", .u64(1 << 40)), ("v.i64", .i64(-(1 << 40))), ("v.f64", .f64(-2.25)),
        ("v.array", .array(8, [.string("a"), .string(""), .string("ccc")])),
        ("v.nested", .array(9, [.array(4, [.u32(1), .u32(2)]), .array(4, [])])),
        ("v.empty", .array(6, [])),
    ]

    static func sample(alignment: Int = 32) -> [UInt8] {
        var meta = allValues
        if alignment != 32 { meta.append(("general.alignment", .u32(UInt32(alignment)))) }
        // An F32 [4 x 2] tensor and a Q8_0 [32 x 1] tensor.
        var f32 = GGUFBuilder()
        for i in 0..<8 { f32.f32(Float(i)) }
        var q8 = GGUFBuilder()
        q8.u16(Float16(0.5).bitPattern)
        for i in 0..<32 { q8.u8(UInt8(bitPattern: Int8(i - 16))) }
        return GGUFBuilder.file(
            metadata: meta,
            tensors: [
                .init(name: "a.weight", dims: [4, 2], type: 0, data: f32.bytes),
                .init(name: "b.weight", dims: [32, 1], type: 8, data: q8.bytes),
            ], alignment: alignment)
    }

    @Test func readsEveryMetadataTypeAndTensorInfo() throws {
        let g = try GGUFFile(file: MappedFile(bytes: Self.sample()))
        #expect(g.version == 3)
        #expect(g.metadata["v.u8"] == .uint8(200))
        #expect(g.metadata["v.i8"] == .int8(-5))
        #expect(g.metadata["v.u16"] == .uint16(60000))
        #expect(g.metadata["v.i16"] == .int16(-30000))
        #expect(g.metadata["v.u32"] == .uint32(4_000_000_000))
        #expect(g.metadata["v.i32"] == .int32(-2_000_000_000))
        #expect(g.metadata["v.f32"] == .float32(1.5))
        #expect(g.metadata["v.bool"] == .bool(true))
        #expect(g.metadata["v.string"] == .string("héllo ▁ wörld"))
        #expect(g.metadata["v.u64"] == .uint64(1 << 40))
        #expect(g.metadata["v.i64"] == .int64(-(1 << 40)))
        #expect(g.metadata["v.f64"] == .float64(-2.25))
        #expect(g.metadata["v.array"]?.arrayValue == [.string("a"), .string(""), .string("ccc")])
        #expect(g.metadata["v.nested"]?.arrayValue?.count == 2)
        #expect(g.metadata["v.empty"] == .numbers(elementType: 6, values: []))
        #expect(g.metadataKeys.first == "general.architecture")
        #expect(g.tensors.count == 2)
        let a = try #require(g.tensor("a.weight"))
        #expect(a.dims == [4, 2] && a.type == .f32 && a.byteCount == 32)
        #expect(a.fileOffset % 32 == 0)
        #expect(g.file.base.loadUnaligned(fromByteOffset: a.fileOffset + 4 * 7, as: Float.self) == 7)
        let b = try #require(g.tensor("b.weight"))
        #expect(b.type == .q8_0 && b.byteCount == 34)
        var row = [Float](repeating: 0, count: 32)
        let w = WeightMatrix(name: "b", type: .q8_0, data: g.file.base + b.fileOffset, rows: 1, cols: 32)
        row.withUnsafeMutableBufferPointer { w.dequantizeRow(0, into: $0.baseAddress!) }
        #expect(row[0] == -8 && row[31] == 7.5)
    }

    @Test func honoursCustomAlignment() throws {
        let g = try GGUFFile(file: MappedFile(bytes: Self.sample(alignment: 64)))
        #expect(g.alignment == 64)
        #expect(g.dataOffset % 64 == 0)
        #expect(g.tensors.allSatisfy { $0.fileOffset % 64 == 0 })
    }

    /// Every truncation of a valid file is reported as an error, never a crash.
    @Test func everyTruncationIsAnError() {
        let bytes = Self.sample()
        // Cutting the padding after the last tensor loses nothing; every shorter cut must fail.
        let end = (try? GGUFFile(file: MappedFile(bytes: bytes))).map { $0.tensors.map { $0.fileOffset + $0.byteCount }.max() ?? 0 } ?? bytes.count
        #expect(end > 100)
        for n in 0..<end {
            do {
                _ = try GGUFFile(file: MappedFile(bytes: Array(bytes[0..<n])))
                Issue.record("a file cut to \(n) of \(bytes.count) bytes was accepted")
            } catch {
                switch error {
                case .truncated, .corrupt, .notGGUF: break
                default: Issue.record("cut to \(n): unexpected \(error)")
                }
            }
        }
    }

    /// Random byte flips in the header never crash the reader (errors or success only).
    @Test func corruptionNeverCrashes() {
        let bytes = Self.sample()
        var rng = Xoshiro256(seed: 7)
        for _ in 0..<2000 {
            var b = bytes
            for _ in 0..<3 {
                let i = Int(rng.next() % UInt64(min(b.count, 700)))
                b[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            _ = try? GGUFFile(file: MappedFile(bytes: b))
        }
    }

    @Test func clearErrors() throws {
        var bad = Self.sample()
        bad[0] = 0x58
        #expect(throws: LocalInferenceError.notGGUF(path: "<buffer>")) { try GGUFFile(file: MappedFile(bytes: bad)) }

        var v9 = Self.sample()
        v9[4] = 9
        #expect(throws: LocalInferenceError.unsupportedVersion(9)) { try GGUFFile(file: MappedFile(bytes: v9)) }

        let unknownType = GGUFBuilder.file(metadata: [], tensors: [])  // then patch in a bogus KV
        var b = GGUFBuilder()
        b.bytes = Array(unknownType[0..<16])
        b.u64(1)
        b.string("k")
        b.u32(99)
        #expect(throws: LocalInferenceError.corrupt("metadata k has unknown value type 99")) {
            try GGUFFile(file: MappedFile(bytes: b.bytes + [0, 0, 0, 0]))
        }

        let hugeCount = GGUFBuilder.file(metadata: [("x", .array(4, [.u32(1)]))], tensors: [])
        var h = hugeCount
        // array length field sits after magic/version/counts (24) + key (8+1) + type (4) + elem type (4)
        let lenAt = 24 + 9 + 4 + 4
        for i in 0..<8 { h[lenAt + i] = 0xFF }
        h[lenAt + 7] = 0x0F
        #expect(throws: LocalInferenceError.self) { try GGUFFile(file: MappedFile(bytes: h)) }

        #expect(throws: LocalInferenceError.self) { try GGUFFile(path: "/nonexistent/model.gguf") }
        let err = LocalInferenceError.unsupportedTensorType(tensor: "t", typeCode: 23)
        #expect(err.description.contains("Q4_K"))
    }

    @Test func tensorOutsideTheFileIsTruncated() {
        var bytes = Self.sample()
        bytes.removeLast(40)
        #expect(throws: LocalInferenceError.self) { try GGUFFile(file: MappedFile(bytes: bytes)) }
    }

    @Test func unknownTensorTypesAreKeptButNotComputable() throws {
        let bytes = GGUFBuilder.file(metadata: [], tensors: [.init(name: "iq", dims: [256], type: 19, data: [UInt8](repeating: 0, count: 64))])
        let g = try GGUFFile(file: MappedFile(bytes: bytes))
        #expect(g.tensors[0].type == nil && g.tensors[0].typeCode == 19)
        #expect(GGMLType.q4_0.isComputable == false)
    }
}
