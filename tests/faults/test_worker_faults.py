"""Fault injection with real processes and real signals: workers killed mid-job, a job
that keeps killing its worker, a job past its worker's memory limit."""

from __future__ import annotations

import time

import pytest

from actors.operations.selftest import RUNS_KEY
from tests.conftest import Stack
from tests.support import fake_apis
from tests.support.processes import start_gateway, start_worker, wait_until


@pytest.fixture
def bare_stack(fresh_redis, logs):
    gateway, base = start_gateway(fresh_redis.url, logs)
    stack = Stack(redis=fresh_redis, base=base, gateway=gateway)
    yield stack
    gateway.stop()


def _runner_of(stack, job_id: str, workers) -> object:
    pid = int(stack.store.get(job_id)["worker"].rsplit(":", 1)[1])
    return next(w for w in workers if pid in w.children())


def _wait_restarted(stack, job_id: str, attempts: int, timeout: float = 30) -> float:
    """Seconds until the job runs again (attempt ``attempts``) after its worker died."""
    killed = time.monotonic()
    wait_until(lambda: stack.store.get(job_id)["attempts"] >= attempts, timeout=timeout,
               what=f"attempt {attempts} of job {job_id}", interval=0.1)
    return time.monotonic() - killed


@pytest.mark.parametrize("queue", ["light", "heavy"])
def test_sigkilled_worker_job_runs_again_elsewhere(bare_stack, logs, queue):
    slow_llm = fake_apis.chat_completions(delay_seconds=1.0)
    env = {"LLM_BASE_URL": slow_llm.url, "LLM_MODEL": "slow", "LLM_RATE_LIMIT_PER_MINUTE": "0"}
    workers = [start_worker(bare_stack.redis.url, queue, logs, env=env, threads=1) for _ in range(2)]
    try:
        if queue == "light":
            job_id = bare_stack.submit("selftest", {"sleep_ms": 4000, "steps": 40, "count_runs": True}).json()["job_id"]
        else:
            # The heavy queue's slow job: LLM summaries of a clustering, one second per cluster.
            clustering = bare_stack.submit("clustering", {"seed": 3}).json()["job_id"]
            job_id = bare_stack.wait_status(clustering)["follow_up_job_id"]
        bare_stack.wait_status(job_id, statuses=("running",))
        victim = _runner_of(bare_stack, job_id, workers)
        survivor = next(w for w in workers if w is not victim)
        victim.kill_hard()
        recovery = _wait_restarted(bare_stack, job_id, attempts=2)
        body = bare_stack.wait_status(job_id, timeout=120)
        record = bare_stack.store.get(job_id)
        assert body["status"] == "completed", body
        assert record["attempts"] == 2 and record["lost_runs"] == 1
        assert int(record["worker"].rsplit(":", 1)[1]) in survivor.children()
        if queue == "light":
            assert int(bare_stack.store.client.hget(RUNS_KEY, job_id)) == 1
        print(f"\n{queue} worker SIGKILLed mid-job: job running again after {recovery:.1f} s")
    finally:
        for worker in workers:
            worker.stop()
        slow_llm.close()


def test_job_that_keeps_killing_its_worker_ends_worker_lost(bare_stack, logs):
    worker = start_worker(bare_stack.redis.url, "light", logs, threads=1)
    job_id = bare_stack.submit("selftest", {"sleep_ms": 60_000, "steps": 600, "label": "poison"}).json()["job_id"]
    try:
        for attempt in (1, 2):
            wait_until(lambda: bare_stack.store.get(job_id)["attempts"] == attempt
                       and bare_stack.store.get(job_id)["status"] == "running",
                       timeout=40, what=f"attempt {attempt}", interval=0.1)
            worker.kill_hard()
            worker = start_worker(bare_stack.redis.url, "light", logs, threads=1)
        body = bare_stack.wait_status(job_id, timeout=40)
        assert body["status"] == "failed"
        assert body["error"]["code"] == "WORKER_LOST"
        assert "died 2 times" in body["error"]["message"]
        assert body["attempts"] == 2
        # Not delivered again, and the worker is healthy: the next job runs.
        follow = bare_stack.submit("selftest", {"sleep_ms": 10}).json()["job_id"]
        assert bare_stack.wait_status(follow)["status"] == "completed"
        assert bare_stack.store.get(job_id)["attempts"] == 2
        assert bare_stack.store.client.llen("dramatiq:light") == 0
    finally:
        worker.stop()


def test_job_past_the_memory_limit_fails_and_the_worker_goes_on(bare_stack, logs):
    light = start_worker(bare_stack.redis.url, "light", logs, env={"WORKER_MEMORY_LIMIT_MB": "300"})
    heavy = start_worker(bare_stack.redis.url, "heavy", logs)
    try:
        hog = bare_stack.submit("selftest", {"allocate_mb": 600, "sleep_ms": 100}).json()["job_id"]
        body = bare_stack.wait_status(hog)
        assert body["status"] == "failed" and body["error"]["code"] == "MEMORY_LIMIT"
        assert body["attempts"] == 1  # not retried: it would fail the same way
        assert light.alive()
        small = bare_stack.submit("selftest", {"allocate_mb": 50, "sleep_ms": 100}).json()["job_id"]
        done = bare_stack.wait_status(small)
        assert done["status"] == "completed" and done["peak_memory_mb"] >= 50
        # The other queue and the gateway never noticed.
        ready = bare_stack.http.get(bare_stack.url("/api/health/ready"), timeout=5).json()
        assert ready["queues"]["heavy"]["workers"] == 1 and ready["queues"]["light"]["workers"] == 1
    finally:
        heavy.stop()
        light.stop()
