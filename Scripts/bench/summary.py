"""Prints the per-round tables and the summary of Scripts/bench-engine.sh from its JSON files
(OUT/SYSTEM-ROUND.json, written by pgstats.py)."""

import json
import os
import statistics
import sys

out, rounds = sys.argv[1], int(sys.argv[2])
systems = [("yard", "Switchyard (yard bench engine)"), ("pgqueuer", "pgqueuer"), ("dbos", "DBOS Transact")]
columns = [
    ("runs/s", lambda f: f["runs_per_s"], "{:8.0f}"),
    ("commits", lambda f: f["per_run"]["commits"], "{:8.1f}"),
    ("write tx", lambda f: f["per_run"]["write_tx"], "{:8.1f}"),
    ("WAL B", lambda f: f["per_run"]["wal_bytes"], "{:8.0f}"),
    ("PG CPU ms", lambda f: f["per_run"]["cpu_ms"], "{:9.2f}"),
    ("stmts", lambda f: f["per_run"]["calls"], "{:8.1f}"),
    ("planned", lambda f: f["per_run"]["plans"], "{:8.1f}"),
]


def load(system, r):
    path = os.path.join(out, f"{system}-{r}.json")
    return json.load(open(path)) if os.path.exists(path) else None


def width(name, fmt):
    return max(len(name), len(fmt.format(0))) + 2


def header():
    return f"  {'system':<32}" + "".join(f"{name:>{width(name, fmt)}}" for name, _, fmt in columns)


def row(label, values):
    return f"  {label:<32}" + "".join(
        f"{fmt.format(v) if v is not None else '':>{width(name, fmt)}}" for (name, _, fmt), v in zip(columns, values)
    )


print("\nper run: commits (pg_stat_database.xact_commit of its database), write tx (transaction ids assigned),")
print("WAL bytes, PostgreSQL CPU (all server processes, /proc), statements executed and planned (pg_stat_statements)")
for r in range(1, rounds + 1):
    print(f"\nround {r}")
    print(header())
    for system, label in systems:
        f = load(system, r)
        if f:
            print(row(label, [get(f) for _, get, _ in columns]))

medians = {}
print(f"\nsummary: medians over {rounds} round(s)")
print(header())
for system, label in systems:
    figures = [f for f in (load(system, r) for r in range(1, rounds + 1)) if f]
    if not figures:
        continue
    medians[system] = [statistics.median(get(f) for f in figures) for _, get, _ in columns]
    print(row(label, medians[system]))
    spread = [f["runs_per_s"] for f in figures]
    print(f"  {'':<32}runs/s range {min(spread):.0f}-{max(spread):.0f}")

if "yard" in medians:
    print()
    for peer, name in (("pgqueuer", "pgqueuer"), ("dbos", "DBOS")):
        if peer in medians:
            y, p = medians["yard"], medians[peer]
            print(
                f"  Switchyard/{name}: throughput {y[0] / p[0]:.2f}x, PG CPU per run {y[4] / p[4]:.2f}x, "
                f"write tx per run {y[2] / p[2]:.2f}x, WAL per run {y[3] / p[3]:.2f}x, planned statements per run {y[6] / max(p[6], 1e-9):.2f}x"
            )
