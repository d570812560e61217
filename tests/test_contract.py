"""The HTTP contract, over real HTTP, through gunicorn, to real workers on real Redis."""

from __future__ import annotations

from actors import catalog
from actors.broker import job_message, result_backend
from tests.support.processes import wait_until


def test_submit_answers_202_with_location_and_retry_after(stack, unique):
    response = stack.submit("selftest", {"sleep_ms": unique()})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_id", "status", "operation", "queue", "estimated_seconds", "status_url"}
    assert body["status"] == "accepted"
    assert body["operation"] == "selftest"
    assert body["queue"] == "light"
    assert body["status_url"] == f"/api/jobs/{body['job_id']}/status"
    assert response.headers["Location"] == body["status_url"]
    assert int(response.headers["Retry-After"]) >= 1


def test_empty_body_is_allowed_and_defaults_apply(stack):
    response = stack.http.post(stack.url("/api/jobs/backup_create/submit"), data=b"", timeout=10)
    assert response.status_code in (202, 409), response.text
    job_id = response.json().get("job_id") or response.json()["existing_job_id"]
    assert stack.store.get(job_id)["params"] == {"keep": 7}


def test_selftest_completes_with_result_and_progress(stack, unique):
    sleep_ms = 300 + unique()
    job_id = stack.submit("selftest", {"sleep_ms": sleep_ms, "steps": 3}).json()["job_id"]
    body = stack.wait_status(job_id)
    assert body["status"] == "completed"
    assert body["result"] == {"slept_ms": sleep_ms, "steps": 3}
    assert body["progress"] == {"step": "sleep", "message": "step 3 of 3", "current": 3, "total": 3}
    assert body["step"] == "sleep"
    assert body["attempts"] == 1
    assert body["started_at"] and body["completed_at"] and body["submitted_at"]
    assert body["submitted_at"] <= body["started_at"] <= body["completed_at"]
    assert "retry_after" not in body and "Retry-After" not in stack.status(job_id).headers

    result = stack.http.get(stack.url(f"/api/jobs/{job_id}/result"), timeout=10)
    assert result.status_code == 200
    assert result.json() == {"slept_ms": sleep_ms, "steps": 3}

    # The record and its result (Dramatiq's Results backend) expire together.
    retention = stack.store.retention_seconds
    record_ttl = stack.store.client.ttl(f"jobs:job:{job_id}")
    result_key = result_backend().build_message_key(job_message(catalog.get("selftest"), job_id, {}))
    result_ttl = stack.store.client.pttl(result_key) / 1000
    assert retention - 60 < record_ttl <= retention
    assert retention - 60 < result_ttl <= retention


def test_progress_is_visible_while_the_job_runs(stack, unique):
    job_id = stack.submit("selftest", {"sleep_ms": 3000 + unique(), "steps": 10}).json()["job_id"]

    def mid_run():
        response = stack.status(job_id)
        body = response.json()
        if body["status"] == "running" and body["progress"]["current"] and body["progress"]["current"] < 10:
            return body, response.headers
        return None

    body, headers = wait_until(mid_run, timeout=30, what="a progress report mid-run")
    assert body["progress"]["total"] == 10
    assert body["progress"]["message"].startswith("step ")
    assert body["retry_after"] >= 1 and int(headers["Retry-After"]) == body["retry_after"]
    assert stack.wait_status(job_id)["status"] == "completed"


def test_result_before_the_end_is_409(stack, unique):
    job_id = stack.submit("selftest", {"sleep_ms": 2000 + unique(), "steps": 4}).json()["job_id"]
    response = stack.http.get(stack.url(f"/api/jobs/{job_id}/result"), timeout=10)
    assert response.status_code == 409
    assert response.json()["error"] == "JOB_NOT_FINISHED"
    stack.wait_status(job_id)


def test_failing_job_ends_failed_at_once_with_its_error(stack, unique):
    job_id = stack.submit("selftest", {"sleep_ms": unique(), "fail": True}).json()["job_id"]
    body = stack.wait_status(job_id)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "SELFTEST_FAILED"
    assert "asked to" in body["error"]["message"]
    assert body["attempts"] == 1  # selftest has no retries
    assert "result" not in body
    result = stack.http.get(stack.url(f"/api/jobs/{job_id}/result"), timeout=10)
    assert result.status_code == 409 and result.json()["error"] == "JOB_NOT_COMPLETED"


def test_unknown_job_is_404_everywhere(stack):
    for method, path in [("get", "/status"), ("get", "/result"), ("delete", "")]:
        response = stack.http.request(method, stack.url(f"/api/jobs/no-such-job{path}"), timeout=10)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "JOB_NOT_FOUND"
        assert response.json()["message"]


def test_unknown_operation_is_404(stack):
    response = stack.submit("no_such_operation", {})
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "UNKNOWN_OPERATION"
    assert "selftest" in body["operations"]


def test_duplicate_of_an_active_job_is_409(stack, unique):
    params = {"sleep_ms": 2000 + unique(), "steps": 2}
    first = stack.submit("selftest", params).json()["job_id"]
    # The same parameters spelled differently (defaults written out) are the same job.
    second = stack.submit("selftest", {**params, "fail": False})
    assert second.status_code == 409
    body = second.json()
    assert body["error"] == "DUPLICATE_JOB"
    assert body["existing_job_id"] == first
    assert body["status_url"] == f"/api/jobs/{first}/status"
    assert body["message"]
    stack.wait_status(first)
    # Once it has finished, the same job may run again.
    assert stack.submit("selftest", params).status_code == 202


def test_history_lists_newest_first_with_filters_and_cursor(stack, unique):
    ids = [stack.submit("selftest", {"sleep_ms": unique()}).json()["job_id"] for _ in range(5)]
    failed = stack.submit("selftest", {"sleep_ms": unique(), "fail": True}).json()["job_id"]
    for job_id in ids + [failed]:
        stack.wait_status(job_id)

    page = stack.http.get(stack.url("/api/jobs/history"), params={"limit": 3, "operation": "selftest"}, timeout=10).json()
    assert page["meta"]["count"] == 3 and page["meta"]["limit"] == 3
    assert [item["job_id"] for item in page["data"]] == [failed, ids[4], ids[3]]
    assert page["meta"]["next_cursor"]
    item = page["data"][1]
    assert set(item) == {"job_id", "operation", "status", "queue", "submitted_at", "completed_at",
                         "duration_seconds", "error_message"}
    assert item["status"] == "completed" and item["duration_seconds"] >= 0 and item["error_message"] is None

    following = stack.http.get(
        stack.url("/api/jobs/history"),
        params={"limit": 3, "operation": "selftest", "cursor": page["meta"]["next_cursor"]}, timeout=10,
    ).json()
    assert [item["job_id"] for item in following["data"]] == [ids[2], ids[1], ids[0]]

    failures = stack.http.get(stack.url("/api/jobs/history"), params={"status": "failed", "limit": 100}, timeout=10).json()
    assert failed in [item["job_id"] for item in failures["data"]]
    assert all(item["status"] == "failed" for item in failures["data"])
    assert next(i for i in failures["data"] if i["job_id"] == failed)["error_message"]


def test_health_needs_no_redis_and_ready_counts_workers(stack):
    assert stack.http.get(stack.url("/api/health"), timeout=10).json() == {"status": "ok"}
    ready = stack.http.get(stack.url("/api/health/ready"), timeout=10)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok" and body["redis"] == "connected"
    assert body["queues"]["heavy"]["workers"] == 1
    assert body["queues"]["light"]["workers"] == 1
    assert body["queues"]["light"]["depth"] >= 0
