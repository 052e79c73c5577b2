#if arch(x86_64)
import _Builtin_intrinsics.intel

/// AVX2 block dot products for Q8_0, Q5_0 (× Q8_0 activations), Q4_K and Q6_K (× Q8_K), with
/// the integer part as ggml's AVX2 kernels do it: 32 int8 products at a time with `vpmaddubsw`
/// (|w| × sign-adjusted activation, or unsigned nibbles × activation) and `vpmaddwd`, giving
/// exact int32 sums per block (per sub-block scale for the K formats).
///
/// The float side deliberately repeats the portable kernels' scalar formula in the same order
/// (`sum += d_w · d_a · Float(sumi)`, block after block), so results are bit-identical to the
/// portable kernels and the golden tests' exact greedy continuations hold. Keeping per-block
/// products in eight float lanes, as ggml does, raised the largest logit difference from
/// llama.cpp (1.51 → 1.68) and flipped three near-tied greedy tokens of the exact-match prompts.
/// To keep the speed anyway, Q8_0/Q5_0 reduce four blocks' int32 lanes together (`vphaddd`)
/// and form the four float products in one vector before the four ordered scalar additions.
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
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0)
    var bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(Int32(bitPattern: x32)), shuf)
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe))
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

/// Q4_K × Q8_K (as ggml's AVX2 `ggml_vec_dot_q4_K_q8_K`): per 64-value chunk, low and high
/// nibbles times 32 activations each with `vpmaddubsw`, weighted by the 6-bit sub-block scale
/// with `vpmaddwd`; the mins against the activation block sums in scalar code.
@inline(__always)
func dotQ4_K_AVX2(_ w: UnsafeRawPointer, _ qa: UnsafePointer<Int8>, _ da: UnsafePointer<Float>,
                  _ bsums: UnsafePointer<Int32>, _ nb: Int) -> Float {
    var sum: Float = 0
    let m4 = _mm256_set1_epi8(0x0F)
    var blk = w
    var y = UnsafeRawPointer(qa)
    var b = 0
    while b < nb {
        let sc = (blk + 4).assumingMemoryBound(to: UInt8.self)
        let q4 = blk + 16
        let bs = bsums + b &* 16
        var sumi = _mm256_setzero_si256()
        var summ: Int32 = 0
        for c in 0..<4 {
            let (sc0, mn0) = scaleMinK4AVX(2 * c, sc)
            let (sc1, mn1) = scaleMinK4AVX(2 * c + 1, sc)
            let bits = q4.loadUnaligned(fromByteOffset: c * 32, as: __m256i.self)
            let lo = _mm256_and_si256(bits, m4)
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4)
            let ylo = y.loadUnaligned(fromByteOffset: c * 64, as: __m256i.self)
            let yhi = y.loadUnaligned(fromByteOffset: c * 64 + 32, as: __m256i.self)
            let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, ylo), _mm256_set1_epi16(Int16(sc0)))
            let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, yhi), _mm256_set1_epi16(Int16(sc1)))
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(plo, phi))
            summ &+= Int32(mn0) &* (bs[4 * c] &+ bs[4 * c + 1]) &+ Int32(mn1) &* (bs[4 * c + 2] &+ bs[4 * c + 3])
        }
        let d = da[b]
        sum += d * f16(blk) * Float(hsumI32(sumi)) - d * f16(blk + 2) * Float(summ)
        blk += 144
        y += 256
        b &+= 1
    }
    return sum
}

@inline(__always)
private func scaleMinK4AVX(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
    if j < 4 {
        return (q[j] & 63, q[j + 4] & 63)
    }
    return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
}

/// Q6_K × Q8_K (as ggml's AVX2 `ggml_vec_dot_q6_K_q8_K`): 6-bit values rebuilt 32 at a time,
/// the −32 offset subtracted as 32·Σy (`vpmaddubsw` of 32s), sub-block scales (one per 16
/// values, so one per 128-bit lane) applied with `vpmaddwd`.
@inline(__always)
func dotQ6_K_AVX2(_ w: UnsafeRawPointer, _ qa: UnsafePointer<Int8>, _ da: UnsafePointer<Float>, _ nb: Int) -> Float {
    var sum: Float = 0
    let m4 = _mm256_set1_epi8(0x0F)
    let m2 = _mm256_set1_epi8(0x30)
    let m32 = _mm256_set1_epi8(32)
    var blk = w
    var y = UnsafeRawPointer(qa)
    var b = 0
    while b < nb {
        var sumi = _mm256_setzero_si256()
        for half in 0..<2 {
            let ql = blk + half * 64
            let qh = (blk + 128 + half * 32).loadUnaligned(as: __m256i.self)
            let sc = (blk + 192 + half * 8).assumingMemoryBound(to: Int8.self)
            let yh = y + half * 128
            let ql0 = ql.loadUnaligned(as: __m256i.self)
            let ql1 = ql.loadUnaligned(fromByteOffset: 32, as: __m256i.self)
            let q1 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2))
            let q2 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2))
            let q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2))
            let q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2))
            @inline(__always) func term(_ q: __m256i, _ k: Int) -> __m256i {
                let yv = yh.loadUnaligned(fromByteOffset: k * 32, as: __m256i.self)
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, yv), _mm256_maddubs_epi16(m32, yv))
                let scv = _mm256_set_m128i(_mm_set1_epi16(Int16(sc[2 * k + 1])), _mm_set1_epi16(Int16(sc[2 * k])))
                return _mm256_madd_epi16(p, scv)
            }
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(_mm256_add_epi32(term(q1, 0), term(q2, 1)),
                                                           _mm256_add_epi32(term(q3, 2), term(q4, 3))))
        }
        sum += da[b] * f16(blk + 208) * Float(hsumI32(sumi))
        blk += 210
        y += 256
        b &+= 1
    }
    return sum
}
/// The sums of the eight int32 lanes of each of four vectors.
@inline(__always)
func hsumI32x4(_ v0: __m256i, _ v1: __m256i, _ v2: __m256i, _ v3: __m256i) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3))
    return _mm_add_epi32(h.lowHalf, h.highHalf)
}

/// Adds `dw[k] · da[k] · Float(si[k])` for k = 0…3 to `sum` in that order: the same float
/// operations as four steps of the portable kernels' loop, the products computed in one vector.
@inline(__always)
func accumulate4(_ sum: inout Float, _ dw: SIMD4<Float>, _ da: UnsafePointer<Float>, _ si: __m128i) -> Void {
    let da4 = UnsafeRawPointer(da).loadUnaligned(as: SIMD4<Float>.self)
    let p = dw * da4 * _mm_cvtepi32_ps(si)
    sum += p[0]
    sum += p[1]
    sum += p[2]
    sum += p[3]
}

/// Q8_0 or Q5_0 row (nb blocks) against `count` (1…4) activations, four blocks at a time: the
/// four blocks' weights are unpacked once, the 4 × 8 int32 lanes reduced with `vphaddd`.
@inline(__always)
func dotQ8_0FamilyN_AVX2(_ w: UnsafeRawPointer, q5: Bool, _ a: UnsafePointer<ActivationBuffer>, count: Int,
                         _ nb: Int, _ out: UnsafeMutablePointer<Float>) {
    var sums = SIMD4<Float>()
    let stride = q5 ? 22 : 34
    let ones = _mm256_set1_epi16(1)
    var blk = w
    var b = 0
    while b + 4 <= nb {
        @inline(__always) func load(_ k: Int) -> __m256i {
            let p = blk + k * stride
            return q5 ? unpackQ5_0(p) : (p + 2).loadUnaligned(as: __m256i.self)
        }
        let x0 = load(0), x1 = load(1), x2 = load(2), x3 = load(3)
        let a0 = _mm256_sign_epi8(x0, x0), a1 = _mm256_sign_epi8(x1, x1)
        let a2 = _mm256_sign_epi8(x2, x2), a3 = _mm256_sign_epi8(x3, x3)
        let dw = SIMD4<Float>(f16(blk), f16(blk + stride), f16(blk + 2 * stride), f16(blk + 3 * stride))
        let off = b &* 32
        for t in 0..<count {
            let y = UnsafeRawPointer(a[t].q8) + off
            @inline(__always) func m(_ ax: __m256i, _ x: __m256i, _ k: Int) -> __m256i {
                let qy = y.loadUnaligned(fromByteOffset: k * 32, as: __m256i.self)
                return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, x)), ones)
            }
            let si = hsumI32x4(m(a0, x0, 0), m(a1, x1, 1), m(a2, x2, 2), m(a3, x3, 3))
            accumulate4(&sums[t], dw, a[t].d8 + b, si)
        }
        blk += 4 * stride
        b &+= 4
    }
    while b < nb {
        let qx = q5 ? unpackQ5_0(blk) : (blk + 2).loadUnaligned(as: __m256i.self)
        let dw = f16(blk)
        for t in 0..<count {
            let qy = UnsafeRawPointer(a[t].q8).loadUnaligned(fromByteOffset: b &* 32, as: __m256i.self)
            sums[t] += dw * a[t].d8[b] * Float(hsumI32(mulSumI8Pairs(qx, qy)))
        }
        blk += stride
        b &+= 1
    }
    for t in 0..<count { out[t] = sums[t] }
}

func dotQ8_0xN_AVX2(_ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int, _ out: UnsafeMutablePointer<Float>) {
    dotQ8_0FamilyN_AVX2(w, q5: false, a, count: count, nb, out)
}

func dotQ5_0xN_AVX2(_ w: UnsafeRawPointer, _ a: UnsafePointer<ActivationBuffer>, count: Int, _ nb: Int, _ out: UnsafeMutablePointer<Float>) {
    dotQ8_0FamilyN_AVX2(w, q5: true, a, count: count, nb, out)
}
#endif
