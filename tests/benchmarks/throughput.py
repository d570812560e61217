"""``nox -s bench``: throughput of N selftest jobs (0 ms) through our job layer against
bare Dramatiq actors doing the same work, on one Redis, with the same worker shape
(one process, LIGHT_WORKER_THREADS threads). Prints both rates and their ratio.

Each run submits N jobs from this process and times from the first submit to the last
job finished (ours: no job left active in the job store; bare: Dramatiq's queue empty
and every message acked).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from actors import catalog
from actors.broker import enqueue_broker, job_store, redis_client
from actors.submission import submit
from tests.support.processes import Process, Redis, start_worker, wait_for_log, wait_until

THREADS = int(os.environ.get("LIGHT_WORKER_THREADS", "4"))


def run_ours(redis: Redis, n: int, log_dir: Path, round_no: int) -> float:
    worker = start_worker(redis.url, "light", log_dir, threads=THREADS)
    try:
        store = job_store(redis_client(redis.url, decode=True))
        broker = enqueue_broker(redis_client(redis.url))
        operation = catalog.get("selftest")
        started = time.perf_counter()
        for i in range(n):
            admission = submit(store, broker, operation, {"sleep_ms": 0, "label": f"r{round_no}-{i}"}, cap=n)
            assert admission.outcome == "accepted", admission
        wait_until(lambda: store.active_count("light") == 0, timeout=600, interval=0.01, what="our jobs to finish")
        elapsed = time.perf_counter() - started
        completed = store.client.zcard("jobs:h:s:completed")
        assert completed >= n * round_no, f"only {completed} completed"
        return elapsed
    finally:
        worker.stop()


def run_bare(redis: Redis, n: int, log_dir: Path) -> float:
    env = {"REDIS_URL": redis.url}
    worker = Process(
        "bare-dramatiq",
        [sys.executable, "-m", "dramatiq", "tests.benchmarks.bare_actors", "--processes", "1",
         "--threads", str(THREADS), "--queues", "bench"],
        env, log_dir,
    )
    try:
        wait_for_log(worker, "Worker process is ready for action")
        os.environ["REDIS_URL"] = redis.url
        from tests.benchmarks import bare_actors

        started = time.perf_counter()
        for i in range(n):
            bare_actors.selftest.send({"sleep_ms": 0, "steps": 1, "fail": False, "label": str(i)})
        bare_actors.broker.join("bench", interval=10, timeout=600_000)
        return time.perf_counter() - started
    finally:
        worker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="jobs per run (default 2000)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, best kept (default 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        redis = Redis(tmp / "redis")
        try:
            ours, bare = [], []
            for round_no in range(1, args.rounds + 1):
                bare.append(run_bare(redis, args.n, tmp))
                ours.append(run_ours(redis, args.n, tmp, round_no))
                print(f"round {round_no}: ours {args.n / ours[-1]:.0f} jobs/s, bare Dramatiq {args.n / bare[-1]:.0f} jobs/s",
                      flush=True)
        finally:
            redis.stop()

    ours_rate, bare_rate = args.n / min(ours), args.n / min(bare)
    print(f"throughput, {args.n} selftest jobs (0 ms), 1 worker process x {THREADS} threads, best of {args.rounds}:")
    print(f"  ours (job store + middleware): {ours_rate:8.0f} jobs/s")
    print(f"  bare Dramatiq 2.2 + Results:   {bare_rate:8.0f} jobs/s")
    print(f"  ratio ours/bare: {ours_rate / bare_rate:.2f} (target >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
