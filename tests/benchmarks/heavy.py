"""``nox -s bench`` (part 2): the heavy analyses on the heavy worker, and the gateway
under steady load while they run.

1. Wall time and peak memory of ``clustering`` and ``phenotype_clustering`` on the
   shipped data, as the heavy worker records them (started -> completed, peak RSS).
2. The proposal's success criteria while the heavy worker is kept busy with both:
   p50/p99 latency of ``GET /api/health`` and ``GET /api/jobs/{id}/status`` under steady
   load from a few client threads, and the resident memory of each gateway process.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from actors.job_store import parse_time
from tests.support.processes import Redis, start_gateway, start_worker, wait_until


def _job(base: str, operation: str, params: dict, session: requests.Session) -> dict:
    response = session.post(f"{base}/api/jobs/{operation}/submit", json=params, timeout=10)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    def done():
        body = session.get(f"{base}/api/jobs/{job_id}/status", timeout=10).json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    return wait_until(done, timeout=600, interval=0.05, what=f"{operation} job")


def measure_analyses(base: str, runs: int) -> str:
    """Prints the figures; returns the id of the last job, for status polls."""
    session = requests.Session()
    for operation, variants in (("clustering", ({"seed": s} for s in itertools.count(1))),
                                ("phenotype_clustering", ({"ncp": n} for n in itertools.count(8)))):
        walls, peaks = [], []
        for params in itertools.islice(variants, runs):
            body = _job(base, operation, params, session)
            assert body["status"] == "completed", body
            walls.append((parse_time(body["completed_at"]) - parse_time(body["started_at"])).total_seconds())
            peaks.append(body["peak_memory_mb"])
        print(f"  {operation:<21} wall {statistics.median(walls):6.2f} s (median of {runs}, max {max(walls):.2f}), "
              f"peak RSS of the heavy worker {max(peaks):6.0f} MB", flush=True)
    return body["job_id"]


def keep_heavy_worker_busy(base: str, stop: threading.Event, counts: dict) -> None:
    session = requests.Session()
    seeds = itertools.count(1000)
    for operation in itertools.cycle(("clustering", "phenotype_clustering")):
        if stop.is_set():
            return
        params = {"seed": next(seeds)} if operation == "clustering" else {"ncp": 2 + next(seeds) % 30}
        body = _job(base, operation, params, session)
        counts[operation] = counts.get(operation, 0) + (body["status"] == "completed")


def load(base: str, path: str, seconds: float, threads: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client():
        session, mine = requests.Session(), []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = session.get(base + path, timeout=10)
            mine.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            time.sleep(0.005)  # steady load, not a flood: ~150 requests/s per thread at most
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each analysis (default 3)")
    parser.add_argument("--seconds", type=float, default=20, help="load duration per endpoint (default 20)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        redis = Redis(tmp / "redis")
        env = {"DATA_DIR": str(tmp / "data")}
        processes = []
        try:
            processes.append(start_worker(redis.url, "heavy", tmp, env=env))
            gateway, base = start_gateway(redis.url, tmp, workers=2)
            processes.append(gateway)

            print("heavy analyses on the shipped data (heavy worker):", flush=True)
            finished_id = measure_analyses(base, args.runs)
            # No light worker here: this job stays pending, like a job a client polls.
            active_id = requests.post(f"{base}/api/jobs/selftest/submit", json={"label": "probe"}, timeout=10).json()["job_id"]
            result_kb = len(requests.get(f"{base}/api/jobs/{finished_id}/result", timeout=10).content) / 1024
            stop, counts = threading.Event(), {}
            feeder = threading.Thread(target=keep_heavy_worker_busy, args=(base, stop, counts))
            feeder.start()
            time.sleep(1)
            print(f"gateway under steady load ({args.threads} client threads, {args.seconds:.0f} s per endpoint) "
                  f"while the heavy worker runs clustering and phenotype_clustering back to back:", flush=True)
            for label, path in (("GET /api/health", "/api/health"),
                                ("GET status, active job", f"/api/jobs/{active_id}/status"),
                                (f"GET status, done ({result_kb:.0f} KB)", f"/api/jobs/{finished_id}/status")):
                latencies = load(base, path, args.seconds, args.threads)
                print(f"  {label:<28} n={len(latencies):6d}  p50 {percentile(latencies, 50):6.2f} ms  "
                      f"p99 {percentile(latencies, 99):6.2f} ms  max {max(latencies):7.2f} ms "
                      f"(proposal: < 100 ms; aim: p99 < 20 ms)", flush=True)
            stop.set()
            feeder.join()
            print(f"  heavy jobs completed during the load: {counts}", flush=True)

            children = Path(f"/proc/{gateway.pid}/task/{gateway.pid}/children").read_text().split()
            sizes = ", ".join(f"{rss_mb(int(pid)):.0f} MB" for pid in children)
            print(f"  gateway resident memory: master {rss_mb(gateway.pid):.0f} MB, workers {sizes} "
                  f"(proposal: < 1 GB; aim: < 150 MB per process)", flush=True)
        finally:
            for process in reversed(processes):
                process.stop()
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
