/// Dot-product kernels between one weight row (in its ggml block format, read in place from
/// the mapping) and one activation vector quantized the way llama.cpp quantizes it for that
/// weight type (Q8_0 blocks for Q8_0/Q5_0, Q8_K blocks for Q4_K/Q6_K, plain floats otherwise).
///
/// The inner loops are written as plain fixed-length loops over pointers with wrapping integer
/// arithmetic: LLVM vectorizes them to widening multiply-adds (vpmovsxbw + vpmaddwd, or
/// vpdpwssd), whereas Swift's generic SIMD conversions lower to per-lane scalar code today.

@inline(__always)
func halfToFloat(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always)
func bf16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Rounds to nearest, ties to even: the rounding of llama.cpp's `nearest_int` and of
/// `_mm256_round_ps(…, _MM_ROUND_NEAREST)` used by its activation quantizers.
@inline(__always)
func roundEven(_ x: Float) -> Int32 {
    Int32(x.rounded(.toNearestOrEven))
}

/// One activation vector in every form a kernel may want. Buffers are owned and reused
/// across calls; `quantize` fills the forms that `needs` asks for.
struct ActivationBuffer {
    let n: Int
    let f32: UnsafeMutablePointer<Float>
    /// Q8_0: n int8 values, one Float scale (already rounded through fp16) per 32.
    let q8: UnsafeMutablePointer<Int8>
    let d8: UnsafeMutablePointer<Float>
    /// Q8_K: n int8 values, one Float scale per 256, one block sum per 16.
    let qk: UnsafeMutablePointer<Int8>
    let dk: UnsafeMutablePointer<Float>
    let bsums: UnsafeMutablePointer<Int32>

    init(n: Int) {
        self.n = n
        f32 = .allocate(capacity: n)
        q8 = .allocate(capacity: n)
        d8 = .allocate(capacity: max(1, n / 32))
        qk = .allocate(capacity: n)
        dk = .allocate(capacity: max(1, n / 256))
        bsums = .allocate(capacity: max(1, n / 16))
    }

    func deallocate() {
        f32.deallocate()
        q8.deallocate()
        d8.deallocate()
        qk.deallocate()
        dk.deallocate()
        bsums.deallocate()
    }

    /// Quantizes `f32` into every form the kernels of `kinds` consume.
    func quantize<Kinds: Sequence<ActivationKind>>(for kinds: Kinds) {
        var q8_0 = false
        var q8_K = false
        for kind in kinds {
            if kind == .q8_0 { q8_0 = true }
            if kind == .q8_K { q8_K = true }
        }
        if q8_0 { quantizeQ8_0() }
        if q8_K { quantizeQ8_K() }
    }

    /// Quantizes `f32` into the Q8_0 form (as ggml's AVX2 `quantize_row_q8_0`).
    func quantizeQ8_0() {
        for b in 0..<(n / 32) {
            let x = f32 + b * 32
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(x[j])) }
            let d = amax / 127
            let id: Float = amax != 0 ? 127 / amax : 0
            d8[b] = Float(Float16(d))
            let q = q8 + b * 32
            for j in 0..<32 { q[j] = Int8(truncatingIfNeeded: roundEven(x[j] * id)) }
        }
    }

    /// Quantizes `f32` into the Q8_K form (as ggml's `quantize_row_q8_K_ref`).
    func quantizeQ8_K() {
        for b in 0..<(n / 256) {
            let x = f32 + b * 256
            var amax: Float = 0
            var vmax: Float = 0
            for j in 0..<256 {
                let a = abs(x[j])
                if a > amax {
                    amax = a
                    vmax = x[j]
                }
            }
            let q = qk + b * 256
            if amax == 0 {
                dk[b] = 0
                for j in 0..<256 { q[j] = 0 }
                for j in 0..<16 { bsums[b * 16 + j] = 0 }
                continue
            }
            let iscale = -127 / vmax
            for j in 0..<256 { q[j] = Int8(truncatingIfNeeded: min(127, roundEven(iscale * x[j]))) }
            for g in 0..<16 {
                var s: Int32 = 0
                for j in 0..<16 { s &+= Int32(q[g * 16 + j]) }
                bsums[b * 16 + g] = s
            }
            dk[b] = 1 / iscale
        }
    }
}

/// A 2-D weight matrix in place in the mapping: `rows` rows of `cols` elements each.
///
/// `@unchecked Sendable`: `data` points into an immutable read-only mapping that the owning
/// model keeps alive (see `MappedFile`), so concurrent reads from kernel threads are safe.
public struct WeightMatrix: @unchecked Sendable {
    public let name: String
    public let type: GGMLType
    let data: UnsafeRawPointer
    public let rows: Int
    public let cols: Int
    let rowBytes: Int

    init(name: String, type: GGMLType, data: UnsafeRawPointer, rows: Int, cols: Int) {
        self.name = name
        self.type = type
        self.data = data
        self.rows = rows
        self.cols = cols
        self.rowBytes = cols / type.blockSize * type.bytesPerBlock
    }

    /// Which activation form the kernel for this weight type consumes.
    var activationKind: ActivationKind {
        switch type {
        case .q8_0, .q5_0: return .q8_0
        case .q4_K, .q6_K: return .q8_K
        default: return .f32
        }
    }

    /// Dot product of row `r` with activation `a` (already quantized as `activationKind`).
    @inline(__always)
    func dot(row r: Int, _ a: ActivationBuffer) -> Float {
        let w = data + r * rowBytes
        switch type {
        case .q8_0: return dotQ8_0(w, a, cols)
        case .q5_0: return dotQ5_0(w, a, cols)
        case .q4_K: return dotQ4_K(w, a, cols)
        case .q6_K: return dotQ6_K(w, a, cols)
        case .f32: return dotF32(w, a.f32, cols)
        case .f16: return dotF16(w, a.f32, cols)
        case .bf16: return dotBF16(w, a.f32, cols)
        default: return 0  // rejected when the model is loaded
        }
    }

    /// `out[t * stride + r] = row r · a[t]` for every row in `rows` and `t < count`: the one
    /// matrix product every forward pass uses (one thread's share of a matrix).
    ///
    /// On x86-64 the quantized formats of the Gemma 3 file (Q8_0, Q5_0, Q4_K, Q6_K) go through
    /// kernels that take one row against several activations at once (`q8FamilyRows`: eight,
    /// or pairs on AVX-512; `kQuantRows`: four), rows outermost, so each weight block is read
    /// from memory once per batch and the activations from cache; other formats use `dot`.
    func multiply(
        rows: Range<Int>, _ a: UnsafePointer<ActivationBuffer>, count: Int,
        into out: UnsafeMutablePointer<Float>, stride: Int
    ) {
        #if arch(x86_64)
        switch type {
        case .q8_0:
            q8FamilyRows(Q8_0Block.self, data, rowBytes: rowBytes, rows: rows, a, count: count, nb: cols / 32, out, stride: stride)
            return
        case .q5_0:
            q8FamilyRows(Q5_0Block.self, data, rowBytes: rowBytes, rows: rows, a, count: count, nb: cols / 32, out, stride: stride)
            return
        case .q4_K:
            kQuantRows(Q4_KRow.self, data, rowBytes: rowBytes, rows: rows, a, count: count, nb: cols / 256, out, stride: stride)
            return
        case .q6_K:
            kQuantRows(Q6_KRow.self, data, rowBytes: rowBytes, rows: rows, a, count: count, nb: cols / 256, out, stride: stride)
            return
        default: break
        }
        #endif
        for r in rows {
            for t in 0..<count { out[t * stride + r] = dot(row: r, a[t]) }
        }
    }

    /// Writes row `r` dequantized to floats (embedding lookups, tests).
    func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        dequantize(type: type, data + r * rowBytes, cols, out)
    }
}

enum ActivationKind { case f32, q8_0, q8_K }

// MARK: dot kernels

@inline(__always)
func dotQ8_0(_ w: UnsafeRawPointer, _ a: ActivationBuffer, _ n: Int) -> Float {
    #if arch(x86_64)
    var r: Float = 0
    withUnsafePointer(to: a) { q8FamilyRow(Q8_0Block.self, Width1.self, w, $0, nb: n / 32, &r, stride: 1) }
    return r
    #else
    var sum: Float = 0
    for b in 0..<(n / 32) {
        let blk = w + b * 34
        let qw = (blk + 2).assumingMemoryBound(to: Int8.self)
        let qa = a.q8 + b * 32
        var s: Int32 = 0
        for j in 0..<32 { s &+= Int32(qw[j]) &* Int32(qa[j]) }
        sum += halfToFloat(blk, 0) * a.d8[b] * Float(s)
    }
    return sum
    #endif
}

@inline(__always)
func dotQ5_0(_ w: UnsafeRawPointer, _ a: ActivationBuffer, _ n: Int) -> Float {
    #if arch(x86_64)
    var r: Float = 0
    withUnsafePointer(to: a) { q8FamilyRow(Q5_0Block.self, Width1.self, w, $0, nb: n / 32, &r, stride: 1) }
    return r
    #else
    var sum: Float = 0
    for b in 0..<(n / 32) {
        let blk = w + b * 22
        let qh = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
        let qs = (blk + 6).assumingMemoryBound(to: UInt8.self)
        let qa = a.q8 + b * 32
        var s: Int32 = 0
        for j in 0..<16 {
            let q = UInt32(qs[j])
            let lo = Int32(bitPattern: (q & 0x0F) | (((qh >> UInt32(j)) << 4) & 0x10)) &- 16
            let hi = Int32(bitPattern: (q >> 4) | ((qh >> UInt32(j + 12)) & 0x10)) &- 16
            s &+= lo &* Int32(qa[j]) &+ hi &* Int32(qa[j + 16])
        }
        sum += halfToFloat(blk, 0) * a.d8[b] * Float(s)
    }
    return sum
    #endif
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K (or Q5_K) block (ggml's get_scale_min_k4).
@inline(__always)
func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
    if j < 4 {
        return (q[j] & 63, q[j + 4] & 63)
    }
    return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
}

@inline(__always)
func dotQ4_K(_ w: UnsafeRawPointer, _ a: ActivationBuffer, _ n: Int) -> Float {
    #if arch(x86_64)
    var r: Float = 0
    withUnsafePointer(to: a) { dotQ4_KxN_AVX2(w, $0, count: 1, n / 256, &r, stride: 1) }
    return r
    #else
    var sum: Float = 0
    for b in 0..<(n / 256) {
        let blk = w + b * 144
        let scales = (blk + 4).assumingMemoryBound(to: UInt8.self)
        let qs = (blk + 16).assumingMemoryBound(to: UInt8.self)
        let qa = a.qk + b * 256
        let bs = a.bsums + b * 16
        var sumi: Int32 = 0
        var summ: Int32 = 0
        for c in 0..<4 {
            let (sc0, m0) = scaleMinK4(2 * c, scales)
            let (sc1, m1) = scaleMinK4(2 * c + 1, scales)
            let q = qs + c * 32
            let y = qa + c * 64
            var s0: Int32 = 0
            var s1: Int32 = 0
            for l in 0..<32 {
                s0 &+= Int32(q[l] & 0x0F) &* Int32(y[l])
                s1 &+= Int32(q[l] >> 4) &* Int32(y[l + 32])
            }
            sumi &+= s0 &* Int32(sc0) &+ s1 &* Int32(sc1)
            summ &+= Int32(m0) &* (bs[4 * c] &+ bs[4 * c + 1]) &+ Int32(m1) &* (bs[4 * c + 2] &+ bs[4 * c + 3])
        }
        let d = a.dk[b]
        sum += d * halfToFloat(blk, 0) * Float(sumi) - d * halfToFloat(blk, 2) * Float(summ)
    }
    return sum
    #endif
}

@inline(__always)
func dotQ6_K(_ w: UnsafeRawPointer, _ a: ActivationBuffer, _ n: Int) -> Float {
    #if arch(x86_64)
    var r: Float = 0
    withUnsafePointer(to: a) { dotQ6_KxN_AVX2(w, $0, count: 1, n / 256, &r, stride: 1) }
    return r
    #else
    var sum: Float = 0
    for b in 0..<(n / 256) {
        let blk = w + b * 210
        let ql0 = blk.assumingMemoryBound(to: UInt8.self)
        let qh0 = (blk + 128).assumingMemoryBound(to: UInt8.self)
        let sc0 = (blk + 192).assumingMemoryBound(to: Int8.self)
        let qa = a.qk + b * 256
        var sumi: Int32 = 0
        for half in 0..<2 {
            let ql = ql0 + half * 64
            let qh = qh0 + half * 32
            let sc = sc0 + half * 8
            let y = qa + half * 128
            for g in 0..<2 {
                // l in 16g..<16g+16 uses scales sc[g], sc[g+2], sc[g+4], sc[g+6]
                var s1: Int32 = 0
                var s2: Int32 = 0
                var s3: Int32 = 0
                var s4: Int32 = 0
                for i in 0..<16 {
                    let l = 16 * g + i
                    let h = Int32(qh[l])
                    let q1 = (Int32(ql[l] & 0x0F) | ((h & 3) << 4)) &- 32
                    let q2 = (Int32(ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) &- 32
                    let q3 = (Int32(ql[l] >> 4) | (((h >> 4) & 3) << 4)) &- 32
                    let q4 = (Int32(ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) &- 32
                    s1 &+= q1 &* Int32(y[l])
                    s2 &+= q2 &* Int32(y[l + 32])
                    s3 &+= q3 &* Int32(y[l + 64])
                    s4 &+= q4 &* Int32(y[l + 96])
                }
                sumi &+= s1 &* Int32(sc[g]) &+ s2 &* Int32(sc[g + 2]) &+ s3 &* Int32(sc[g + 4]) &+ s4 &* Int32(sc[g + 6])
            }
        }
        sum += a.dk[b] * halfToFloat(blk, 208) * Float(sumi)
    }
    return sum
    #endif
}

@inline(__always)
func dotF32(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let p = w.assumingMemoryBound(to: Float.self)
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        var t = SIMD8<Float>()
        for j in 0..<8 { t[j] = p[i + j] * x[i + j] }
        acc += t
        i += 8
    }
    var s = acc.sum()
    while i < n {
        s += p[i] * x[i]
        i += 1
    }
    return s
}

@inline(__always)
func dotF16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let p = w.assumingMemoryBound(to: Float16.self)
    var s: Float = 0
    for i in 0..<n { s += Float(p[i]) * x[i] }
    return s
}

@inline(__always)
func dotBF16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
    let p = w.assumingMemoryBound(to: UInt16.self)
    var s: Float = 0
    for i in 0..<n { s += bf16ToFloat(p[i]) * x[i] }
    return s
}

// MARK: dequantization (reference formulas from ggml-quants.c)

func dequantize(type: GGMLType, _ w: UnsafeRawPointer, _ n: Int, _ y: UnsafeMutablePointer<Float>) {
    switch type {
    case .f32:
        y.update(from: w.assumingMemoryBound(to: Float.self), count: n)
    case .f16:
        let p = w.assumingMemoryBound(to: Float16.self)
        for i in 0..<n { y[i] = Float(p[i]) }
    case .bf16:
        let p = w.assumingMemoryBound(to: UInt16.self)
        for i in 0..<n { y[i] = bf16ToFloat(p[i]) }
    case .q8_0:
        for b in 0..<(n / 32) {
            let blk = w + b * 34
            let d = halfToFloat(blk, 0)
            let q = (blk + 2).assumingMemoryBound(to: Int8.self)
            for j in 0..<32 { y[b * 32 + j] = d * Float(q[j]) }
        }
    case .q5_0:
        for b in 0..<(n / 32) {
            let blk = w + b * 22
            let d = halfToFloat(blk, 0)
            let qh = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
            let qs = (blk + 6).assumingMemoryBound(to: UInt8.self)
            for j in 0..<16 {
                let q = UInt32(qs[j])
                let x0 = Int32((q & 0x0F) | (((qh >> UInt32(j)) << 4) & 0x10)) - 16
                let x1 = Int32((q >> 4) | ((qh >> UInt32(j + 12)) & 0x10)) - 16
                y[b * 32 + j] = Float(x0) * d
                y[b * 32 + j + 16] = Float(x1) * d
            }
        }
    case .q4_K:
        for b in 0..<(n / 256) {
            let blk = w + b * 144
            let d = halfToFloat(blk, 0)
            let dmin = halfToFloat(blk, 2)
            let scales = (blk + 4).assumingMemoryBound(to: UInt8.self)
            let qs = (blk + 16).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 256
            for c in 0..<4 {
                let (sc0, m0) = scaleMinK4(2 * c, scales)
                let (sc1, m1) = scaleMinK4(2 * c + 1, scales)
                let d1 = d * Float(sc0)
                let mm1 = dmin * Float(m0)
                let d2 = d * Float(sc1)
                let mm2 = dmin * Float(m1)
                for l in 0..<32 {
                    out[c * 64 + l] = d1 * Float(qs[c * 32 + l] & 0x0F) - mm1
                    out[c * 64 + 32 + l] = d2 * Float(qs[c * 32 + l] >> 4) - mm2
                }
            }
        }
    case .q6_K:
        for b in 0..<(n / 256) {
            let blk = w + b * 210
            let d = halfToFloat(blk, 208)
            let out = y + b * 256
            for half in 0..<2 {
                let ql = (blk + half * 64).assumingMemoryBound(to: UInt8.self)
                let qh = (blk + 128 + half * 32).assumingMemoryBound(to: UInt8.self)
                let sc = (blk + 192 + half * 8).assumingMemoryBound(to: Int8.self)
                for l in 0..<32 {
                    let i = l / 16
                    let h = Int32(qh[l])
                    let q1 = (Int32(ql[l] & 0x0F) | ((h & 3) << 4)) - 32
                    let q2 = (Int32(ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4)) - 32
                    let q3 = (Int32(ql[l] >> 4) | (((h >> 4) & 3) << 4)) - 32
                    let q4 = (Int32(ql[l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32
                    out[half * 128 + l] = d * Float(sc[i]) * Float(q1)
                    out[half * 128 + l + 32] = d * Float(sc[i + 2]) * Float(q2)
                    out[half * 128 + l + 64] = d * Float(sc[i + 4]) * Float(q3)
                    out[half * 128 + l + 96] = d * Float(sc[i + 6]) * Float(q4)
                }
            }
        }
    default:
        for i in 0..<n { y[i] = 0 }
    }
}
