"""Restarts of Redis and of the gateway lose no acknowledged job and change no answer."""

from __future__ import annotations

import signal
import threading
import time

import requests

from actors.operations.selftest import RUNS_KEY
from tests.conftest import TERMINAL, Stack
from tests.support.processes import start_gateway, start_worker, wait_until


def test_redis_killed_and_restarted_mid_stream(fresh_redis, logs):
    gateway, base = start_gateway(fresh_redis.url, logs)
    worker = start_worker(fresh_redis.url, "light", logs)
    stack = Stack(redis=fresh_redis, base=base, gateway=gateway, light=worker)
    try:
        accepted = [stack.submit("selftest", {"sleep_ms": 300, "steps": 3, "count_runs": True, "label": str(i)})
                    .json()["job_id"] for i in range(40)]
        wait_until(lambda: stack.store.client.zcard("jobs:h:s:completed") >= 3, timeout=30, what="a few jobs done")

        # A crash of the Redis process, not a polite shutdown.
        fresh_redis.stop(signal.SIGKILL)
        # A hang would trip the client's timeout: the gateway must answer, and in JSON.
        down = requests.post(f"{base}/api/jobs/selftest/submit", json={"label": "during"}, timeout=2)
        assert down.status_code == 503 and down.json()["error"] == "BACKEND_UNAVAILABLE"
        assert requests.get(f"{base}/api/jobs/{accepted[0]}/status", timeout=5).json()["error"] == "BACKEND_UNAVAILABLE"
        assert requests.get(f"{base}/api/health", timeout=5).status_code == 200
        assert requests.get(f"{base}/api/health/ready", timeout=5).status_code == 503
        time.sleep(2)
        fresh_redis.start()  # same port, same append-only file

        # Workers and gateway reconnect by themselves; every acknowledged job ends once.
        for job_id in accepted:
            assert stack.wait_status(job_id, timeout=90)["status"] == "completed"
        runs = {job_id: int(stack.store.client.hget(RUNS_KEY, job_id) or 0) for job_id in accepted}
        assert set(runs.values()) == {1}, runs
        assert requests.get(f"{base}/api/health/ready", timeout=5).status_code == 200
        assert stack.submit("selftest", {"label": "after"}).status_code == 202
    finally:
        worker.stop()
        gateway.stop()


def test_gateway_restarted_while_clients_poll(fresh_redis, logs):
    worker = start_worker(fresh_redis.url, "light", logs)
    gateway, base = start_gateway(fresh_redis.url, logs, workers=2)
    port = int(base.rsplit(":", 1)[1])
    try:
        stack = Stack(redis=fresh_redis, base=base)
        jobs = [stack.submit("selftest", {"sleep_ms": 3000, "steps": 10, "label": str(i)}).json()["job_id"]
                for i in range(8)]
        answers, errors, stop = {}, [], threading.Event()

        def poll(job_id):
            session = requests.Session()
            while not stop.is_set():
                try:
                    body = session.get(f"{base}/api/jobs/{job_id}/status", timeout=2).json()
                    answers.setdefault(job_id, []).append(body["status"])
                    if body["status"] in TERMINAL:
                        return
                except requests.RequestException as e:
                    errors.append(type(e).__name__)
                time.sleep(0.05)

        pollers = [threading.Thread(target=poll, args=(job_id,)) for job_id in jobs]
        for poller in pollers:
            poller.start()
        time.sleep(0.5)
        gateway.kill_hard()
        gateway, _ = start_gateway(fresh_redis.url, logs, port=port, workers=2)
        for poller in pollers:
            poller.join(timeout=60)
        stop.set()
        # Every poller saw its job through to the end, across the restart.
        assert all(answers[job_id][-1] == "completed" for job_id in jobs), answers
        # The job store is the only state: the new gateway gives the same answers.
        for job_id in jobs:
            assert requests.get(f"{base}/api/jobs/{job_id}/status", timeout=5).json()["result"] == {
                "slept_ms": 3000, "steps": 10}
    finally:
        gateway.stop()
        worker.stop()
