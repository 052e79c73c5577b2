#!/usr/bin/env python3
"""Writes tiny random-weight DeepSeek-2 ("deepseek2") GGUF files and reference logits.

    python3 -m pip install gguf numpy
    python3 Scripts/make-synthetic-moe.py [OUT_DIR]
    ONLY=deepseek2-v3-yarn-tiny python3 Scripts/make-synthetic-moe.py    # just that model

OUT_DIR defaults to Tests/LocalInferenceTests/Fixtures. ONLY (comma-separated names)
regenerates only those models and merges them into the existing JSON files. Three models,
each a few hundred KB:

  deepseek2-v3-tiny.gguf    DeepSeek-V3 style: q-LoRA (attn_q_a / attn_q_a_norm / attn_q_b),
                            MLA with the split attn_k_b / attn_v_b tensors (key_length_mla),
                            sigmoid gating, selection bias (exp_probs_b), expert groups
                            (4 groups, 2 used), top-3 of 8 experts, normalised weights scaled
                            by 2.5, one shared expert, F16 expert weights.
  deepseek2-lite-tiny.gguf  DeepSeek-V2-Lite style: plain attn_q (q_lora_rank 0), the legacy
                            unsplit attn_kv_b, softmax gating, no bias, no groups, top-2 of 6,
                            unnormalised weights, two shared experts.
  deepseek2-v3-yarn-tiny.gguf  the V3 layout with YaRN RoPE scaling as real DeepSeek-V2/V3
                            files carry it (rope.scaling.type yarn, factor 40, original
                            context 4096, yarn_log_multiplier 0.0707 = 0.1 x mscale_all_dim
                            0.707, context length 163840); also a 48-token case so that the
                            interpolated rope frequencies move the logits.

Both have one leading dense layer. The tokenizer is a toy SentencePiece ("llama") vocabulary:
<unk> <s> </s>, the 256 byte tokens, and a few letters and words.

deepseek2-reference.json holds, for each model and a few token sequences, the logits of every
position computed by the NumPy forward pass below, in float64. That implementation is
independent of the Swift one on purpose: it decompresses MLA into ordinary multi-head
attention (k_nope = W_kb c, v = W_vb c, as in HF's DeepseekV2Attention), whereas the Swift
engine uses the absorbed form that llama.cpp runs (scores against the cached latent). It also
records the greedy continuation and the smallest routing and top-1 margins, so the test can
tell a real mismatch from a near-tie flipped by rounding.

The semantics follow llama.cpp's llm_build_deepseek2 / build_moe_ffn (llama-cpp-python 0.3.36):
RMSNorm everywhere, NORM-style RoPE (adjacent pairs) on the decoupled rope part only,
kq_scale = 1/sqrt(qk_nope + qk_rope), SiLU-gated FFNs, no embedding scale. YaRN follows
llama.cpp too (llama-context.cpp's yarn_attn_factor, ggml's rope_yarn and
ggml_rope_yarn_corr_dims, deepseek2.cpp's mscale: kq_scale = mscale^2/sqrt(qk_nope + qk_rope)),
written out here in float64 from those formulas (see yarn_params).
"""
import json
import os
import sys

import numpy as np
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Tests", "LocalInferenceTests", "Fixtures")

ARCH = "deepseek2"


def vocabulary():
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        scores.append(0.0)
        types.append(6)
    pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += ["\u2581the", "\u2581a", "th", "he", "in", "er", "an", "\u2581t", "\u2581s", "on", "at", "en"]
    for i, p in enumerate(pieces):
        tokens.append(p)
        scores.append(-1.0 - i)
        types.append(1)
    return tokens, scores, types


CONFIGS = {
    "deepseek2-v3-tiny": dict(
        seed=1234, n_embd=64, n_layer=3, n_head=4, n_ff=96, q_lora=48, kv_lora=32,
        qk_nope=16, qk_rope=8, v_dim=16, mla_split=True,
        n_expert=8, n_used=3, n_shared=1, n_ff_exp=32, dense_lead=1,
        gating=2, bias=True, groups=4, groups_used=2, norm_w=True, w_scale=2.5,
        expert_dtype=np.float16, eps=1e-6, rope_base=10000.0,
    ),
    "deepseek2-lite-tiny": dict(
        seed=99, n_embd=64, n_layer=2, n_head=4, n_ff=96, q_lora=0, kv_lora=32,
        qk_nope=16, qk_rope=8, v_dim=16, mla_split=False,
        n_expert=6, n_used=2, n_shared=2, n_ff_exp=32, dense_lead=1,
        gating=1, bias=False, groups=0, groups_used=0, norm_w=False, w_scale=1.0,
        expert_dtype=np.float32, eps=1e-6, rope_base=10000.0,
    ),
}
CONFIGS["deepseek2-v3-yarn-tiny"] = dict(
    CONFIGS["deepseek2-v3-tiny"], seed=4321, ctx=163840,
    yarn=dict(factor=40.0, orig_ctx=4096, log_mul=0.0707),
    extra_sequences=[[1] + [259 + (i * 37) % 39 for i in range(47)]],
    # longer than the others' (45 positions, rope angles up to 44 rad), and with every routing
    # decision at least 5e-3 from a tie: llama.cpp's fp16 rounding flips closer ones
    llama_prompt="in the hut the cat sat on a mat and the ant ate the hat",
)

SEQUENCES = [
    [1, 280, 295, 263, 290, 270, 296, 271, 283],
    [1, 2, 297, 259, 262, 264],
    [1, 293, 293, 293, 287, 276, 260, 288, 268, 281, 297, 266],
]
N_PREDICT = 8


def make_weights(c, n_vocab):
    rng = np.random.default_rng(c["seed"])
    e, h = c["n_embd"], c["n_head"]
    qk = c["qk_nope"] + c["qk_rope"]

    def mat(rows, cols, dtype=np.float32, scale=1.0):
        w = rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)
        return w.astype(dtype)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    W = {}
    W["token_embd.weight"] = rng.standard_normal((n_vocab, e)).astype(np.float32)
    W["output_norm.weight"] = norm(e)
    W["output.weight"] = mat(n_vocab, e, scale=2.0)
    for il in range(c["n_layer"]):
        p = "blk.%d." % il
        W[p + "attn_norm.weight"] = norm(e)
        if c["q_lora"] > 0:
            W[p + "attn_q_a.weight"] = mat(c["q_lora"], e)
            W[p + "attn_q_a_norm.weight"] = norm(c["q_lora"])
            W[p + "attn_q_b.weight"] = mat(h * qk, c["q_lora"], scale=1.5)
        else:
            W[p + "attn_q.weight"] = mat(h * qk, e, scale=1.5)
        W[p + "attn_kv_a_mqa.weight"] = mat(c["kv_lora"] + c["qk_rope"], e, scale=1.5)
        W[p + "attn_kv_a_norm.weight"] = norm(c["kv_lora"])
        kv_b = mat(h * (c["qk_nope"] + c["v_dim"]), c["kv_lora"])  # HF kv_b_proj, [out, in]
        if c["mla_split"]:
            kv = kv_b.reshape(h, c["qk_nope"] + c["v_dim"], c["kv_lora"])
            # as the converter: k_b transposed to {qk_nope, kv_lora, n_head}, v_b {kv_lora, v, n_head}
            W[p + "attn_k_b.weight"] = np.ascontiguousarray(kv[:, : c["qk_nope"], :].transpose(0, 2, 1))
            W[p + "attn_v_b.weight"] = np.ascontiguousarray(kv[:, c["qk_nope"]:, :])
        else:
            W[p + "attn_kv_b.weight"] = kv_b
        W[p + "attn_output.weight"] = mat(e, h * c["v_dim"])
        W[p + "ffn_norm.weight"] = norm(e)
        if il < c["dense_lead"]:
            W[p + "ffn_gate.weight"] = mat(c["n_ff"], e)
            W[p + "ffn_up.weight"] = mat(c["n_ff"], e)
            W[p + "ffn_down.weight"] = mat(e, c["n_ff"])
        else:
            ne, f = c["n_expert"], c["n_ff_exp"]
            W[p + "ffn_gate_inp.weight"] = mat(ne, e, scale=2.0)
            if c["bias"]:
                W[p + "exp_probs_b.bias"] = (0.3 * rng.standard_normal(ne)).astype(np.float32)
            dt = c["expert_dtype"]
            W[p + "ffn_gate_exps.weight"] = (rng.standard_normal((ne, f, e)) / np.sqrt(e)).astype(dt)
            W[p + "ffn_up_exps.weight"] = (rng.standard_normal((ne, f, e)) / np.sqrt(e)).astype(dt)
            W[p + "ffn_down_exps.weight"] = (rng.standard_normal((ne, e, f)) / np.sqrt(f)).astype(dt)
            fs = f * c["n_shared"]
            W[p + "ffn_gate_shexp.weight"] = mat(fs, e)
            W[p + "ffn_up_shexp.weight"] = mat(fs, e)
            W[p + "ffn_down_shexp.weight"] = mat(e, fs)
    return W


def write_gguf(path, c, W, tokens, scores, types):
    w = gguf.GGUFWriter(path, ARCH)
    w.add_name(os.path.basename(path))
    w.add_context_length(c.get("ctx", 256))
    w.add_embedding_length(c["n_embd"])
    w.add_block_count(c["n_layer"])
    w.add_feed_forward_length(c["n_ff"])
    w.add_head_count(c["n_head"])
    w.add_layer_norm_rms_eps(c["eps"])
    w.add_leading_dense_block_count(c["dense_lead"])
    w.add_q_lora_rank(c["q_lora"])
    w.add_kv_lora_rank(c["kv_lora"])
    if c["mla_split"]:
        w.add_head_count_kv(1)
        w.add_key_length(c["kv_lora"] + c["qk_rope"])
        w.add_value_length(c["kv_lora"])
        w.add_key_length_mla(c["qk_nope"] + c["qk_rope"])
        w.add_value_length_mla(c["v_dim"])
    else:
        w.add_head_count_kv(c["n_head"])
        w.add_key_length(c["qk_nope"] + c["qk_rope"])
        w.add_value_length(c["v_dim"])
    w.add_rope_dimension_count(c["qk_rope"])
    w.add_rope_freq_base(c["rope_base"])
    if c.get("yarn"):
        y = c["yarn"]
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(y["factor"])
        w.add_rope_scaling_orig_ctx_len(y["orig_ctx"])
        w.add_rope_scaling_yarn_log_mul(y["log_mul"])
    w.add_expert_feed_forward_length(c["n_ff_exp"])
    w.add_expert_count(c["n_expert"])
    w.add_expert_used_count(c["n_used"])
    w.add_expert_shared_count(c["n_shared"])
    w.add_expert_weights_scale(c["w_scale"])
    w.add_expert_weights_norm(c["norm_w"])
    w.add_expert_gating_func(gguf.ExpertGatingFuncType(c["gating"]))
    if c["groups"] > 1:
        w.add_expert_group_count(c["groups"])
        w.add_expert_group_used_count(c["groups_used"])
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_bool("tokenizer.ggml.add_space_prefix", False)
    for name, t in W.items():
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------
# Independent float64 reference.

def rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def yarn_params(c):
    """llama.cpp's YaRN numbers for deepseek2 (ext_factor 1, beta_fast 32, beta_slow 1):
    returns (freq_scale, per-pair extrapolation mix, cos/sin multiplier, kq mscale)."""
    y = c["yarn"]
    n, base = c["qk_rope"], c["rope_base"]
    fs = 1.0 / y["factor"]
    log_mul = y["log_mul"] / 0.1  # llama.cpp cancels the converter's 0.1
    f = 1.0 / fs

    def get_mscale(scale, m):
        return 1.0 if scale <= 1.0 else 0.1 * m * np.log(scale) + 1.0

    # llama-context.cpp: yarn_attn_factor (deepseek2 takes mscale = mscale_all_dims)
    attn = get_mscale(f, log_mul) / get_mscale(f, log_mul) if log_mul != 0 else get_mscale(f, 1.0)
    attn *= 1.0 / (1.0 + 0.1 * np.log(f))
    rot_scale = attn * (1.0 + 0.1 * np.log(1.0 / fs))  # ggml rope_yarn
    kq_mscale = attn * (1.0 + 0.1 * np.log(1.0 / fs)) * (1.0 + 0.1 * log_mul * np.log(1.0 / fs))  # deepseek2.cpp

    def corr_dim(n_rot):  # ggml_rope_yarn_corr_dim
        return n * np.log(y["orig_ctx"] / (n_rot * 2 * np.pi)) / (2 * np.log(base))

    low, high = max(0.0, np.floor(corr_dim(32.0))), min(n - 1.0, np.ceil(corr_dim(1.0)))
    ramp = 1.0 - np.clip((np.arange(n // 2) - low) / max(0.001, high - low), 0.0, 1.0)
    # unscaled_angles: a diagnostic variant (YaRN's magnitudes, plain angles), never written
    return (1.0 if y.get("unscaled_angles") else fs), ramp, rot_scale, kq_mscale


def rope_norm(x, pos, base, yarn=None):
    # x: [..., n_rot]; pairs (2i, 2i+1) rotated by pos * base^(-2i/n_rot)
    n = x.shape[-1]
    i = np.arange(n // 2)
    theta = pos * base ** (-2.0 * i / n)
    mag = 1.0
    if yarn is not None:
        fs, mix, mag, _ = yarn
        theta = fs * theta * (1.0 - mix) + theta * mix
    cos, sin = mag * np.cos(theta), mag * np.sin(theta)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def route(c, logits, bias, margins):
    """DeepSeek routing for one token: returns [(expert, weight)], best first."""
    if c["gating"] == 1:
        z = np.exp(logits - logits.max())
        probs = z / z.sum()
    else:
        probs = 1.0 / (1.0 + np.exp(-logits))
    sel = probs + bias if bias is not None else probs.copy()
    if c["groups"] > 1:
        g = sel.reshape(c["groups"], -1)
        gscore = np.sort(g, axis=1)[:, -2:].sum(axis=1)
        order = np.argsort(-gscore, kind="stable")
        margins.append(gscore[order[c["groups_used"] - 1]] - gscore[order[c["groups_used"]]])
        keep = np.zeros(c["groups"], bool)
        keep[order[: c["groups_used"]]] = True
        sel = np.where(np.repeat(keep, g.shape[1]), sel, -np.inf)
    order = np.argsort(-sel, kind="stable")
    top = order[: c["n_used"]]
    if np.isfinite(sel[order[c["n_used"]]]):
        margins.append(sel[top[-1]] - sel[order[c["n_used"]]])
    w = probs[top]
    if c["norm_w"]:
        w = w / max(w.sum(), 6.103515625e-5)
    if c["w_scale"] not in (0.0, 1.0):
        w = w * c["w_scale"]
    return list(zip(top.tolist(), w.tolist()))


def forward(c, W, ids, margins):
    W = {k: v.astype(np.float64) for k, v in W.items()}
    T, e, h = len(ids), c["n_embd"], c["n_head"]
    nope, rd, vd, kvl = c["qk_nope"], c["qk_rope"], c["v_dim"], c["kv_lora"]
    yarn = yarn_params(c) if c.get("yarn") else None
    scale = (yarn[3] ** 2 if yarn else 1.0) / np.sqrt(nope + rd)
    x = W["token_embd.weight"][ids]
    pos = np.arange(T)[:, None]
    for il in range(c["n_layer"]):
        p = "blk.%d." % il
        hn = rms(x, W[p + "attn_norm.weight"], c["eps"])
        if c["q_lora"] > 0:
            q = rms(hn @ W[p + "attn_q_a.weight"].T, W[p + "attn_q_a_norm.weight"], c["eps"]) @ W[p + "attn_q_b.weight"].T
        else:
            q = hn @ W[p + "attn_q.weight"].T
        q = q.reshape(T, h, nope + rd)
        q_nope, q_pe = q[..., :nope], rope_norm(q[..., nope:], pos[:, :, None], c["rope_base"], yarn)
        ckv = hn @ W[p + "attn_kv_a_mqa.weight"].T
        cmp = rms(ckv[:, :kvl], W[p + "attn_kv_a_norm.weight"], c["eps"])
        k_pe = rope_norm(ckv[:, kvl:], pos, c["rope_base"], yarn)  # [T, rd], shared by all heads
        if c["mla_split"]:
            wkb = W[p + "attn_k_b.weight"].transpose(0, 2, 1)  # [h, nope, kvl]
            wvb = W[p + "attn_v_b.weight"]  # [h, vd, kvl]
        else:
            kv = W[p + "attn_kv_b.weight"].reshape(h, nope + vd, kvl)
            wkb, wvb = kv[:, :nope, :], kv[:, nope:, :]
        k_nope = np.einsum("hdk,tk->thd", wkb, cmp)
        v = np.einsum("hdk,tk->thd", wvb, cmp)
        k = np.concatenate([k_nope, np.broadcast_to(k_pe[:, None, :], (T, h, rd))], axis=-1)
        qf = np.concatenate([q_nope, q_pe], axis=-1)
        s = np.einsum("thd,shd->hts", qf, k) * scale
        s = np.where(np.tril(np.ones((T, T), bool))[None], s, -np.inf)
        a = np.exp(s - s.max(axis=-1, keepdims=True))
        a /= a.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", a, v).reshape(T, h * vd)
        x = x + o @ W[p + "attn_output.weight"].T
        hn = rms(x, W[p + "ffn_norm.weight"], c["eps"])
        if il < c["dense_lead"]:
            f = (silu(hn @ W[p + "ffn_gate.weight"].T) * (hn @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
        else:
            logits = hn @ W[p + "ffn_gate_inp.weight"].T
            bias = W.get(p + "exp_probs_b.bias")
            f = np.zeros_like(hn)
            for t in range(T):
                for ex, wt in route(c, logits[t], bias, margins):
                    g = W[p + "ffn_gate_exps.weight"][ex] @ hn[t]
                    u = W[p + "ffn_up_exps.weight"][ex] @ hn[t]
                    f[t] += wt * (W[p + "ffn_down_exps.weight"][ex] @ (silu(g) * u))
            f += (silu(hn @ W[p + "ffn_gate_shexp.weight"].T) * (hn @ W[p + "ffn_up_shexp.weight"].T)) @ W[p + "ffn_down_shexp.weight"].T
        x = x + f
    return rms(x, W["output_norm.weight"], c["eps"]) @ W["output.weight"].T


def top_margin(l):
    s = np.sort(l)
    return float(s[-1] - s[-2])


def selected():
    only = [n for n in os.environ.get("ONLY", "").split(",") if n]
    unknown = [n for n in only if n not in CONFIGS]
    if unknown:
        raise SystemExit("ONLY names unknown models %s (known: %s)" % (unknown, ", ".join(CONFIGS)))
    return only or list(CONFIGS)


def load_json(name, fresh):
    """The existing fixture when only some models are regenerated, else `fresh`."""
    path = os.path.join(OUT, name)
    if os.environ.get("ONLY") and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return fresh


def main():
    os.makedirs(OUT, exist_ok=True)
    tokens, scores, types = vocabulary()
    reference = load_json("deepseek2-reference.json",
                          {"source": "Scripts/make-synthetic-moe.py (NumPy float64, decompressed MLA)", "models": {}})
    for name in selected():
        c = CONFIGS[name]
        # The first seed (from c["seed"] on) whose routing decisions and greedy choices are all
        # clear of near-ties, so float32 rounding in the engine cannot flip one.
        for seed in range(c["seed"], c["seed"] + 100):
            W = make_weights(dict(c, seed=seed), len(tokens))
            margins, top_margins = [], []
            cases = []
            for ids in SEQUENCES + c.get("extra_sequences", []):
                logits = forward(c, W, ids, margins)
                top_margins += [top_margin(l) for l in logits]
                cases.append({"ids": ids, "logits": [[round(float(v), 7) for v in row] for row in logits]})
            # greedy continuation of the first sequence
            seq = list(SEQUENCES[0])
            cont = []
            for _ in range(N_PREDICT):
                l = forward(c, W, seq, margins)[-1]
                top_margins.append(top_margin(l))
                nxt = int(np.argmax(l))
                cont.append(nxt)
                seq.append(nxt)
                if nxt == 2:
                    break
            if min(margins) > 1e-4 and min(top_margins) > 1e-3:
                break
        else:
            raise SystemExit("%s: no seed without near-ties" % name)
        path = os.path.join(OUT, name + ".gguf")
        write_gguf(path, c, W, tokens, scores, types)
        reference["models"][name] = {
            "file": name + ".gguf",
            "seed": seed,
            "cases": cases,
            "greedy": {"prompt": SEQUENCES[0], "continuation": cont},
            "min_routing_margin": float(min(margins)),
            "min_top1_margin": float(min(top_margins)),
        }
        print("%s: seed %d, %d bytes, min routing margin %.2e, min top-1 margin %.2e, greedy %s" % (
            path, seed, os.path.getsize(path), min(margins), min(top_margins), cont))
        if c.get("yarn"):
            # How far YaRN moves the logits: without it at all, and with its magnitudes but
            # unscaled frequencies (what a test would miss if the rope angles were wrong).
            ids = (SEQUENCES + c["extra_sequences"])[-1]
            L = forward(c, W, ids, [])
            plain = forward(dict(c, yarn=None), W, ids, [])
            y = c["yarn"]
            unscaled = forward(dict(c, yarn=dict(y, unscaled_angles=True)), W, ids, [])
            print("%s: max |YaRN - plain RoPE| %.3f, max |YaRN - YaRN with unscaled angles| %.3f over %d positions" % (
                name, np.abs(L - plain).max(), np.abs(L - unscaled).max(), len(ids)))
    with open(os.path.join(OUT, "deepseek2-reference.json"), "w") as f:
        json.dump(reference, f, separators=(",", ":"))
        f.write("\n")
    golden = os.environ.get("LLAMA_GOLDEN")
    if golden:
        llama_cpp_reference(golden)


def llama_cpp_reference(golden):
    """Optional cross-check: runs llama.cpp (the `golden` helper Scripts/llama-reference.sh
    builds) on both files, writes its top-5 logits to deepseek2-llama-cpp.json, and checks
    the NumPy reference against them."""
    import subprocess
    out = load_json("deepseek2-llama-cpp.json", {
        "source": "llama.cpp from llama-cpp-python 0.3.36 (Scripts/llama-reference/golden.cpp, F32 KV cache)",
        "prompt": "the ant sat on a hat", "models": {}})
    tokens, _, _ = vocabulary()
    ref = json.load(open(os.path.join(OUT, "deepseek2-reference.json")))
    for name in selected():
        c = CONFIGS[name]
        prompt = c.get("llama_prompt", out["prompt"])
        r = subprocess.run([golden, os.path.join(OUT, name + ".gguf"), "4"], input=prompt.encode(),
                           capture_output=True, env=dict(os.environ, GOLDEN_KV_F32="1"), check=True)
        g = json.loads(r.stdout.decode("utf-8", "replace"))
        g.pop("pieces", None)
        if prompt != out["prompt"]:
            g["prompt"] = prompt
        out["models"][name] = g
        W = make_weights(dict(c, seed=ref["models"][name]["seed"]), len(tokens))
        margins = []
        L = forward(c, W, g["prompt_ids"] + g["continuation"], margins)
        worst = max(abs(L[p["pos"]][i] - v) for p in g["positions"] for i, v in p["top"])
        print("%s: max |NumPy - llama.cpp| over the top-5 logits of %d positions: %.2e (min routing margin %.1e)" % (
            name, len(g["positions"]), worst, min(margins)))
        assert min(margins) > 1e-3, "a routing near-tie on the llama.cpp prompt: pick another llama_prompt"
        assert worst < 2e-2
    with open(os.path.join(OUT, "deepseek2-llama-cpp.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
