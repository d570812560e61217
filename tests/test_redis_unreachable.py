"""With Redis away the gateway answers fast and in JSON: 503 for what needs Redis."""

from __future__ import annotations


import requests

from infra.redis_server import free_port
from tests.support.processes import start_gateway


def test_gateway_without_redis_answers_503_json(logs):
    gateway, base = start_gateway(f"redis://127.0.0.1:{free_port()}/0", logs)
    try:
        assert requests.get(f"{base}/api/health", timeout=5).json() == {"status": "ok"}

        submit = requests.post(f"{base}/api/jobs/selftest/submit", json={}, timeout=5)
        assert submit.status_code == 503
        assert submit.json()["error"] == "BACKEND_UNAVAILABLE" and submit.json()["message"]

        status = requests.get(f"{base}/api/jobs/some-id/status", timeout=5)
        assert status.status_code == 503 and status.json()["error"] == "BACKEND_UNAVAILABLE"

        ready = requests.get(f"{base}/api/health/ready", timeout=5)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable" and body["redis"] == "unreachable"
        assert set(body["queues"]) == {"heavy", "light"}

        # Validation needs no Redis: bad input is still a 400, not a 503.
        assert requests.post(f"{base}/api/jobs/selftest/submit", json={"steps": 0}, timeout=5).status_code == 400
    finally:
        gateway.stop()
