"""Diagnostic operation for tests and benchmarks: sleeps in steps, reports progress, fails if asked."""

from __future__ import annotations

import time

from actors.errors import JobError
from actors.progress import report

# Sleep in short slices: an abort or shutdown arrives as an exception raised in this
# thread, and Python only delivers it between two slices.
_SLICE_SECONDS = 0.05


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, _SLICE_SECONDS))


def run(params: dict) -> dict:
    steps = params["steps"]
    per_step = params["sleep_ms"] / 1000 / steps
    for step in range(1, steps + 1):
        _sleep(per_step)
        report("sleep", current=step, total=steps, message=f"step {step} of {steps}")
    if params["fail"]:
        raise JobError("selftest failed because it was asked to", code="SELFTEST_FAILED")
    return {"slept_ms": params["sleep_ms"], "steps": steps}
