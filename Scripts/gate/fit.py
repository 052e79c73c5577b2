#!/usr/bin/env python3
"""Fit the gate's text model (plain Python, no numpy).

Reads feature dumps written by the production feature extractor:

    yard bench gate --data mmlu.csv  --features-out /tmp/gate/mmlu_features.csv
    yard bench gate --data gsm8k.csv --features-out /tmp/gate/gsm8k_features.csv

and fits, on the rows marked `tuning` only, two ridge-regularised linear probability models:
P(flash right | features) and P(pro right | features). Their difference is the gate's text
prior of "accuracy gained by pro" (least squares is linear in the target, so the difference
of the two fits is the fit of the difference). Prints an offline check on both split sides
and writes Sources/SwitchyardGate/GateWeights.swift.

Usage: python3 Scripts/gate/fit.py FEATURES.csv [FEATURES.csv ...] [--out PATH]
       [--ridge 1.0] [--prior-strength 10] [--exploration 1.0]
"""
import csv
import sys

RIDGE = 1.0


def load(path):
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        names = header[4:]
        rows = []
        for record in reader:
            rows.append({
                "split": record[0], "step": record[1], "flash": float(record[2]), "pro": float(record[3]),
                "x": [float(v) for v in record[4:]],
            })
    return names, rows


def solve(matrix, vector):
    """Gaussian elimination with partial pivoting."""
    n = len(vector)
    a = [row[:] + [vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-12:
            continue
        for r in range(n):
            if r != col:
                factor = a[r][col] / a[col][col]
                if factor:
                    for c in range(col, n + 1):
                        a[r][c] -= factor * a[col][c]
    return [a[i][n] / a[i][i] if abs(a[i][i]) > 1e-12 else 0.0 for i in range(n)]


def ridge(rows, target, ridge_lambda, weights):
    k = len(rows[0]["x"])
    xtx = [[0.0] * k for _ in range(k)]
    xty = [0.0] * k
    for row, w in zip(rows, weights):
        x = row["x"]
        y = row[target]
        for i in range(k):
            if x[i] == 0:
                continue
            wx = w * x[i]
            xty[i] += wx * y
            xi = xtx[i]
            for j in range(k):
                xi[j] += wx * x[j]
    for i in range(1, k):  # the bias is not shrunk
        xtx[i][i] += ridge_lambda
    return solve(xtx, xty)


def dot(w, x):
    return sum(a * b for a, b in zip(w, x))


def share_at_95(rows, scores):
    """Offline curve: route the highest-scoring rows to pro, sweeping every cut."""
    n = len(rows)
    flash = sum(r["flash"] for r in rows)
    pro = sum(r["pro"] for r in rows)
    target = 0.95 * pro
    order = sorted(range(n), key=lambda i: -scores[i])
    acc = flash
    prev_share, prev_acc = 0.0, flash
    if acc >= target:
        return 0.0, 0.5
    found = None
    area = 0.0
    gap = (pro - flash) / n
    for count, i in enumerate(order, start=1):
        acc += rows[i]["pro"] - rows[i]["flash"]
        share = count / n
        area += (1 / n) * (((acc + prev_acc) / 2 - flash) / n) / gap if gap else 0
        if found is None and acc >= target:
            found = prev_share + (target - prev_acc) / (acc - prev_acc) * (share - prev_share) if acc > prev_acc else share
        prev_share, prev_acc = share, acc
    return found if found is not None else 1.0, area


def main(argv):
    out = "Sources/SwitchyardGate/GateWeights.swift"
    ridge_lambda = RIDGE
    prior_strength = 10.0
    exploration = 1.0
    paths = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--out":
            out = argv[index + 1]; index += 2; continue
        if arg == "--ridge":
            ridge_lambda = float(argv[index + 1]); index += 2; continue
        if arg == "--prior-strength":
            prior_strength = float(argv[index + 1]); index += 2; continue
        if arg == "--exploration":
            exploration = float(argv[index + 1]); index += 2; continue
        paths.append(arg)
        index += 1
    if not paths:
        print(__doc__)
        return 2
    datasets = []
    names = None
    for path in paths:
        names, rows = load(path)
        datasets.append((path, rows))
    # Each data set weighs the same in the fit, whatever its size.
    train, weights = [], []
    for _, rows in datasets:
        tuning = [r for r in rows if r["split"] == "tuning"]
        train += tuning
        weights += [1000.0 / len(tuning)] * len(tuning)
    w_flash = ridge(train, "flash", ridge_lambda, weights)
    w_pro = ridge(train, "pro", ridge_lambda, weights)
    total = sum(weights)
    base_flash = sum(w * dot(w_flash, r["x"]) for r, w in zip(train, weights)) / total
    base_pro = sum(w * dot(w_pro, r["x"]) for r, w in zip(train, weights)) / total
    print(f"base rates (mean prior): flash {base_flash:.4f}, pro {base_pro:.4f}")
    print("feature                    flash     pro    gain")
    for name, f, p in zip(names, w_flash, w_pro):
        print(f"{name:24s} {f:+.4f} {p:+.4f} {p - f:+.4f}")
    for path, rows in datasets:
        for side in ("tuning", "holdout"):
            part = [r for r in rows if r["split"] == side]
            scores = [dot(w_pro, r["x"]) - dot(w_flash, r["x"]) for r in part]
            share, apgr = share_at_95(part, scores)
            print(f"{path} {side}: {len(part)} rows, offline pro share at 95% = {share:.3f}, APGR = {apgr:.3f}")

    def literal(values):
        return "[\n" + "".join(f"        {v:.6f},  // {n}\n" for v, n in zip(values, names)) + "    ]"

    with open(out, "w") as handle:
        handle.write(
            "// Generated by Scripts/gate/fit.py — do not edit by hand; refit instead (Scripts/gate/README.md).\n"
            f"// Fitted on the tuning split of: {', '.join(p.split('/')[-1] for p in paths)}; ridge {ridge_lambda}.\n\n"
            "/// The fitted constants of `GateModel.default`: linear weights of P(flash right) and\n"
            "/// P(pro right) over `GateFeatures.names`, and the blend constants tuned with\n"
            "/// `yard bench gate --split tuning --online`.\n"
            "enum GateWeights {\n"
            f"    static let flash: [Double] = {literal(w_flash)}\n"
            f"    static let pro: [Double] = {literal(w_pro)}\n"
            f"    static let baseFlash: Double = {base_flash:.6f}\n"
            f"    static let basePro: Double = {base_pro:.6f}\n"
            f"    static let priorStrength: Double = {prior_strength}\n"
            f"    static let exploration: Double = {exploration}\n"
            "}\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
