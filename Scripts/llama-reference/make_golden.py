#!/usr/bin/env python3
"""Writes the LocalInference golden fixtures from llama.cpp (see Scripts/llama-reference.sh).

tokenizer.json  : token ids (BOS included) from `llama-tokenize --ids` for texts that cover
                  Unicode, whitespace runs, user-defined tokens and byte fallback.
generation.json : for several prompts, the prompt ids, a greedy continuation and the top-5
                  logits at every prompt position and every generated position, from the
                  `golden` helper (libllama), plus the smallest top-1/top-2 margin seen.
"""
import json
import subprocess
import sys

llama_tokenize, golden, model, out_dir, version = sys.argv[1:6]

TEXTS = [
    "Hello world",
    "Hello  world",
    " leading space",
    "trailing space ",
    "   three leading spaces",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\n\n\n",
    "mixed \t \n whitespace  \n\t run",
    "                                                                 many spaces",
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé façade naïve café — “quotes” and ‘apostrophes’…",
    "日本語のテキストと中文文本，한국어 텍스트.",
    "Emoji: 😀🎉👍🏽 🇫🇷 and ZWJ 👩‍👩‍👧‍👦",
    "Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ → ∞",
    "Rare: 𠀀𠀁𪚥 \U000f0000 \ue000 \x01\x07\x7f",
    "<table><tr><td>html tags</td></tr></table>",
    "<start_of_turn>user\nnot a control token here<end_of_turn>",
    "code: def f(x):\n    return x**2  # square\n",
    "numbers 1234567890 3.14159 -42 1e-6 0x1F",
    "URL https://example.com/path?q=1&r=two#frag",
    "a",
    "",
    " ",
    "\n",
    "▁already escaped▁",
    "Ελληνικά, русский, العربية, עברית, हिन्दी",
]

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):\n",
    "The three primary colors are",
    "Water boils at a temperature of",
    "In 1969, the first humans landed on",
    "A list of fruits: apple, banana,",
    "Photosynthesis is the process by which",
    "The largest planet in the solar system is",
    "Monday, Tuesday, Wednesday,",
    "The first law of thermodynamics states that",
    "One, two, three, four,",
    "Albert Einstein was born in",
    "HTML stands for",
    "To make a cup of tea, first",
    "The chemical symbol for gold is",
]
N_PREDICT = 80


def run(cmd, data):
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout.decode()


tokens = []
for text in TEXTS:
    out = run([llama_tokenize, "-m", model, "--stdin", "--ids", "--log-disable"], text.encode())
    ids = json.loads(out.strip().splitlines()[-1])
    tokens.append({"text": text, "ids": ids})
with open(f"{out_dir}/tokenizer.json", "w", encoding="utf-8") as f:
    json.dump({"source": version, "cases": tokens}, f, ensure_ascii=False, indent=1)

cases = []
for prompt in PROMPTS:
    g = json.loads(run([golden, model, str(N_PREDICT)], prompt.encode()))
    n = len(g["prompt_ids"])
    gen_steps = [p for p in g["positions"] if p["pos"] >= n - 1]
    margins = [p["top"][0][1] - p["top"][1][1] for p in gen_steps]
    g["prompt"] = prompt
    g["min_margin"] = min(margins) if margins else None
    cases.append(g)
    print(f"{prompt!r}: {len(g['continuation'])} tokens, min top-1 margin {g['min_margin']:.4f}", file=sys.stderr)
with open(f"{out_dir}/generation.json", "w", encoding="utf-8") as f:
    json.dump({"source": version, "n_predict": N_PREDICT, "cases": cases}, f, ensure_ascii=False)
