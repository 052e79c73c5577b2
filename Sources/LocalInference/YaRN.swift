#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// YaRN RoPE scaling as llama.cpp applies it to DeepSeek-V2/V3 ("deepseek2" GGUFs carry
/// `rope.scaling.type = yarn`), checked against llama.cpp on a synthetic model with YaRN
/// metadata. (Published DeepSeek GGUFs also use a BPE, "gpt2", tokenizer, which this engine
/// does not implement yet: loading one stops at the tokenizer with a clear error.)
///
/// Why this mirrors llama.cpp step by step rather than the YaRN paper or Hugging Face: the
/// engine is checked against llama.cpp, and llama.cpp folds the magnitude corrections into
/// two places — the cos/sin of the rotation and DeepSeek-2's `kq_scale` — with its own float
/// arithmetic (llama-context.cpp's `yarn_attn_factor`, ggml's `rope_yarn` and
/// `ggml_rope_yarn_corr_dims`, src/models/deepseek2.cpp's mscale). Constants as llama.cpp for
/// deepseek2: beta_fast 32, beta_slow 1, ext_factor 1.
public struct YaRNScaling: Sendable, Equatable {
    public static let betaFast: Float = 32
    public static let betaSlow: Float = 1

    /// `rope.scaling.factor`: how much the trained context was stretched.
    public let factor: Float
    /// `rope.scaling.original_context_length` (the context length when absent).
    public let originalContextLength: Int
    /// llama.cpp's `rope_yarn_log_mul`: `rope.scaling.yarn_log_multiplier` / 0.1 (the
    /// converter stores 0.1 × mscale_all_dim), 0 when absent.
    public let logMultiplier: Float
    /// `rope.scaling.attn_factor` (1 when absent).
    public let attentionFactor: Float
    /// ggml's `freq_scale` (1 / factor): the interpolated frequencies' scale.
    public let frequencyScale: Float
    /// Per rotated pair i: how much of the unscaled ("extrapolated") angle is kept, ggml's
    /// ramp between the correction dimensions times ext_factor 1 (1: high frequencies, kept;
    /// 0: low frequencies, fully interpolated).
    public let extrapolationMix: [Float]
    /// Multiplies cos and sin of every rotation (ggml's mscale inside `rope_yarn`).
    public let rotationScale: Float
    /// DeepSeek-2's mscale: the attention scale is multiplied by its square.
    public let attentionMScale: Float

    /// - Parameter logMultiplierMetadata: the GGUF's `yarn_log_multiplier` as stored (0 if absent).
    public init(
        factor: Float, originalContextLength: Int, ropeDimensions: Int, ropeBase: Float,
        logMultiplierMetadata: Float, attentionFactor: Float
    ) {
        self.factor = factor
        self.originalContextLength = originalContextLength
        self.attentionFactor = attentionFactor
        let freqScale = 1 / factor  // hparams.rope_freq_scale_train
        frequencyScale = freqScale
        let logMul = logMultiplierMetadata / 0.1  // [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]
        logMultiplier = logMul

        // llama_context: cparams.yarn_attn_factor for ext_factor != 0.
        func mscale(_ scale: Float, _ m: Float) -> Float { scale <= 1 ? 1 : 0.1 * m * logf(scale) + 1 }
        let f = 1 / freqScale
        var attnFactor: Float
        if logMul != 0 {
            // For deepseek2 llama.cpp takes mscale = mscale_all_dims, so this ratio is 1 (up to
            // rounding): the magnitude correction moves into attentionMScale below.
            attnFactor = mscale(f, logMul) / mscale(f, logMul)
        } else {
            attnFactor = mscale(f, 1)
        }
        attnFactor *= 1 / (1 + 0.1 * logf(f))
        attnFactor *= attentionFactor

        // ggml rope_yarn: mscale *= 1 + 0.1 ln(1 / freq_scale) when ext_factor != 0.
        let ropeCorrection = 1 + 0.1 * logf(1 / freqScale)
        rotationScale = attnFactor * ropeCorrection
        // llm_build_deepseek2: mscale = attn_factor_org · (1 + 0.1 · log_mul · ln(1 / freq_scale)).
        attentionMScale = attnFactor * ropeCorrection * (1 + 0.1 * logMul * logf(1 / freqScale))

        // ggml_rope_yarn_corr_dims (with (float)M_PI, not Swift's rounded-down Float.pi).
        let n = Float(ropeDimensions)
        let pi = Float(Double.pi)
        func correctionDim(_ rotations: Float) -> Float {
            n * logf(Float(originalContextLength) / (rotations * 2 * pi)) / (2 * logf(ropeBase))
        }
        let low = max(0, floorf(correctionDim(Self.betaFast)))
        let high = min(n - 1, ceilf(correctionDim(Self.betaSlow)))
        extrapolationMix = (0..<(ropeDimensions / 2)).map { i in
            let y = (Float(i) - low) / max(0.001, high - low)
            return 1 - min(1, max(0, y))
        }
    }

    /// NORM-style RoPE (pairs 2i, 2i+1) of `n` values at `pos` with YaRN's angles and
    /// magnitude, as ggml's `ggml_rope_cache_init` + `rotate_pairs`.
    @inline(__always)
    func rotate(_ xp: UnsafeMutablePointer<Float>, _ n: Int, _ pos: Int, base: Float) {
        let thetaScale = powf(base, -2 / Float(n))
        var thetaExtrap = Float(pos)
        for i in 0..<(n / 2) {
            let mix = extrapolationMix[i]
            let theta = frequencyScale * thetaExtrap * (1 - mix) + thetaExtrap * mix
            let c = cosf(theta) * rotationScale
            let s = sinf(theta) * rotationScale
            let x0 = xp[2 * i]
            let x1 = xp[2 * i + 1]
            xp[2 * i] = x0 * c - x1 * s
            xp[2 * i + 1] = x0 * s + x1 * c
            thetaExtrap *= thetaScale
        }
    }
}
