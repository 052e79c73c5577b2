#if arch(x86_64)
import _Builtin_intrinsics.intel
import LocalInferenceAVX512

/// AVX2 block dot products for Q8_0, Q5_0 (× Q8_0 activations), Q4_K and Q6_K (× Q8_K), with
/// the integer part as ggml's AVX2 kernels do it: 32 int8 products at a time with `vpmaddubsw`
/// (|w| × sign-adjusted activation, or unsigned nibbles × activation) and `vpmaddwd`, giving
/// exact int32 sums per block (per sub-block scale for the K formats).
///
/// The float side of Q8_0/Q5_0 (nearly all the bytes of the Gemma 3 file) is ggml's: per
/// block a fused multiply-add into eight float lanes, `hsum_float_8` per row. Matching it
/// brought our logits closer to llama.cpp's (largest difference 1.51 → 0.96) and lets the
/// batched kernels keep their accumulators in registers. Q4_K/Q6_K (one matrix in two per
/// layer, whose llama.cpp path repacks them) keep a per-block scalar formula; making those
/// lane-faithful too changed nothing measurable.
///
/// No run-time dispatch beyond `#if arch(x86_64)`: the module is compiled with
/// `-target-cpu haswell` on x86_64 (Package.swift's `localInferenceSettings`), so LLVM already
/// emits AVX2/FMA/F16C in every kernel of the module, portable ones included, and the module
/// requires a Haswell-class CPU (2013 or later) either way. Other architectures use the
/// portable kernels in Kernels.swift.

/// fp16 → fp32 (F16C `vcvtph2ps`); a local copy because calls across files of this module
/// are not inlined in builds without whole-module optimization.
@inline(__always)
private func f16(_ p: UnsafeRawPointer) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
}

/// Sum of the 32 int8 products x·y as 8 int32 lanes (ggml's `mul_sum_i8_pairs`, before the
/// conversion to floats).
@inline(__always)
func mulSumI8Pairs(_ x: __m256i, _ y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x)
    let sy = _mm256_sign_epi8(y, x)
    let dot = _mm256_maddubs_epi16(ax, sy)
    return _mm256_madd_epi16(dot, _mm256_set1_epi16(1))
}

/// Sum of the eight int32 lanes.
@inline(__always)
func hsumI32(_ v: __m256i) -> Int32 {
    var s = _mm_add_epi32(v.lowHalf, v.highHalf)
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s))
    s = _mm_add_epi32(s, _mm_srli_epi64(s, 32))
    return _mm_cvtsi128_si32(s)
}

/// The 32 fifth bits of a Q5_0 block as bytes 0xFF (bit set) / 0x00 (ggml's `bytes_from_bits_32`).
@inline(__always)
func bytesFromBits32(_ x32: UInt32) -> __m256i {
    let shuf = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
    var bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: x32)), shuf)
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// The 32 signed 5-bit values of a Q5_0 block (as ggml: low nibbles then high nibbles, with
/// 0xF0 or-ed into the bytes whose fifth bit is clear, i.e. value − 16).
@inline(__always)
func unpackQ5_0(_ blk: UnsafeRawPointer) -> __m256i {
    let qh = blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
    let tmp = (blk + 6).loadUnaligned(as: __m128i.self)
    let nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp), _mm256_set1_epi8(0x0F))
    let hi = _mm256_andnot_si256(bytesFromBits32(qh), _mm256_set1_epi8(-16))
    return _mm256_or_si256(nib, hi)
}

/// One Q4_K row × Q8_K activations `a[0..<count]` (count ≤ 4) into `out[t * stride]`: per
/// 64-value chunk, low and high nibbles times 32 activations each with `vpmaddubsw`, weighted
/// by the 6-bit sub-block scale with `vpmaddwd`; the mins against the activation block sums in
/// scalar code. The scales and nibbles of each block are decoded once for all activations;
/// each activation's float arithmetic is the same whatever `count` is, so batching does not
/// change a sequence's result.
@inline(__always)
func dotQ4_KxN_AVX2(
    _ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    let m4 = _mm256_set1_epi8(0x0F)
    var acc0: Float = 0
    var acc1: Float = 0
    var acc2: Float = 0
    var acc3: Float = 0
    var blk = w
    var b = 0
    while b < nb {
        let sc = (blk + 4).assumingMemoryBound(to: UInt8.self)
        let q4 = blk + 16
        var s0 = _mm256_setzero_si256()
        var s1 = _mm256_setzero_si256()
        var s2 = _mm256_setzero_si256()
        var s3 = _mm256_setzero_si256()
        var m0: Int32 = 0
        var m1: Int32 = 0
        var m2: Int32 = 0
        var m3: Int32 = 0
        for c in 0..<4 {
            let (sc0, mn0) = scaleMinK4AVX(2 * c, sc)
            let (sc1, mn1) = scaleMinK4AVX(2 * c + 1, sc)
            let bits = q4.loadUnaligned(fromByteOffset: c * 32, as: __m256i.self)
            let lo = _mm256_and_si256(bits, m4)
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4)
            let scLo = _mm256_set1_epi16(Int16(sc0))
            let scHi = _mm256_set1_epi16(Int16(sc1))
            @inline(__always) func add(_ sumi: inout __m256i, _ summ: inout Int32, _ t: Int) {
                let y = UnsafeRawPointer(a[t].qk) + b &* 256
                let bs = a[t].bsums + b &* 16
                let ylo = y.loadUnaligned(fromByteOffset: c * 64, as: __m256i.self)
                let yhi = y.loadUnaligned(fromByteOffset: c * 64 + 32, as: __m256i.self)
                let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), scLo)
                let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), scHi)
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(plo, phi))
                summ &+= Int32(mn0) &* (bs[4 * c] &+ bs[4 * c + 1]) &+ Int32(mn1) &* (bs[4 * c + 2] &+ bs[4 * c + 3])
            }
            add(&s0, &m0, 0)
            if count > 1 { add(&s1, &m1, 1) }
            if count > 2 { add(&s2, &m2, 2) }
            if count > 3 { add(&s3, &m3, 3) }
        }
        let dw = f16(blk)
        let dmin = f16(blk + 2)
        @inline(__always) func finish(_ acc: inout Float, _ sumi: __m256i, _ summ: Int32, _ t: Int) {
            let d = a[t].dk[b]
            acc += d * dw * Float(hsumI32(sumi)) - d * dmin * Float(summ)
        }
        finish(&acc0, s0, m0, 0)
        if count > 1 { finish(&acc1, s1, m1, 1) }
        if count > 2 { finish(&acc2, s2, m2, 2) }
        if count > 3 { finish(&acc3, s3, m3, 3) }
        blk += 144
        b &+= 1
    }
    out[0] = acc0
    if count > 1 { out[stride] = acc1 }
    if count > 2 { out[2 &* stride] = acc2 }
    if count > 3 { out[3 &* stride] = acc3 }
}

@inline(__always)
private func scaleMinK4AVX(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
    if j < 4 {
        return (q[j] & 63, q[j + 4] & 63)
    }
    return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
}

/// One Q6_K row × Q8_K activations `a[0..<count]` (count ≤ 4) into `out[t * stride]`, as
/// ggml's AVX2 `ggml_vec_dot_q6_K_q8_K` did it: 6-bit values rebuilt 32 at a time, the −32
/// offset subtracted as 32·Σy (`vpmaddubsw` of 32s), sub-block scales (one per 16 values, so
/// one per 128-bit lane) applied with `vpmaddwd`. Each block's values and scales are rebuilt
/// once for all activations; each activation's arithmetic is the same whatever `count` is.
@inline(__always)
func dotQ6_KxN_AVX2(
    _ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    var acc0: Float = 0
    var acc1: Float = 0
    var acc2: Float = 0
    var acc3: Float = 0
    let m4 = _mm256_set1_epi8(0x0F)
    let m2 = _mm256_set1_epi8(0x30)
    let m32 = _mm256_set1_epi8(32)
    var blk = w
    var b = 0
    while b < nb {
        var s0 = _mm256_setzero_si256()
        var s1 = _mm256_setzero_si256()
        var s2 = _mm256_setzero_si256()
        var s3 = _mm256_setzero_si256()
        for half in 0..<2 {
            let ql = blk + half * 64
            let qh = (blk + 128 + half * 32).loadUnaligned(as: __m256i.self)
            let sc = (blk + 192 + half * 8).assumingMemoryBound(to: Int8.self)
            let ql0 = ql.loadUnaligned(as: __m256i.self)
            let ql1 = ql.loadUnaligned(fromByteOffset: 32, as: __m256i.self)
            let q1 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2))
            let q2 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2))
            let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2))
            let q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2))
            @inline(__always) func scales(_ k: Int) -> __m256i {
                _mm256_set_m128i(_mm_set1_epi16(Int16(sc[2 * k + 1])), _mm_set1_epi16(Int16(sc[2 * k])))
            }
            let sc0 = scales(0)
            let sc1 = scales(1)
            let sc2 = scales(2)
            let sc3 = scales(3)
            @inline(__always) func add(_ sumi: inout __m256i, _ t: Int) {
                let yh = UnsafeRawPointer(a[t].qk) + b &* 256 + half * 128
                @inline(__always) func term(_ q: __m256i, _ k: Int, _ scv: __m256i) -> __m256i {
                    let yv = yh.loadUnaligned(fromByteOffset: k * 32, as: __m256i.self)
                    let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, yv), _mm256_maddubs_epi16(m32, yv))
                    return _mm256_madd_epi16(p, scv)
                }
                sumi = _mm256_add_epi32(
                    sumi,
                    _mm256_add_epi32(
                        _mm256_add_epi32(term(q1, 0, sc0), term(q2, 1, sc1)),
                        _mm256_add_epi32(term(q3, 2, sc2), term(q4, 3, sc3))))
            }
            add(&s0, 0)
            if count > 1 { add(&s1, 1) }
            if count > 2 { add(&s2, 2) }
            if count > 3 { add(&s3, 3) }
        }
        let dw = f16(blk + 208)
        acc0 += a[0].dk[b] * dw * Float(hsumI32(s0))
        if count > 1 { acc1 += a[1].dk[b] * dw * Float(hsumI32(s1)) }
        if count > 2 { acc2 += a[2].dk[b] * dw * Float(hsumI32(s2)) }
        if count > 3 { acc3 += a[3].dk[b] * dw * Float(hsumI32(s3)) }
        blk += 210
        b &+= 1
    }
    out[0] = acc0
    if count > 1 { out[stride] = acc1 }
    if count > 2 { out[2 &* stride] = acc2 }
    if count > 3 { out[3 &* stride] = acc3 }
}

/// A K-quant row kernel against up to four activations (`dotQ4_KxN_AVX2`, `dotQ6_KxN_AVX2`),
/// as a type so that `kQuantRows` is compiled once per format.
protocol KQuantRow {
    static func dot(
        _ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int,
        _ out: UnsafeMutablePointer<Float>, stride: Int)
}

enum Q4_KRow: KQuantRow {
    @inline(__always) static func dot(
        _ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int,
        _ out: UnsafeMutablePointer<Float>, stride: Int
    ) {
        dotQ4_KxN_AVX2(w, a, count: count, nb, out, stride: stride)
    }
}

enum Q6_KRow: KQuantRow {
    @inline(__always) static func dot(
        _ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int,
        _ out: UnsafeMutablePointer<Float>, stride: Int
    ) {
        dotQ6_KxN_AVX2(w, a, count: count, nb, out, stride: stride)
    }
}

/// Rows `rows` of a K-quant matrix against `a[0..<count]`, four activations at a time (not
/// inlined into its caller, like `q8FamilyRows`).
@inline(never)
func kQuantRows<K: KQuantRow>(
    _ kernel: K.Type, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
    _ a: UnsafePointer<ActivationBuffer>, count: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    for r in rows {
        var t = 0
        while t < count {
            let c = min(4, count - t)
            K.dot(w + r &* rowBytes, a + t, count: c, nb, out + t &* stride + r, stride: stride)
            t += c
        }
    }
}

/// ggml's `hsum_float_8`: the eight lanes summed in its order (high half + low half, then
/// pairs, then the last two), so a row's float result is the one llama.cpp computes.
@inline(__always)
func hsumFloat8(_ x: __m256) -> Float {
    var r = _mm_add_ps(x.highHalf, x.lowHalf)
    r = _mm_add_ps(r, _mm_movehl_ps(r, r))
    r = _mm_add_ss(r, _mm_movehdup_ps(r))
    return _mm_cvtss_f32(r)
}

/// q · k for a query already rounded to fp16 (held as floats) and an fp16 key row, `n` a
/// multiple of 32: ggml's `ggml_vec_dot_f16` as llama.cpp's flash attention runs it with
/// AVX2 (the reference build): four 8-lane fp32 accumulators fed by fused multiply-adds over
/// 32 elements at a time, added pairwise (0+2, 1+3, then 0+1), the halves added, then two
/// `hadd`s. Summing in this order brought our logits closer to llama.cpp's than a plain loop
/// (largest difference 1.2 → 0.96 on the first fixtures).
@inline(__always)
func attentionScore(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float16>, _ n: Int) -> Float {
    var a0 = _mm256_setzero_ps()
    var a1 = _mm256_setzero_ps()
    var a2 = _mm256_setzero_ps()
    var a3 = _mm256_setzero_ps()
    let qr = UnsafeRawPointer(q)
    let kr = UnsafeRawPointer(k)
    var i = 0
    @inline(__always) func term(_ acc: inout __m256, _ e: Int) {
        let qv = qr.loadUnaligned(fromByteOffset: e &* 4, as: __m256.self)
        let kv = _mm256_cvtph_ps(kr.loadUnaligned(fromByteOffset: e &* 2, as: __m128i.self))
        acc = _mm256_fmadd_ps(qv, kv, acc)
    }
    while i &+ 32 <= n {
        term(&a0, i)
        term(&a1, i &+ 8)
        term(&a2, i &+ 16)
        term(&a3, i &+ 24)
        i &+= 32
    }
    a0 = _mm256_add_ps(a0, a2)
    a1 = _mm256_add_ps(a1, a3)
    a0 = _mm256_add_ps(a0, a1)
    let t0 = _mm_add_ps(a0.lowHalf, a0.highHalf)
    let t1 = _mm_hadd_ps(t0, t0)
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1))
}

/// How a Q8_0-family block stores its 32 weights (Q8_0: fp16 scale + 32 int8; Q5_0: fp16
/// scale + 32 high bits + 16 bytes of nibbles). A type parameter rather than a flag, so that
/// each kernel is compiled once per format with no per-block branch.
protocol Q8FamilyBlock {
    static var blockBytes: Int { get }
    /// The 32 signed weights as bytes.
    static func weights(_ block: UnsafeRawPointer) -> __m256i
}

enum Q8_0Block: Q8FamilyBlock {
    static var blockBytes: Int { 34 }
    @inline(__always) static func weights(_ block: UnsafeRawPointer) -> __m256i { (block + 2).loadUnaligned(as: __m256i.self) }
}

enum Q5_0Block: Q8FamilyBlock {
    static var blockBytes: Int { 22 }
    @inline(__always) static func weights(_ block: UnsafeRawPointer) -> __m256i { unpackQ5_0(block) }
}

/// How many activations a tile takes (a type, for the same reason as `Q8FamilyBlock`).
protocol TileWidth { static var count: Int { get } }
enum Width1: TileWidth { static var count: Int { 1 } }
enum Width2: TileWidth { static var count: Int { 2 } }
enum Width3: TileWidth { static var count: Int { 3 } }
enum Width4: TileWidth { static var count: Int { 4 } }
enum Width8: TileWidth { static var count: Int { 8 } }

/// One row of a Q8_0 or Q5_0 matrix against `W.count` activations, into `out[t * stride]`.
///
/// The float arithmetic is ggml's, operation for operation (`ggml_vec_dot_q8_0_q8_0`,
/// `…_q5_0_q8_0` and llamafile's `tinyBLAS_Q0_AVX`, which agree): per block the 8 int32 lanes
/// of `vpmaddubsw`/`vpmaddwd` converted to floats and fused-multiply-added, scaled by
/// `d_w · d_a`, into 8 float lanes; `hsumFloat8` at the end of the row. Each weight block is
/// loaded and unpacked once for all (up to eight) activations, each with its accumulator in
/// a register; eight rather than four cut prompt processing time by ~6% (Q5_0's unpacking
/// shared more widely). Rows are taken one after another so the weights are read as one
/// ascending stream, which the hardware prefetcher follows (interleaving rows measured ~2×
/// slower for single-token decoding).
@inline(__always)
func q8FamilyRow<B: Q8FamilyBlock, W: TileWidth>(
    _ format: B.Type, _ width: W.Type, _ w: UnsafeRawPointer,
    _ a: UnsafePointer<ActivationBuffer>, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    let n = W.count
    let ones = _mm256_set1_epi16(1)
    @inline(__always) func act(_ t: Int) -> (UnsafeRawPointer, UnsafePointer<Float>) {
        t < n ? (UnsafeRawPointer(a[t].q8), UnsafePointer(a[t].d8)) : (UnsafeRawPointer(a[0].q8), UnsafePointer(a[0].d8))
    }
    let (y0, s0) = act(0)
    let (y1, s1) = act(1)
    let (y2, s2) = act(2)
    let (y3, s3) = act(3)
    let (y4, s4) = act(4)
    let (y5, s5) = act(5)
    let (y6, s6) = act(6)
    let (y7, s7) = act(7)
    var c0 = _mm256_setzero_ps()
    var c1 = _mm256_setzero_ps()
    var c2 = _mm256_setzero_ps()
    var c3 = _mm256_setzero_ps()
    var c4 = _mm256_setzero_ps()
    var c5 = _mm256_setzero_ps()
    var c6 = _mm256_setzero_ps()
    var c7 = _mm256_setzero_ps()
    var p = w
    var b = 0
    while b < nb {
        let x = B.weights(p)
        let ax = _mm256_sign_epi8(x, x)
        let dw = f16(p)
        let off = b &* 32
        @inline(__always) func fma(_ acc: inout __m256, _ y: UnsafeRawPointer, _ s: UnsafePointer<Float>) {
            let qy = y.loadUnaligned(fromByteOffset: off, as: __m256i.self)
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, x)), ones)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * s[b]), _mm256_cvtepi32_ps(dot), acc)
        }
        fma(&c0, y0, s0)
        if n > 1 { fma(&c1, y1, s1) }
        if n > 2 { fma(&c2, y2, s2) }
        if n > 3 { fma(&c3, y3, s3) }
        if n > 4 { fma(&c4, y4, s4) }
        if n > 5 { fma(&c5, y5, s5) }
        if n > 6 { fma(&c6, y6, s6) }
        if n > 7 { fma(&c7, y7, s7) }
        p += B.blockBytes
        b &+= 1
    }
    out[0] = hsumFloat8(c0)
    if n > 1 { out[stride] = hsumFloat8(c1) }
    if n > 2 { out[2 &* stride] = hsumFloat8(c2) }
    if n > 3 { out[3 &* stride] = hsumFloat8(c3) }
    if n > 4 { out[4 &* stride] = hsumFloat8(c4) }
    if n > 5 { out[5 &* stride] = hsumFloat8(c5) }
    if n > 6 { out[6 &* stride] = hsumFloat8(c6) }
    if n > 7 { out[7 &* stride] = hsumFloat8(c7) }
}

/// The same product on AVX-512 + VNNI (`LocalInferenceAVX512.q8FamilyPairRows`, bit-identical):
/// the activations are first laid out in pairs, each block's two halves side by side, with
/// their scales repeated eight times, as that kernel loads them.
@inline(__always)
func q8FamilyRowsAVX512<B: Q8FamilyBlock>(
    _ format: B.Type, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
    _ a: UnsafePointer<ActivationBuffer>, count: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    let pairCount = (count + 1) / 2
    let bytes = pairCount * nb * 64
    withUnsafeTemporaryAllocation(byteCount: 2 * bytes, alignment: 64) { buffer in
        guard let base = buffer.baseAddress else { return }
        let pairs = base
        let scales = base + bytes
        for j in 0..<pairCount {
            let first = a[2 * j]
            let second = a[min(2 * j + 1, count - 1)]
            for b in 0..<nb {
                let slot = (j * nb + b) * 64
                (pairs + slot).copyMemory(from: first.q8 + b * 32, byteCount: 32)
                (pairs + slot + 32).copyMemory(from: second.q8 + b * 32, byteCount: 32)
                let s = (scales + slot).assumingMemoryBound(to: Float.self)
                for i in 0..<8 {
                    s[i] = first.d8[b]
                    s[8 + i] = second.d8[b]
                }
            }
        }
        q8FamilyPairRows(
            q5: B.blockBytes == Q5_0Block.blockBytes, w, rowBytes: rowBytes, rows: rows,
            pairs: UnsafeRawPointer(pairs), scales: UnsafeRawPointer(scales), count: count, nb: nb,
            out, stride: stride)
    }
}

/// Rows `rows` of a Q8_0-family matrix against `a[0..<count]`, rows outermost (each row's
/// blocks read from memory once, the activations re-read from cache), on AVX-512 + VNNI when
/// the CPU has it and there are several activations, else on AVX2. Not inlined into its
/// caller: each format's copy gets its own register allocation.
@inline(never)
func q8FamilyRows<B: Q8FamilyBlock>(
    _ format: B.Type, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
    _ a: UnsafePointer<ActivationBuffer>, count: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    if count >= 2 && AVX512Support.available {
        q8FamilyRowsAVX512(B.self, w, rowBytes: rowBytes, rows: rows, a, count: count, nb: nb, out, stride: stride)
    } else {
        q8FamilyRowsAVX2(B.self, w, rowBytes: rowBytes, rows: rows, a, count: count, nb: nb, out, stride: stride)
    }
}

/// `q8FamilyRows` on AVX2: `q8FamilyRow` eight, four, then one to three activations at a time.
@inline(__always)
func q8FamilyRowsAVX2<B: Q8FamilyBlock>(
    _ format: B.Type, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
    _ a: UnsafePointer<ActivationBuffer>, count: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    for r in rows {
        let row = w + r &* rowBytes
        var t = 0
        while t + 8 <= count {
            q8FamilyRow(B.self, Width8.self, row, a + t, nb: nb, out + t &* stride + r, stride: stride)
            t += 8
        }
        if t + 4 <= count {
            q8FamilyRow(B.self, Width4.self, row, a + t, nb: nb, out + t &* stride + r, stride: stride)
            t += 4
        }
        switch count - t {
        case 1: q8FamilyRow(B.self, Width1.self, row, a + t, nb: nb, out + t &* stride + r, stride: stride)
        case 2: q8FamilyRow(B.self, Width2.self, row, a + t, nb: nb, out + t &* stride + r, stride: stride)
        case 3: q8FamilyRow(B.self, Width3.self, row, a + t, nb: nb, out + t &* stride + r, stride: stride)
        default: break
        }
    }
}

#endif
