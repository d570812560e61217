"""Diagnostic operation for tests and benchmarks: sleeps in steps, reports progress, fails if asked."""

from __future__ import annotations

import time
from functools import lru_cache

from dramatiq.logging import get_logger
from dramatiq.middleware import CurrentMessage

from actors.broker import redis_client
from actors.errors import JobError
from actors.middleware.reliability import wait_out_redis
from actors.progress import report

# Sleep in short slices: an abort or shutdown arrives as an exception raised in this
# thread, and Python only delivers it between two slices.
_SLICE_SECONDS = 0.05


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, _SLICE_SECONDS))


RUNS_KEY = "jobs:selftest:runs"
logger = get_logger(__name__)


@lru_cache(maxsize=1)
def _runs_client():
    return redis_client()


def run(params: dict) -> dict:
    steps = params["steps"]
    per_step = params["sleep_ms"] / 1000 / steps
    # Written to, so the pages are really resident (a memory limit must see them).
    held = bytearray(b"x" * (params["allocate_mb"] * 1024 * 1024)) if params["allocate_mb"] else None
    for step in range(1, steps + 1):
        _sleep(per_step)
        report("sleep", current=step, total=steps, message=f"step {step} of {steps}")
    if params["fail"]:
        raise JobError("selftest failed because it was asked to", code="SELFTEST_FAILED")
    if params["count_runs"]:
        job = CurrentMessage.get_current_message()
        wait_out_redis(logger, "counting a run", lambda: _runs_client().hincrby(
            RUNS_KEY, job.message_id if job else "in-process", 1))
    del held
    return {"slept_ms": params["sleep_ms"], "steps": steps}
