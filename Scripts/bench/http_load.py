"""Load for `yard serve`: creates a tenant, applies a workflow of three no-op transform
steps, then creates N runs from C concurrent clients over keep-alive connections and waits
until every run is final.

    python http_load.py --url http://127.0.0.1:PORT --admin-key KEY [--runs 5000] [--clients 32] [--pid SERVER_PID]
                        [--waiting 10000]

Prints the trigger call's latency (POST /v1/workflows/noop/runs, 202 expected) p50/p90/p99,
runs created per second, and end-to-end runs per second (first trigger until the last run is
final, found by polling GET /v1/runs?status=queued|running|waiting&limit=1 every 100 ms), and
with --pid the server's resident memory (VmRSS, VmHWM) before and after the load.
"""

import argparse
import asyncio
import os
import time

import aiohttp

WORKFLOW = """kind: Workflow
name: noop
steps:
  - id: s0
    transform: "0"
  - id: s1
    transform: "1"
    needs: [s0]
  - id: s2
    transform: "2"
    needs: [s1]
"""

PARKED = """kind: Workflow
name: parked
steps:
  - id: start
    transform: "0"
  - id: gate
    needs: [start]
    wait_for: go
    timeout: 24h
"""


def memory(pid: int | None) -> str:
    if pid is None:
        return ""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return f"VmRSS {fields.get('VmRSS')}, VmHWM {fields.get('VmHWM')}"


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time the process has used (from /proc/PID/stat), in seconds."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin-key", required=True)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--waiting", type=int, default=10000, help="runs parked at a wait_for step before memory is read again")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for all runs to be final")
    args = parser.parse_args()
    base = args.url.rstrip("/")

    connector = aiohttp.TCPConnector(limit=args.clients + 4, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        admin = {"Authorization": f"Bearer {args.admin_key}"}
        async with session.post(f"{base}/v1/admin/tenants", json={"name": f"bench-{int(time.time())}"}, headers=admin) as r:
            body = await r.json()
            assert r.status == 201, (r.status, body)
            tenant, key = body["tenant"]["id"], body["api_key"]
        # The server's fair-use limits are raised in its config; the tenant's are left at them.
        auth = {"Authorization": f"Bearer {key}"}
        async with session.post(f"{base}/v1/apply", data=WORKFLOW, headers={**auth, "Content-Type": "application/yaml"}) as r:
            assert r.status == 200, (r.status, await r.text())
        # One run end to end first (warms the connection pool and caches; not counted).
        async with session.post(f"{base}/v1/workflows/noop/runs?wait=10", json={"input": {}}, headers=auth) as r:
            body = await r.json()
            assert r.status in (200, 202), (r.status, body)
        await asyncio.sleep(1.0)
        idle_memory = memory(args.pid)

        latencies: list[float] = []
        errors: dict[int, int] = {}

        async def client(offset: int) -> None:
            for _ in range(offset, args.runs, args.clients):
                t0 = time.perf_counter()
                async with session.post(f"{base}/v1/workflows/noop/runs", json={"input": {}}, headers=auth) as r:
                    await r.read()
                    if r.status != 202:
                        errors[r.status] = errors.get(r.status, 0) + 1
                latencies.append((time.perf_counter() - t0) * 1000)

        server_cpu, client_cpu = cpu_seconds(args.pid), sum(os.times()[:2])
        start = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(args.clients)))
        created = time.perf_counter() - start
        server_cpu, client_cpu = cpu_seconds(args.pid) - server_cpu, sum(os.times()[:2]) - client_cpu

        async def live() -> bool:
            for status in ("queued", "running", "waiting"):
                async with session.get(f"{base}/v1/runs", params={"status": status, "limit": "1"}, headers=auth) as r:
                    body = await r.json()
                    if body["runs"]:
                        return True
            return False

        while await live():
            if time.perf_counter() - start > args.timeout:
                raise SystemExit(f"http_load: runs still live after {args.timeout:.0f} s")
            await asyncio.sleep(0.1)
        finished = time.perf_counter() - start
        async with session.get(f"{base}/v1/runs", params={"status": "failed", "limit": "5"}, headers=auth) as r:
            failed = (await r.json())["runs"]
        loaded_memory = memory(args.pid)

        waiting_memory = ""
        if args.waiting > 0:
            async with session.post(f"{base}/v1/apply", data=PARKED, headers={**auth, "Content-Type": "application/yaml"}) as r:
                assert r.status == 200, (r.status, await r.text())

            async def park(offset: int) -> None:
                for _ in range(offset, args.waiting, args.clients):
                    async with session.post(f"{base}/v1/workflows/parked/runs", json={"input": {}}, headers=auth) as r:
                        await r.read()
                        assert r.status == 202, r.status

            await asyncio.gather(*(park(c) for c in range(args.clients)))

            async def unsettled() -> bool:
                for status in ("queued", "running"):
                    async with session.get(f"{base}/v1/runs", params={"status": status, "limit": "1"}, headers=auth) as r:
                        if (await r.json())["runs"]:
                            return True
                return False

            parked_since = time.perf_counter()
            while await unsettled():
                if time.perf_counter() - parked_since > args.timeout:
                    raise SystemExit(f"http_load: parked runs still not waiting after {args.timeout:.0f} s")
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)
            waiting_memory = memory(args.pid)

    if args.runs == 0:
        if waiting_memory:
            print(f"  server memory with {args.waiting} runs waiting for a signal: {waiting_memory} (idle before: {idle_memory})")
        return
    latencies.sort()
    ok = args.runs - sum(errors.values())
    print(f"http benchmark: {args.runs} runs of 3 no-op transform steps created by {args.clients} concurrent clients (keep-alive)")
    print(
        f"  trigger call (POST /v1/workflows/noop/runs): p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p90 {percentile(latencies, 0.9):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, max {latencies[-1]:.1f} ms"
    )
    print(f"  created: {ok / created:.0f} runs/s ({ok} accepted in {created:.2f} s; refused: {errors or 'none'})")
    print(f"  throughput: {ok / finished:.0f} runs/s end to end (all final after {finished:.2f} s){'; FAILED RUNS: ' + str(len(failed)) if failed else ''}")
    if args.pid:
        print(f"  CPU while creating: server {server_cpu / ok * 1000:.2f} ms per run ({server_cpu / created:.2f} cores), "
              f"this client {client_cpu / ok * 1000:.2f} ms per run ({client_cpu / created:.2f} cores)")
        print(f"  server memory: idle {idle_memory}; after the load {loaded_memory}")
        if waiting_memory:
            print(f"  server memory with {args.waiting} runs waiting for a signal: {waiting_memory}")


if __name__ == "__main__":
    asyncio.run(main())
