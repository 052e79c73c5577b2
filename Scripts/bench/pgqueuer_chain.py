"""pgqueuer: N chains of three no-op jobs (job 1's handler enqueues job 2, whose handler
enqueues job 3), timed from the first enqueue to the last job 3 done.

    python pgqueuer_chain.py --dsn postgres://... [--runs 2000] [--creators 8] [--batch-size 10]
    python pgqueuer_chain.py --dsn postgres://... --prepare      (installs pgqueuer's schema once)

As `yard bench engine` does, the first jobs are enqueued one per transaction from 8
concurrent creators while one QueueManager (pgqueuer's worker: LISTEN/NOTIFY plus its
dequeue query, on one asyncpg connection) runs them; handlers enqueue the next job through
an asyncpg pool (without asyncpg's reset on release: UNLISTEN *, RESET ALL and so on after
every enqueue would be the harness's cost, not pgqueuer's). Prints "throughput: X runs/s"
(runs = chains).
"""

import argparse
import asyncio
import time
from datetime import timedelta

import asyncpg
from pgqueuer import AsyncpgDriver, Job, QueueManager
from pgqueuer.queries import Queries


async def prepare(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await conn.close()


async def no_reset(connection: asyncpg.Connection) -> None:
    """The pool's connections hold no session state: nothing to reset."""


async def bench(dsn: str, runs: int, creators: int, batch_size: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=creators + 2, max_size=creators + 8, reset=no_reset)
    producer = Queries.from_asyncpg_pool(pool)
    await producer.clear_queue()
    worker_conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(worker_conn)))
    done = 0
    finished = asyncio.Event()
    last_done = 0.0

    @qm.entrypoint("chain_step1")
    async def step1(job: Job) -> None:
        await producer.enqueue("chain_step2", job.payload)

    @qm.entrypoint("chain_step2")
    async def step2(job: Job) -> None:
        await producer.enqueue("chain_step3", job.payload)

    @qm.entrypoint("chain_step3")
    async def step3(job: Job) -> None:
        nonlocal done, last_done
        done += 1
        if done == runs:
            last_done = time.perf_counter()
            finished.set()

    worker = asyncio.create_task(qm.run(batch_size=batch_size, dequeue_timeout=timedelta(seconds=1)))
    await asyncio.sleep(1.0)  # the worker is listening

    async def create(offset: int) -> None:
        for i in range(offset, runs, creators):
            await producer.enqueue("chain_step1", str(i).encode())

    start = time.perf_counter()
    await asyncio.gather(*(create(c) for c in range(creators)))
    created = time.perf_counter() - start
    await finished.wait()
    elapsed = last_done - start
    qm.shutdown.set()
    await worker  # flushes pgqueuer's status log buffer
    drained = time.perf_counter() - start
    await worker_conn.close()
    await pool.close()
    print(f"pgqueuer benchmark: {runs} chains of 3 no-op jobs, {creators} creators, batch size {batch_size}")
    print(
        f"  throughput: {runs / elapsed:.0f} runs/s ({3 * runs / elapsed:.0f} jobs/s); all chains enqueued after {created:.2f} s, "
        f"last job done after {elapsed:.2f} s, worker stopped after {drained:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--creators", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--prepare", action="store_true")
    args = parser.parse_args()
    if args.prepare:
        asyncio.run(prepare(args.dsn))
    else:
        asyncio.run(bench(args.dsn, args.runs, args.creators, args.batch_size))


if __name__ == "__main__":
    main()
