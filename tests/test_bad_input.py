"""Bad input gets a clear JSON error with a code and a message: never a traceback or a 500."""

from __future__ import annotations

import json

import pytest


def _assert_json_error(response, status: int, code: str):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2", b"\xff\xfe\x00garbage", b'{"sleep_ms": 1,}', b"nul"],
    ids=["broken-object", "broken-array", "not-utf8", "trailing-comma", "bare-word"],
)
def test_malformed_json_is_400(stack, body):
    response = stack.http.post(stack.url("/api/jobs/selftest/submit"), data=body,
                               headers={"Content-Type": "application/json"}, timeout=10)
    _assert_json_error(response, 400, "INVALID_PARAMS")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"sleep_ms": "100"}, "sleep_ms"),
        ({"sleep_ms": -1}, "sleep_ms"),
        ({"sleep_ms": 1.5}, "sleep_ms"),
        ({"steps": 0}, "steps"),
        ({"steps": True}, "steps"),
        ({"fail": "yes"}, "fail"),
        ({"unexpected": 1}, ""),
        ([1, 2, 3], ""),
        ("a string", ""),
        (42, ""),
        (None, ""),
    ],
)
def test_wrong_types_are_400_with_details(stack, params, field):
    response = stack.http.post(stack.url("/api/jobs/selftest/submit"), data=json.dumps(params), timeout=10)
    body = _assert_json_error(response, 400, "INVALID_PARAMS")
    assert any(detail["field"] == field for detail in body["details"]), body


def test_operation_schemas_are_enforced(stack):
    bad = {
        "clustering": {"algorithm": "kmeans"},
        "phenotype_clustering": {"ncp": 1},
        "llm_generation": {},
        "pubtator_update": {"query": ""},
        "comparisons_update": {"sources": {"x": 1}},
        "backup_create": {"keep": 0},
    }
    for operation, params in bad.items():
        _assert_json_error(stack.submit(operation, params), 400, "INVALID_PARAMS")


def test_huge_body_is_413(stack):
    response = stack.http.post(stack.url("/api/jobs/selftest/submit"), data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                               timeout=30)
    _assert_json_error(response, 413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"status": "sleeping"}, {"operation": "nope"}, {"cursor": "abc"}],
)
def test_bad_history_queries_are_400(stack, query):
    response = stack.http.get(stack.url("/api/jobs/history"), params=query, timeout=10)
    _assert_json_error(response, 400, "INVALID_PARAMS")


def test_unknown_routes_and_methods_are_json(stack):
    _assert_json_error(stack.http.get(stack.url("/api/nothing-here"), timeout=10), 404, "NOT_FOUND")
    _assert_json_error(stack.http.get(stack.url("/api/jobs/selftest/submit"), timeout=10), 405, "METHOD_NOT_ALLOWED")
    _assert_json_error(stack.http.put(stack.url("/api/health"), timeout=10), 405, "METHOD_NOT_ALLOWED")


def test_odd_job_ids_are_just_unknown(stack):
    for job_id in ["%00", "..", "a" * 500, "jobs:job:x", "*"]:
        response = stack.http.get(stack.url(f"/api/jobs/{job_id}/status"), timeout=10)
        assert response.status_code in (404,), (job_id, response.text)
        assert response.json()["error"] in ("JOB_NOT_FOUND", "NOT_FOUND")
