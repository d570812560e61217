"""Submitting a job: validate, admit into the job store, enqueue the Dramatiq message.

Used by the gateway, the scheduler and the benchmark, so every job enters the same way.
"""

from __future__ import annotations

import os
from uuid import uuid4

from dramatiq.brokers.redis import RedisBroker

from actors.broker import job_message
from actors.catalog import Operation
from actors.job_store import Admission, JobStore
from actors.params import validate

DEFAULT_QUEUE_CAPS = {"heavy": 20, "light": 1000}


def queue_cap(queue: str) -> int:
    """Most jobs a queue holds pending or running at once (JOB_CAP_HEAVY, JOB_CAP_LIGHT)."""
    return int(os.environ.get(f"JOB_CAP_{queue.upper()}", DEFAULT_QUEUE_CAPS.get(queue, 100)))


def submit(store: JobStore, broker: RedisBroker, operation: Operation, params, *, cap: int | None = None) -> Admission:
    """Raises InvalidParams for bad parameters and redis errors when Redis is away."""
    params = validate(operation, params)
    job_id = str(uuid4())
    admission = store.admit(job_id, operation, params, cap=queue_cap(operation.queue) if cap is None else cap)
    if admission.outcome == "accepted":
        try:
            broker.enqueue(job_message(operation, job_id, params))
        except Exception:
            # Without its message the record would wait forever: release it.
            try:
                store.discard(job_id)
            finally:
                raise
    return admission
