#if arch(x86_64)
import _Builtin_intrinsics.intel

/// The batched Q8_0/Q5_0 matrix product for CPUs with AVX-512 (F, BW, VL) and VNNI, two
/// activations per 512-bit register.
///
/// This module is compiled for Ice Lake-class CPUs (Package.swift), so nothing in it may run
/// on a CPU without those features: `LocalInference` calls `q8FamilyPairRows` only after
/// checking the CPU's flags (`AVX512Support`), and this module has no other entry point.
///
/// Each 512-bit register holds two activations' lanes side by side (bytes 0–31 and 32–63,
/// int32 and float lanes 0–7 and 8–15), and every operation is lane-wise, so each half
/// computes exactly what the AVX2 kernel (`q8FamilyRow`) computes for its activation: the same
/// int32 lanes (`vpdpbusd` sums the same four products `vpmaddubsw` + `vpmaddwd` do, without
/// saturation since |w|·|a| ≤ 127·127), the same float products `d_w · d_a`, the same fused
/// multiply-adds in the same block order, and `hsum_float_8` per half. Results are bit-identical
/// to the AVX2 kernel, with about a third of the vector instructions per block.
///
/// - Parameters:
///   - pairs: for pair `j` and block `b`, 64 bytes at `(j · nb + b) · 64`: activation `2j`'s
///     32 quantized values, then activation `2j + 1`'s.
///   - scales: for pair `j` and block `b`, 16 floats at `(j · nb + b) · 16`: activation `2j`'s
///     block scale eight times, then activation `2j + 1`'s.
///   - out: row `r`'s result for activation `t` goes to `out[t · stride + r]`; `count` is the
///     number of activations (an odd count's last pair repeats its activation, unwritten).
@inline(never)
public func q8FamilyPairRows(
    q5: Bool, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
    pairs: UnsafeRawPointer, scales: UnsafeRawPointer, count: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    if q5 {
        rowsKernel(Q5_0Weights.self, w, rowBytes: rowBytes, rows: rows, pairs: pairs, scales: scales, count: count, nb: nb, out, stride: stride)
    } else {
        rowsKernel(Q8_0Weights.self, w, rowBytes: rowBytes, rows: rows, pairs: pairs, scales: scales, count: count, nb: nb, out, stride: stride)
    }
}

protocol WeightBlock {
    static var blockBytes: Int { get }
    static func weights(_ block: UnsafeRawPointer) -> __m256i
}

/// Q8_0: an fp16 scale, then 32 int8 weights.
enum Q8_0Weights: WeightBlock {
    static var blockBytes: Int { 34 }
    @inline(__always) static func weights(_ block: UnsafeRawPointer) -> __m256i { (block + 2).loadUnaligned(as: __m256i.self) }
}

/// Q5_0: an fp16 scale, 32 fifth bits, 16 bytes of nibbles; values − 16 as bytes (the same
/// unpacking as `LocalInference`'s `unpackQ5_0`, repeated here because that module's code is
/// compiled for AVX2 and this one's may not be inlined into it).
enum Q5_0Weights: WeightBlock {
    static var blockBytes: Int { 22 }
    @inline(__always) static func weights(_ block: UnsafeRawPointer) -> __m256i {
        let qh = block.loadUnaligned(fromByteOffset: 2, as: UInt32.self).littleEndian
        let tmp = (block + 6).loadUnaligned(as: __m128i.self)
        let nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp), _mm256_set1_epi8(0x0F))
        let shuf = _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0)
        var bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: qh)), shuf)
        bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
        let set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
        return _mm256_or_si256(nib, _mm256_andnot_si256(set, _mm256_set1_epi8(-16)))
    }
}

@inline(__always)
private func hsumFloat8(_ x: SIMD8<Float>) -> Float {
    var r = _mm_add_ps(x.highHalf, x.lowHalf)
    r = _mm_add_ps(r, _mm_movehl_ps(r, r))
    r = _mm_add_ss(r, _mm_movehdup_ps(r))
    return _mm_cvtss_f32(r)
}

@inline(__always)
private func rowsKernel<B: WeightBlock>(
    _ format: B.Type, _ w: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>,
    pairs: UnsafeRawPointer, scales: UnsafeRawPointer, count: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int
) {
    let pairCount = (count + 1) / 2
    for r in rows {
        let row = w + r &* rowBytes
        var j = 0
        while j < pairCount {
            // Up to four pairs (eight activations) per pass over the row's blocks.
            let n = min(4, pairCount - j)
            pairPass(
                B.self, row, pairs: pairs + j &* nb &* 64, scales: scales + j &* nb &* 64, pairs: n, nb: nb,
                out + 2 &* j &* stride + r, stride: stride, last: count - 2 * j)
            j += n
        }
    }
}

@inline(__always)
private func pairPass<B: WeightBlock>(
    _ format: B.Type, _ row: UnsafeRawPointer, pairs y: UnsafeRawPointer,
    scales s: UnsafeRawPointer, pairs n: Int, nb: Int,
    _ out: UnsafeMutablePointer<Float>, stride: Int, last: Int
) {
    var c0 = SIMD16<Float>()
    var c1 = SIMD16<Float>()
    var c2 = SIMD16<Float>()
    var c3 = SIMD16<Float>()
    let zero = _mm512_setzero_si512()
    let pairStride = nb &* 64
    var p = row
    var b = 0
    while b < nb {
        let x = B.weights(p)
        let xx = _mm512_broadcast_i64x4(x)
        let ax = _mm512_abs_epi8(xx)
        let negative = _mm512_movepi8_mask(xx)
        let dw = _mm512_set1_ps(Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))))
        let off = b &* 64
        @inline(__always) func step(_ acc: inout SIMD16<Float>, _ k: Int) {
            let qy = y.loadUnaligned(fromByteOffset: k &* pairStride &+ off, as: __m512i.self)
            let sy = _mm512_mask_sub_epi8(qy, negative, zero, qy)
            let dot = _mm512_dpbusd_epi32(zero, ax, sy)
            let d = _mm512_mul_ps(dw, s.loadUnaligned(fromByteOffset: k &* pairStride &+ off, as: __m512.self))
            acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot), acc)
        }
        step(&c0, 0)
        if n > 1 { step(&c1, 1) }
        if n > 2 { step(&c2, 2) }
        if n > 3 { step(&c3, 3) }
        p += B.blockBytes
        b &+= 1
    }
    @inline(__always) func store(_ acc: SIMD16<Float>, _ k: Int) {
        out[2 &* k &* stride] = hsumFloat8(acc.lowHalf)
        if 2 * k + 1 < last { out[(2 &* k &+ 1) &* stride] = hsumFloat8(acc.highHalf) }
    }
    store(c0, 0)
    if n > 1 { store(c1, 1) }
    if n > 2 { store(c2, 2) }
    if n > 3 { store(c3, 3) }
}
#endif
