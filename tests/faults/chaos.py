"""``nox -s faults``: a chaos run. Submits a few thousand mixed jobs through the gateway
while SIGKILLing random workers (a supervisor starts them again) and killing Redis once,
then checks that every accepted job reached a terminal state, none was lost, none ran to
completion twice and none is stuck 'running'. Prints the counts and recovery times.

Recovery time: from a worker's SIGKILL until each job it was running is running again
(or finished) on another worker.
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from actors.broker import job_store, redis_client
from actors.operations.selftest import RUNS_KEY
from tests.support.processes import Redis, start_gateway, start_worker, wait_until

TERMINAL = ("completed", "failed", "cancelled")


def mixed_job(i: int, rng: random.Random) -> tuple[str, dict]:
    roll = rng.random()
    if roll < 0.04:
        return "clustering", {"seed": i}
    if roll < 0.06:
        return "phenotype_clustering", {"ncp": 2 + i % 30, "max_clusters": 10 + i % 40}
    return "selftest", {"sleep_ms": rng.choice((0, 10, 50, 200, 1000)), "steps": rng.randint(1, 4),
                        "fail": rng.random() < 0.05, "count_runs": True, "label": f"chaos-{i}"}


class Chaos:
    def __init__(self, args, tmp: Path):
        self.args = args
        self.tmp = tmp
        self.rng = random.Random(args.seed)
        self.redis = Redis(tmp / "redis")
        self.store = job_store(redis_client(self.redis.url, decode=True))
        env = {"JOB_CAP_HEAVY": "100000", "JOB_CAP_LIGHT": "100000"}
        self.gateway, self.base = start_gateway(self.redis.url, tmp, workers=2, env=env)
        self.workers = [("heavy", start_worker(self.redis.url, "heavy", tmp)) for _ in range(args.heavy)]
        self.workers += [("light", start_worker(self.redis.url, "light", tmp)) for _ in range(args.light)]
        self.accepted: list[str] = []
        self.refused = collections.Counter()
        self.recoveries: list[float] = []
        self.kills = 0
        self.done_submitting = threading.Event()

    # -- clients ------------------------------------------------------------------------

    def submit(self, i: int) -> None:
        operation, params = mixed_job(i, random.Random(self.args.seed * 100_000 + i))
        session = requests.Session()
        for _ in range(200):
            try:
                response = session.post(f"{self.base}/api/jobs/{operation}/submit", json=params, timeout=5)
            except requests.RequestException:
                self.refused["connection"] += 1
                time.sleep(0.2)
                continue
            if response.status_code == 202:
                self.accepted.append(response.json()["job_id"])
                return
            code = response.json().get("error", str(response.status_code))
            self.refused[code] += 1
            if code != "BACKEND_UNAVAILABLE":
                return  # a duplicate of an active job: not a new job
            time.sleep(0.2)

    def submit_all(self) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for i in range(self.args.jobs):
                pool.submit(self.submit, i)
                time.sleep(self.args.seconds / self.args.jobs)
        self.done_submitting.set()

    # -- faults -------------------------------------------------------------------------

    def running_on(self, pids: list[int]) -> list[str]:
        return [job["job_id"] for job in self.store.history(limit=100, status="running")[0]
                if job["worker"] and int(job["worker"].rsplit(":", 1)[1]) in pids]

    def kill_worker(self) -> None:
        index = self.rng.randrange(len(self.workers))
        queue, victim = self.workers[index]
        pids = victim.children()
        victims = self.running_on(pids)
        before = {job_id: self.store.get(job_id)["attempts"] for job_id in victims}
        victim.kill_hard()
        killed_at = time.monotonic()
        self.kills += 1
        # The supervisor (compose's restart policy, the stack runner) starts it again.
        self.workers[index] = (queue, start_worker(self.redis.url, queue, self.tmp))
        for job_id, attempts in before.items():
            def moved_on(job_id=job_id, attempts=attempts):
                record = self.store.get(job_id)
                return record["attempts"] > attempts or record["status"] in TERMINAL
            wait_until(moved_on, timeout=120, what=f"job {job_id} to run again", interval=0.1)
            self.recoveries.append(time.monotonic() - killed_at)

    def restart_redis(self) -> None:
        self.redis.stop(signal.SIGKILL)
        time.sleep(2)
        self.redis.start()

    def inflict(self) -> None:
        redis_restarted = False
        while not self.done_submitting.is_set():
            time.sleep(self.args.seconds / (self.args.kills + 1))
            if not redis_restarted and self.kills >= self.args.kills // 2:
                self.restart_redis()
                redis_restarted = True
            elif not self.done_submitting.is_set():
                self.kill_worker()
        if not redis_restarted:
            self.restart_redis()

    # -- verdict ------------------------------------------------------------------------

    def settle(self) -> None:
        def all_terminal():
            with self.store.client.pipeline(transaction=False) as pipe:
                for job_id in self.accepted:
                    pipe.hget(f"jobs:job:{job_id}", "status")
                return all(status in TERMINAL for status in pipe.execute())

        wait_until(all_terminal, timeout=self.args.settle, what="every job to finish", interval=1)

    def report(self) -> bool:
        statuses, codes, lost, stuck = collections.Counter(), collections.Counter(), [], []
        for job_id in self.accepted:
            record = self.store.get(job_id)
            if record is None:
                lost.append(job_id)
                continue
            statuses[record["status"]] += 1
            if record["status"] == "failed":
                codes[record["error"]["code"]] += 1
            if record["status"] in ("running", "pending"):
                stuck.append(job_id)
        runs = self.store.client.hgetall(RUNS_KEY)
        twice = [job_id for job_id, count in runs.items() if int(count) > 1]
        running_left = self.store.client.zcard("jobs:h:s:running")
        worst = max(self.recoveries, default=0.0)
        print(f"chaos run: {len(self.accepted)} jobs submitted ({sum(self.refused.values())} refused: "
              f"{dict(self.refused)}), {self.kills} workers SIGKILLed, Redis SIGKILLed and restarted once")
        print(f"  completed:        {statuses['completed']}")
        print(f"  failed:           {statuses['failed']} {dict(codes)}")
        print(f"  cancelled:        {statuses['cancelled']}")
        print(f"  lost:             {len(lost)}")
        print(f"  completed twice:  {len(twice)}")
        print(f"  stuck:            {len(stuck) + running_left}")
        if self.recoveries:
            print(f"  recovery times:   {len(self.recoveries)} interrupted jobs, median "
                  f"{sorted(self.recoveries)[len(self.recoveries) // 2]:.1f} s, worst {worst:.1f} s (goal: at most 15 s)")
        else:
            print("  recovery times:   no job was running on a killed worker")
        return not lost and not twice and not stuck and not running_left

    def close(self) -> None:
        for _, worker in self.workers:
            worker.stop()
        self.gateway.stop()
        self.redis.stop()


def run(args) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        chaos = Chaos(args, Path(tmp))
        try:
            faults = threading.Thread(target=chaos.inflict)
            faults.start()
            chaos.submit_all()
            faults.join()
            chaos.settle()
            return chaos.report()
        finally:
            chaos.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=3000)
    p.add_argument("--seconds", type=float, default=90, help="how long submitting takes")
    p.add_argument("--kills", type=int, default=8, help="workers SIGKILLed during the run")
    p.add_argument("--light", type=int, default=2, help="light workers")
    p.add_argument("--heavy", type=int, default=1, help="heavy workers")
    p.add_argument("--settle", type=float, default=300, help="how long to wait for the last jobs")
    p.add_argument("--seed", type=int, default=1)
    return p


if __name__ == "__main__":
    sys.exit(0 if run(parser().parse_args()) else 1)
