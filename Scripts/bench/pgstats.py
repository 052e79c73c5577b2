"""Runs one benchmark command and measures what it cost PostgreSQL, per run.

    python pgstats.py --dsn postgres://.../postgres --db NAME --pgdata DIR --runs N --out FILE.json -- COMMAND...

Before the command: CHECKPOINT (so each window starts with the same full-page-write
state), pg_stat_statements_reset(), then counters. After it (and a pause for backends to
report): the same counters again. Prints the command's output and writes to FILE.json:

  commits      pg_stat_database.xact_commit delta of the benchmark's database
  write_tx     transaction ids assigned cluster-wide (pg_snapshot_xmax of the current snapshot)
  wal_bytes    pg_wal_lsn_diff of pg_current_wal_lsn() (cluster-wide)
  cpu_s        user + system CPU of every PostgreSQL process (postmaster, its live children,
               and the children that exited, through the postmaster's cutime/cstime) from /proc
  calls/plans  sum of pg_stat_statements calls and plans for the database (track_planning on)
  runs_per_s   parsed from the command's "throughput: X runs/s" line

Only one benchmark runs at a time, so the cluster-wide figures belong to it.
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time

import asyncpg

TICK = os.sysconf("SC_CLK_TCK")


def postgres_cpu(postmaster: int) -> float:
    """Seconds of CPU used by the postmaster, its live children and its reaped children."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        if pid == postmaster:
            total += utime + stime + cutime + cstime
        elif ppid == postmaster:
            total += utime + stime
    return total / TICK


async def counters(dsn: str, db: str, before: bool) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        if before:
            await conn.execute("CHECKPOINT")
            await conn.execute("SELECT pg_stat_statements_reset()")
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            """
            SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1) AS commits,
                   pg_current_wal_lsn()::text AS lsn,
                   pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax,
                   (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                     WHERE d.datname = $1) AS calls,
                   (SELECT coalesce(sum(plans), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                     WHERE d.datname = $1) AS plans
            """,
            db,
        )
        figures = dict(row)
        if not before:
            top = await conn.fetch(
                """SELECT calls, plans, rows, round((total_exec_time + total_plan_time)::numeric, 1)::float8 AS total_ms,
                          left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
                     FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                    WHERE d.datname = $1 ORDER BY total_exec_time + total_plan_time DESC LIMIT 15""",
                db,
            )
            figures["top"] = [dict(r) for r in top]
        return figures
    finally:
        await conn.close()


async def wal_diff(dsn: str, a: str, b: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", b, a))
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True, help="a connection to the maintenance database")
    parser.add_argument("--db", required=True, help="the benchmark's database")
    parser.add_argument("--pgdata", required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--settle", type=float, default=1.5, help="seconds to wait after the command before reading counters")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with open(os.path.join(args.pgdata, "postmaster.pid")) as f:
        postmaster = int(f.readline())

    start = asyncio.run(counters(args.dsn, args.db, before=True))
    time.sleep(0.3)  # the measuring backend has exited and been reaped
    cpu_start = postgres_cpu(postmaster)
    started = time.monotonic()
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - started
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    if result.returncode != 0:
        sys.exit(f"pgstats: {command[0]} exited with {result.returncode}")
    time.sleep(args.settle)  # backends that exited have reported their statistics
    cpu_end = postgres_cpu(postmaster)
    end = asyncio.run(counters(args.dsn, args.db, before=False))
    wal = asyncio.run(wal_diff(args.dsn, start["lsn"], end["lsn"]))

    match = re.search(r"throughput: ([0-9.]+) runs/s", result.stdout)
    n = args.runs
    figures = {
        "runs": n,
        "runs_per_s": float(match.group(1)) if match else None,
        "wall_s": elapsed,
        "commits": end["commits"] - start["commits"],
        "write_tx": end["xmax"] - start["xmax"],
        "wal_bytes": wal,
        "cpu_s": cpu_end - cpu_start,
        "calls": int(end["calls"]),
        "plans": int(end["plans"]),
    }
    figures["per_run"] = {
        "commits": figures["commits"] / n,
        "write_tx": figures["write_tx"] / n,
        "wal_bytes": wal / n,
        "cpu_ms": figures["cpu_s"] * 1000 / n,
        "calls": figures["calls"] / n,
        "plans": figures["plans"] / n,
    }
    figures["top_statements"] = end["top"]
    with open(args.out, "w") as f:
        json.dump(figures, f)


if __name__ == "__main__":
    main()
