"""Real processes for tests and benchmarks: Redis servers, workers and gateways on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from infra import redis_server

ROOT = Path(__file__).resolve().parents[2]


class Redis:
    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or redis_server.free_port()
        self.process = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = redis_server.start(self.port, self.data_dir)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


class Process:
    """A child process with its output in a log file, stopped and reaped by ``stop``."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.process = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[int]:
        try:
            return [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        except OSError:
            return []

    def kill_hard(self) -> None:
        """SIGKILL the process and the workers it forked, as the kernel's OOM killer or
        a crash would: nothing gets to clean up."""
        for pid in self.children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.kill()
        self.process.wait()


def start_worker(redis_url: str, queue: str, log_dir: Path, *, env: dict | None = None, threads: int | None = None) -> Process:
    args = [sys.executable, "-m", "actors.worker", f"--queue={queue}"]
    if threads:
        args.append(f"--threads={threads}")
    worker = Process(f"worker-{queue}", args, {"REDIS_URL": redis_url, **(env or {})}, log_dir)
    wait_for_log(worker, "Worker process is ready for action")
    return worker


def start_gateway(redis_url: str, log_dir: Path, *, env: dict | None = None, workers: int = 1,
                  port: int | None = None) -> tuple[Process, str]:
    port = port or redis_server.free_port()
    gateway = Process(
        "gateway",
        [sys.executable, "-m", "gunicorn", "-c", "infra/gunicorn.conf.py", "gateway.wsgi:app"],
        {"REDIS_URL": redis_url, "GATEWAY_PORT": str(port), "GATEWAY_WORKERS": str(workers), **(env or {})},
        log_dir,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(base), timeout=30, what=f"gateway on {base}", process=gateway)
    return gateway, base


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/api/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_for_log(process: Process, text: str, timeout: float = 30) -> None:
    wait_until(lambda: text in process.log(), timeout=timeout, what=f"{text!r} in {process.name}'s log", process=process)


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05, process: Process | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and not process.alive():
            raise AssertionError(f"{process.name} exited ({process.process.returncode}) waiting for {what}:\n{process.log()[-3000:]}")
        time.sleep(interval)
    detail = f"\n{process.log()[-3000:]}" if process is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")
