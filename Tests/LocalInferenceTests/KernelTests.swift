import Testing

@testable import LocalInference

/// Each integer kernel must equal the float dot product of the dequantized weights with the
/// dequantized activations: this checks the bit unpacking of every format against ggml's
/// reference dequantization formulas, independently of the model.
@Suite struct KernelTests {
    /// Random blocks with sane fp16 scales at the places each format keeps them.
    static func randomRow(_ type: GGMLType, cols: Int, rng: inout Xoshiro256) -> [UInt8] {
        var bytes = (0..<(cols / type.blockSize * type.bytesPerBlock)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func setHalf(_ at: Int, _ v: Float) {
            let b = Float16(v).bitPattern
            bytes[at] = UInt8(b & 0xFF)
            bytes[at + 1] = UInt8(b >> 8)
        }
        for blk in 0..<(cols / type.blockSize) {
            let base = blk * type.bytesPerBlock
            let s = Float(rng.next() % 1000 + 1) / 20000
            switch type {
            case .q8_0, .q5_0: setHalf(base, s)
            case .q4_K:
                setHalf(base, s)
                setHalf(base + 2, s / 3)
            case .q6_K: setHalf(base + 208, s)
            default: break
            }
        }
        if type == .f32 {
            bytes = []
            for _ in 0..<cols { withUnsafeBytes(of: Float(Int(rng.next() % 2001) - 1000) / 1000) { bytes += $0 } }
        }
        if type == .bf16 {
            bytes = []
            for _ in 0..<cols { withUnsafeBytes(of: UInt16(Float(Int(rng.next() % 2001) - 1000).bitPattern >> 16) / 1) { bytes += $0 } }
        }
        if type == .f16 {
            bytes = []
            for _ in 0..<cols { withUnsafeBytes(of: Float16(Float(Int(rng.next() % 2001) - 1000) / 1000).bitPattern) { bytes += $0 } }
        }
        return bytes
    }

    @Test(arguments: [GGMLType.q8_0, .q5_0, .q4_K, .q6_K, .f32, .f16, .bf16])
    func dotMatchesDequantizedReference(_ type: GGMLType) {
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 1)
        let cols = 512
        let row = Self.randomRow(type, cols: cols, rng: &rng)
        let act = ActivationBuffer(n: cols)
        defer { act.deallocate() }
        for i in 0..<cols { act.f32[i] = Float(Int(rng.next() % 2001) - 1000) / 250 }
        act.quantizeQ8_0()
        act.quantizeQ8_K()
        row.withUnsafeBytes { raw in
            let w = WeightMatrix(name: "t", type: type, data: raw.baseAddress!, rows: 1, cols: cols)
            var deq = [Float](repeating: 0, count: cols)
            deq.withUnsafeMutableBufferPointer { w.dequantizeRow(0, into: $0.baseAddress!) }
            var reference: Double = 0
            for i in 0..<cols {
                let a: Float
                switch w.activationKind {
                case .q8_0: a = Float(act.q8[i]) * act.d8[i / 32]
                case .q8_K: a = Float(act.qk[i]) * act.dk[i / 256]
                case .f32: a = act.f32[i]
                }
                reference += Double(deq[i]) * Double(a)
            }
            let got = Double(w.dot(row: 0, act))
            let scale = max(1, abs(reference))
            #expect(abs(got - reference) / scale < 1e-4, "\(type): kernel \(got) vs reference \(reference)")
        }
    }

    @Test func activationQuantizationIsClose() {
        var rng = Xoshiro256(seed: 3)
        let act = ActivationBuffer(n: 512)
        defer { act.deallocate() }
        for i in 0..<512 { act.f32[i] = Float(Int(rng.next() % 20001) - 10000) / 1000 }
        act.quantizeQ8_0()
        act.quantizeQ8_K()
        for i in 0..<512 {
            #expect(abs(Float(act.q8[i]) * act.d8[i / 32] - act.f32[i]) <= act.d8[i / 32] * 0.52 + 1e-3)
            #expect(abs(Float(act.qk[i]) * act.dk[i / 256] - act.f32[i]) <= abs(act.dk[i / 256]) * 0.51 + 1e-6)
        }
        for g in 0..<32 {
            let s = (0..<16).reduce(Int32(0)) { $0 + Int32(act.qk[g * 16 + $1]) }
            #expect(act.bsums[g] == s)
        }
    }

    @Test func samplerSelection() {
        let logits: [Float] = [0.1, 3, -1, 3, 2.5, 0]
        #expect(Sampler.argmax(logits) == 1)
        let top = Sampler.topK(logits, 3)
        #expect(top.map(\.0) == [1, 3, 4])
        var s1 = Sampler(SamplingParameters(temperature: 0.8, topK: 3, topP: 1, seed: 42))
        var s2 = Sampler(SamplingParameters(temperature: 0.8, topK: 3, topP: 1, seed: 42))
        let a = (0..<50).map { _ in s1.sample(logits) }
        let b = (0..<50).map { _ in s2.sample(logits) }
        #expect(a == b)
        #expect(Set(a).isSubset(of: [1, 3, 4]))
        var nucleus = Sampler(SamplingParameters(temperature: 1, topK: 0, topP: 0.01, seed: 1))
        #expect((0..<20).allSatisfy { _ in nucleus.sample(logits) == 1 })
    }
}

/// The matrix product used by batched decoding and prefill (activations in eights, fours or
/// pairs, any remainder) must give exactly what one-at-a-time dot products give: batching
/// may not change a sequence's tokens.
@Suite struct BatchedKernelTests {
    @Test(arguments: [GGMLType.q8_0, .q5_0, .q4_K, .q6_K])
    func matrixProductEqualsSingleDots(_ type: GGMLType) {
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 11)
        let rows = 5
        for cols in [256, 512, 1280] where cols % type.blockSize == 0 {
            let matrix = (0..<rows).flatMap { _ in KernelTests.randomRow(type, cols: cols, rng: &rng) }
            let acts = (0..<9).map { _ in ActivationBuffer(n: cols) }
            defer { for a in acts { a.deallocate() } }
            for a in acts {
                for i in 0..<cols { a.f32[i] = Float(Int(rng.next() % 2001) - 1000) / 250 }
                a.quantizeQ8_0()
                a.quantizeQ8_K()
            }
            matrix.withUnsafeBytes { raw in
                let w = WeightMatrix(name: "t", type: type, data: raw.baseAddress!, rows: rows, cols: cols)
                acts.withUnsafeBufferPointer { ap in
                    for count in [1, 2, 3, 4, 5, 8, 9] {
                        var out = [Float](repeating: .nan, count: count * rows)
                        out.withUnsafeMutableBufferPointer {
                            w.multiply(rows: 0..<rows, ap.baseAddress!, count: count, into: $0.baseAddress!, stride: rows)
                        }
                        for t in 0..<count {
                            for r in 0..<rows {
                                #expect(out[t * rows + r] == w.dot(row: r, acts[t]), "\(type) cols \(cols) count \(count) row \(r) sequence \(t)")
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Both batched Q8_0/Q5_0 paths — AVX2 (any x86-64 this engine runs on) and AVX-512 + VNNI
/// (when this CPU has it) — give exactly the one-at-a-time dot products, for every remainder
/// of pairs, fours and eights.
@Suite struct BatchedPathTests {
    #if arch(x86_64)
    @Test(arguments: [GGMLType.q8_0, .q5_0])
    func avx2AndAVX512PathsEqualSingleDots(_ type: GGMLType) {
        var rng = Xoshiro256(seed: UInt64(type.rawValue) + 29)
        let rows = 3
        let cols = 640
        let matrix = (0..<rows).flatMap { _ in KernelTests.randomRow(type, cols: cols, rng: &rng) }
        let acts = (0..<11).map { _ in ActivationBuffer(n: cols) }
        defer { for a in acts { a.deallocate() } }
        for a in acts {
            for i in 0..<cols { a.f32[i] = Float(Int(rng.next() % 2001) - 1000) / 250 }
            a.quantizeQ8_0()
        }
        matrix.withUnsafeBytes { raw in
            let w = WeightMatrix(name: "t", type: type, data: raw.baseAddress!, rows: rows, cols: cols)
            acts.withUnsafeBufferPointer { ap in
                for count in 2...11 {
                    var paths: [(String, [Float])] = [("AVX2", Self.product(type, avx512: false, w, ap.baseAddress!, count: count))]
                    if AVX512Support.available {
                        paths.append(("AVX-512", Self.product(type, avx512: true, w, ap.baseAddress!, count: count)))
                    }
                    for (name, out) in paths {
                        for t in 0..<count {
                            for r in 0..<rows {
                                #expect(out[t * rows + r] == w.dot(row: r, acts[t]), "\(name) \(type) count \(count) row \(r) activation \(t)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every row of `w` against `a[0..<count]` through one batched path, as `out[t * rows + r]`.
    static func product(_ type: GGMLType, avx512: Bool, _ w: WeightMatrix, _ a: UnsafePointer<ActivationBuffer>, count: Int) -> [Float] {
        let format: any Q8FamilyBlock.Type = type == .q5_0 ? Q5_0Block.self : Q8_0Block.self
        func run<B: Q8FamilyBlock>(_ block: B.Type, _ out: UnsafeMutablePointer<Float>) {
            if avx512 {
                q8FamilyRowsAVX512(B.self, w.data, rowBytes: w.rowBytes, rows: 0..<w.rows, a, count: count, nb: w.cols / 32, out, stride: w.rows)
            } else {
                q8FamilyRowsAVX2(B.self, w.data, rowBytes: w.rowBytes, rows: 0..<w.rows, a, count: count, nb: w.cols / 32, out, stride: w.rows)
            }
        }
        var out = [Float](repeating: .nan, count: count * w.rows)
        out.withUnsafeMutableBufferPointer { run(format, $0.baseAddress!) }
        return out
    }
    #endif
}
