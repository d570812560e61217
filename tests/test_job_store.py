"""The job store on a real Redis: atomic admission, state moves, retention, history."""

from __future__ import annotations

import json
import threading
import time

import pytest

from actors import catalog
from actors.broker import enqueue_broker, redis_client
from actors.job_store import JobStore
from actors.submission import queued_message, submit

SELFTEST = catalog.get("selftest")
CLUSTERING = catalog.get("clustering")


@pytest.fixture
def store(fresh_redis):
    return JobStore(redis_client(fresh_redis.url, decode=True), retention_seconds=2)


def admit(store: JobStore, job_id: str, operation, params: dict, *, cap: int):
    # Only the broker's namespace is read: where its queue keys are.
    message = queued_message(enqueue_broker(store.client), operation, job_id, params)
    return store.admit(job_id, operation, params, cap=cap, message=message)


def test_concurrent_identical_submissions_make_one_job(store, fresh_redis):
    broker = enqueue_broker(redis_client(fresh_redis.url))
    outcomes, barrier = [], threading.Barrier(16)

    def race():
        barrier.wait()
        outcomes.append(submit(store, broker, SELFTEST, {"sleep_ms": 5}))

    threads = [threading.Thread(target=race) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [a for a in outcomes if a.outcome == "accepted"]
    assert len(accepted) == 1
    assert {a.job_id for a in outcomes} == {accepted[0].job_id}
    assert store.client.llen("dramatiq:light") == 1
    assert json.loads(store.client.hget("dramatiq:light.msgs", store.client.lindex("dramatiq:light", 0)))[
        "message_id"] == accepted[0].job_id


def test_cap_counts_pending_and_running_only(store):
    first = admit(store, "a", CLUSTERING, {"seed": 1}, cap=2)
    admit(store, "b", CLUSTERING, {"seed": 2}, cap=2)
    assert admit(store, "c", CLUSTERING, {"seed": 3}, cap=2).outcome == "capacity"
    assert store.start(first.job_id, "w:1") == ("running", 1)
    assert admit(store, "c", CLUSTERING, {"seed": 3}, cap=2).outcome == "capacity"
    store.finish(first.job_id, "completed")
    assert admit(store, "c", CLUSTERING, {"seed": 3}, cap=2).outcome == "accepted"


def test_finished_records_expire_after_retention_and_leave_history(store):
    admit(store, "old", SELFTEST, {"label": "old"}, cap=10)
    store.start("old", "w:1")
    store.finish("old", "failed", error_code="X", error_message="boom")
    admit(store, "new", SELFTEST, {"label": "new"}, cap=10)
    assert 0 < store.client.ttl("jobs:job:old") <= 2
    assert store.client.ttl("jobs:job:new") == -1  # active records never expire

    time.sleep(2.5)
    assert store.get("old") is None
    items, cursor = store.history(limit=10)
    assert [item["job_id"] for item in items] == ["new"] and cursor is None
    assert store.client.zscore("jobs:h:all", "old") is None
    assert store.client.zscore("jobs:h:os:selftest:failed", "old") is None


def test_a_finished_job_cannot_be_restarted_or_finished_again(store):
    admit(store, "j", SELFTEST, {}, cap=10)
    store.start("j", "w:1")
    assert store.finish("j", "completed") == "ok"
    assert store.finish("j", "failed", error_code="LATE") == "completed"
    assert store.start("j", "w:2")[0] == "completed"
    assert store.get("j")["error"] is None
    assert not store.progress("j", step="late")


def test_cancel_moves_pending_at_once_and_flags_running(store):
    admit(store, "p", SELFTEST, {"label": "p"}, cap=10)
    admit(store, "r", SELFTEST, {"label": "r"}, cap=10)
    store.start("r", "w:1")
    assert store.cancel("p") == "cancelled"
    assert store.cancel("r") == "running"
    assert store.get("r")["cancel_requested"] is True
    assert store.cancel("p") == "finished"
    assert store.cancel("nope") == "missing"
    assert store.start("p", "w:1")[0] == "cancelled"
    assert store.active_count("light") == 1


def test_history_pages_through_every_job_once(store):
    for i in range(25):
        admit(store, f"j{i:02}", SELFTEST, {"label": str(i)}, cap=100)
    seen, cursor = [], None
    while True:
        items, cursor = store.history(limit=7, cursor=cursor)
        seen += [item["job_id"] for item in items]
        if cursor is None:
            break
    assert seen == [f"j{i:02}" for i in reversed(range(25))]
    # A page that ends exactly at the last job says there is no next one.
    items, cursor = store.history(limit=25)
    assert len(items) == 25 and cursor is None


def test_status_indexes_follow_the_record(store):
    admit(store, "j", SELFTEST, {}, cap=10)
    assert [i["job_id"] for i in store.history(limit=5, status="pending")[0]] == ["j"]
    store.start("j", "w:1")
    assert store.history(limit=5, status="pending")[0] == []
    assert [i["job_id"] for i in store.history(limit=5, status="running", operation="selftest")[0]] == ["j"]
    store.requeue("j", error_code="TRANSIENT_ERROR", error_message="503 from upstream")
    record = store.get("j")
    assert record["status"] == "pending" and record["error"]["code"] == "TRANSIENT_ERROR"
    assert [i["job_id"] for i in store.history(limit=5, status="pending", operation="selftest")[0]] == ["j"]
