"""Cancellation, the per-queue cap and routing, each on its own Redis and gateway so the
jobs can be held pending (no worker) while the test looks at them."""

from __future__ import annotations

import json

import pytest

from actors import catalog
from tests.conftest import Stack
from tests.support.processes import start_gateway, start_worker


@pytest.fixture
def idle_stack(fresh_redis, logs):
    """Redis and a gateway, no workers: every job stays pending."""
    gateway, base = start_gateway(fresh_redis.url, logs, env={"JOB_CAP_HEAVY": "3"})
    yield Stack(redis=fresh_redis, base=base, gateway=gateway)
    gateway.stop()


def _queued_actors(stack, queue: str) -> list[str]:
    client = stack.store.client
    ids = client.lrange(f"dramatiq:{queue}", 0, -1)
    return [json.loads(client.hget(f"dramatiq:{queue}.msgs", i))["actor_name"] for i in ids]


def test_each_operation_is_routed_to_its_queue(idle_stack):
    params = {"llm_generation": {"source_job_id": "x"}}
    for name, operation in catalog.CATALOG.items():
        response = idle_stack.submit(name, params.get(name, {}))
        assert response.status_code == 202, response.text
        assert response.json()["queue"] == operation.queue
    assert sorted(_queued_actors(idle_stack, "heavy")) == ["clustering", "llm_generation", "phenotype_clustering"]
    assert sorted(_queued_actors(idle_stack, "light")) == [
        "backup_create", "comparisons_update", "pubtator_update", "selftest",
    ]


def test_capacity_of_a_queue_is_503_with_retry_after(idle_stack):
    for seed in (1, 2, 3):
        assert idle_stack.submit("clustering", {"seed": seed}).status_code == 202
    response = idle_stack.submit("clustering", {"seed": 4})
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "CAPACITY_EXCEEDED" and body["message"]
    assert body["retry_after"] >= 1 and response.headers["Retry-After"] == str(body["retry_after"])
    # The light queue has its own cap.
    assert idle_stack.submit("selftest", {"sleep_ms": 1}).status_code == 202
    # A cancelled job frees its place.
    first = idle_stack.http.get(idle_stack.url("/api/jobs/history"), params={"operation": "clustering"}).json()
    idle_stack.http.delete(idle_stack.url(f"/api/jobs/{first['data'][0]['job_id']}"))
    assert idle_stack.submit("clustering", {"seed": 4}).status_code == 202


def test_cancel_pending_job_at_once_and_the_worker_skips_it(idle_stack, logs):
    job_id = idle_stack.submit("selftest", {"sleep_ms": 50}).json()["job_id"]
    response = idle_stack.http.delete(idle_stack.url(f"/api/jobs/{job_id}"), timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    body = idle_stack.status(job_id).json()
    assert body["status"] == "cancelled" and body["completed_at"]
    # Cancelling again: it has already ended.
    again = idle_stack.http.delete(idle_stack.url(f"/api/jobs/{job_id}"), timeout=10)
    assert again.status_code == 409 and again.json()["error"] == "JOB_FINISHED"

    # A worker that comes up later skips the cancelled message and runs the next job.
    later = idle_stack.submit("selftest", {"sleep_ms": 60}).json()["job_id"]
    worker = start_worker(idle_stack.redis.url, "light", logs)
    try:
        assert idle_stack.wait_status(later)["status"] == "completed"
        record = idle_stack.store.get(job_id)
        assert record["status"] == "cancelled" and record["attempts"] == 0
    finally:
        worker.stop()


def test_cancel_running_job_stops_it(stack, unique):
    job_id = stack.submit("selftest", {"sleep_ms": 20_000 + unique(), "steps": 200}).json()["job_id"]
    stack.wait_status(job_id, statuses=("running",))
    response = stack.http.delete(stack.url(f"/api/jobs/{job_id}"), timeout=10)
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    body = stack.wait_status(job_id, timeout=15)
    assert body["status"] == "cancelled"
    assert body["progress"]["current"] < 200
    # The worker is free again.
    follow = stack.submit("selftest", {"sleep_ms": unique()}).json()["job_id"]
    assert stack.wait_status(follow)["status"] == "completed"
