"""``nox -s up``'s stack runner: the whole topology, a dead service restarted, and Ctrl-C
leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import sys

import requests

from infra.redis_server import free_port
from tests.support.processes import Process, wait_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its parent to reap it is gone all the same.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def _family(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as f:
                todo += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def test_stack_runs_restarts_and_stops_cleanly(tmp_path, logs):
    port = free_port()
    env = {"GATEWAY_PORT": str(port), "REDIS_DATA_DIR": str(tmp_path / "redis"), "DATA_DIR": str(tmp_path / "data"),
           "REDIS_URL": ""}
    stack = Process("stack", [sys.executable, "-m", "infra.stack"], env, logs)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            try:
                body = requests.get(f"{base}/api/health/ready", timeout=2).json()
            except requests.RequestException:
                return None
            workers = {queue: info["workers"] for queue, info in (body.get("queues") or {}).items() if info}
            return workers if workers == {"heavy": 1, "light": 2} else None

        wait_until(ready, timeout=90, what="the stack to come up", process=stack)
        job_id = requests.post(f"{base}/api/jobs/selftest/submit", json={"sleep_ms": 100}, timeout=5).json()["job_id"]
        wait_until(lambda: requests.get(f"{base}/api/jobs/{job_id}/status", timeout=5).json()["status"] == "completed",
                   timeout=30, what="the selftest job")

        victim = int(re.search(r"started worker-light-1 \(pid (\d+)\)", stack.log()).group(1))
        for pid in _family(victim):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: stack.log().count("started worker-light-1") == 2, timeout=30,
                   what="worker-light-1 to be restarted", process=stack)
        wait_until(ready, timeout=60, what="two light workers again", process=stack)

        everything = _family(stack.pid) - {stack.pid}
        assert len(everything) >= 6  # redis, gunicorn, 3 workers (+ their forks), scheduler
    finally:
        stack.signal(signal.SIGINT)
        assert stack.wait(timeout=90) == 0
        stack.stop()
    assert "[stack] stopped" in stack.log()
    assert [pid for pid in everything if _alive(pid)] == []
