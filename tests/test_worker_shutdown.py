"""SIGTERM on a worker mid-job: the job finishes within the grace period or goes back
to its queue; no record is left 'running' by a clean stop."""

from __future__ import annotations

import signal

import pytest

from actors.operations.selftest import RUNS_KEY
from tests.conftest import Stack
from tests.support.processes import start_gateway, start_worker


@pytest.fixture
def bare_stack(fresh_redis, logs):
    gateway, base = start_gateway(fresh_redis.url, logs)
    yield Stack(redis=fresh_redis, base=base, gateway=gateway)
    gateway.stop()


def test_job_that_finishes_within_the_grace_period_completes(bare_stack, logs):
    worker = start_worker(bare_stack.redis.url, "light", logs, env={"WORKER_SHUTDOWN_GRACE_SECONDS": "20"})
    job_id = bare_stack.submit("selftest", {"sleep_ms": 1500, "steps": 15}).json()["job_id"]
    bare_stack.wait_status(job_id, statuses=("running",))
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    record = bare_stack.store.get(job_id)
    assert record["status"] == "completed", record
    assert record["progress"]["current"] == 15
    worker.stop()


def test_job_outliving_the_grace_period_goes_back_to_the_queue(bare_stack, logs):
    worker = start_worker(bare_stack.redis.url, "light", logs, env={"WORKER_SHUTDOWN_GRACE_SECONDS": "1"})
    job_id = bare_stack.submit("selftest", {"sleep_ms": 6000, "steps": 60}).json()["job_id"]
    bare_stack.wait_status(job_id, statuses=("running",))
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    worker.stop()

    record = bare_stack.store.get(job_id)
    assert record["status"] == "pending", record
    assert record["error"]["code"] == "WORKER_SHUTDOWN"
    assert record["attempts"] == 1
    # It is back on its queue, not stuck in the stopped worker's hands.
    assert bare_stack.store.client.llen("dramatiq:light") == 1

    replacement = start_worker(bare_stack.redis.url, "light", logs)
    try:
        body = bare_stack.wait_status(job_id, timeout=60)
        assert body["status"] == "completed"
        assert body["attempts"] == 2
    finally:
        replacement.stop()


def test_a_stopping_worker_keeps_its_job_through_a_long_grace_period(bare_stack, logs):
    """Longer than the dead-worker timeout (8 s): the stopping worker must go on
    heartbeating, or another worker would take the job and run it a second time.
    Prefetch 1, as on the heavy queue: its busy consumer fetches nothing more."""
    stopping = start_worker(bare_stack.redis.url, "light", logs, threads=1,
                            env={"WORKER_SHUTDOWN_GRACE_SECONDS": "30", "dramatiq_queue_prefetch": "1"})
    job_id = bare_stack.submit("selftest", {"sleep_ms": 12_000, "steps": 120, "count_runs": True}).json()["job_id"]
    bare_stack.wait_status(job_id, statuses=("running",))
    other = start_worker(bare_stack.redis.url, "light", logs, threads=1)
    try:
        stopping.signal(signal.SIGTERM)
        assert stopping.wait(timeout=60) == 0
        record = bare_stack.store.get(job_id)
        assert record["status"] == "completed", record
        assert record["attempts"] == 1 and record["lost_runs"] == 0
        assert int(bare_stack.store.client.hget(RUNS_KEY, job_id)) == 1
    finally:
        stopping.stop()
        other.stop()
