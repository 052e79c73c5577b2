"""DBOS Transact: N workflows of three no-op steps (@DBOS.step), timed from the first
start to the last workflow's result.

    python dbos_chain.py --dsn postgres://... [--runs 2000] [--concurrency 64] [--mode start|queue]
    python dbos_chain.py --dsn postgres://... --prepare      (creates DBOS's system tables once)

--mode start: 64 client threads each call DBOS.start_workflow and wait for the
  result before starting the next, so at most 64 workflows run at once (as the engine's
  concurrency 64); DBOS runs each in its executor threads and checkpoints every step.
--mode queue (default): all workflows are enqueued on a DBOS queue (worker_concurrency 64, polled
  every 50 ms instead of the default 1 s) from 8 threads, then waited for.
Prints "throughput: X runs/s" (runs = workflows).
"""

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from dbos import DBOS, DBOSConfig


def configure(dsn: str) -> None:
    config: DBOSConfig = {
        "name": "switchyard-bench",
        "system_database_url": dsn.replace("postgres://", "postgresql://", 1),
        "sys_db_pool_size": 40,
        "log_level": "WARNING",
    }
    DBOS(config=config)


@DBOS.step()
def step1(i: int) -> int:
    return i


@DBOS.step()
def step2(i: int) -> int:
    return i


@DBOS.step()
def step3(i: int) -> int:
    return i


@DBOS.workflow()
def chain(i: int) -> int:
    return step3(step2(step1(i)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mode", choices=["start", "queue"], default="queue")
    parser.add_argument("--prepare", action="store_true")
    args = parser.parse_args()
    logging.getLogger("dbos").setLevel(logging.WARNING)
    configure(args.dsn)
    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=args.concurrency, polling_interval_sec=0.05)
    try:
        if args.prepare:
            return
        runs = args.runs
        start = time.perf_counter()
        if args.mode == "start":

            def client(offset: int) -> None:
                for i in range(offset, runs, args.concurrency):
                    DBOS.start_workflow(chain, i).get_result()

            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(client, range(args.concurrency)))
            created = None
        else:
            with ThreadPoolExecutor(8) as pool:
                handles = list(pool.map(lambda i: queue.enqueue(chain, i), range(runs)))
            created = time.perf_counter() - start
            for handle in handles:
                handle.get_result()
        elapsed = time.perf_counter() - start
        how = f"{args.concurrency} client threads (start_workflow)" if args.mode == "start" else f"queue, worker concurrency {args.concurrency}"
        print(f"dbos benchmark: {runs} workflows of 3 no-op steps, {how}")
        extra = f"all enqueued after {created:.2f} s, " if created is not None else ""
        print(f"  throughput: {runs / elapsed:.0f} runs/s ({3 * runs / elapsed:.0f} steps/s); {extra}all finished after {elapsed:.2f} s")
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
