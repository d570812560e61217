"""The local stack behind ``nox -s up``: the compose topology as plain processes.

Redis (its own, with append-only persistence under ``var/redis``, unless REDIS_URL is
set), the gateway on http://127.0.0.1:$GATEWAY_PORT (8080), one heavy worker, two
light workers and the scheduler. In the foreground until Ctrl-C; a process that dies is started again,
and stopping the stack stops every process it started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra import redis_server

ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 45
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If this runner is killed outright, the kernel sends SIGTERM to each child, so
    # nothing it started outlives it.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict = field(default_factory=dict)
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        # A session of its own: Ctrl-C reaches only this runner, which then sends each
        # service one SIGTERM (a second one would cut a worker's grace period short).
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=env, preexec_fn=_die_with_parent,
                                        start_new_session=True)
        self.started_at = time.monotonic()
        print(f"[stack] started {self.name} (pid {self.process.pid})", flush=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def services(redis_url: str) -> list[Service]:
    python = sys.executable
    env = {"REDIS_URL": redis_url}
    return [
        Service("gateway", [python, "-m", "gunicorn", "-c", "infra/gunicorn.conf.py", "gateway.wsgi:app"], env),
        Service("worker-heavy", [python, "-m", "actors.worker", "--queue=heavy"], env),
        Service("worker-light-1", [python, "-m", "actors.worker", "--queue=light"], env),
        Service("worker-light-2", [python, "-m", "actors.worker", "--queue=light"], env),
        Service("scheduler", [python, "-m", "actors.schedule"], env),
    ]


def stop_all(running: list[Service]) -> None:
    for service in running:
        if service.alive():
            service.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for service in running:
        if service.process is None:
            continue
        try:
            service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[stack] {service.name} did not stop in time; killing it", flush=True)
            service.process.kill()
            service.process.wait()


def main() -> int:
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    redis_url = os.environ.get("REDIS_URL")
    redis = None
    if not redis_url:
        port = int(os.environ.get("REDIS_PORT") or redis_server.free_port())
        data_dir = Path(os.environ.get("REDIS_DATA_DIR", ROOT / "var" / "redis"))
        redis = redis_server.start(port, data_dir, preexec_fn=_die_with_parent, start_new_session=True)
        redis_url = f"redis://127.0.0.1:{port}/0"
        print(f"[stack] redis-server {redis_server.binary()} on {redis_url}, data in {data_dir}", flush=True)

    running = services(redis_url)
    for service in running:
        service.start()
    port = os.environ.get("GATEWAY_PORT", "8080")
    print(f"[stack] gateway on http://127.0.0.1:{port} -- Ctrl-C stops everything", flush=True)

    try:
        while not stopping:
            for service in running:
                if not stopping and not service.alive():
                    # Back off only for a service that keeps dying right after its start.
                    if time.monotonic() - service.started_at > 60:
                        service.restarts = 0
                    service.restarts += 1
                    print(f"[stack] {service.name} exited with {service.process.returncode}; restarting "
                          f"(restart #{service.restarts})", flush=True)
                    time.sleep(min(10, 0.5 * 2 ** (service.restarts - 1)))
                    service.start()
            time.sleep(0.5)
    finally:
        print("[stack] stopping...", flush=True)
        stop_all(running)
        if redis is not None:
            redis.send_signal(signal.SIGTERM)
            redis.wait(timeout=30)
        print("[stack] stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
