"""Submitting a job: validate, then record it and queue its Dramatiq message in one step.

Used by the gateway, the scheduler, follow-up jobs and the benchmark, so every job
enters the same way.
"""

from __future__ import annotations

import os
from uuid import uuid4

from dramatiq.brokers.redis import RedisBroker

from actors.broker import job_message
from actors.catalog import Operation
from actors.job_store import Admission, JobStore, QueuedMessage
from actors.params import validate

DEFAULT_QUEUE_CAPS = {"heavy": 20, "light": 1000}


def queue_cap(queue: str) -> int:
    """Most jobs a queue holds pending or running at once (JOB_CAP_HEAVY, JOB_CAP_LIGHT)."""
    return int(os.environ.get(f"JOB_CAP_{queue.upper()}", DEFAULT_QUEUE_CAPS.get(queue, 100)))


def queued_message(broker: RedisBroker, operation: Operation, job_id: str, params: dict) -> QueuedMessage:
    """The message as RedisBroker.enqueue would store it (same options, same keys)."""
    redis_message_id = str(uuid4())
    message = job_message(operation, job_id, params).copy(options={"redis_message_id": redis_message_id})
    queue_key = f"{broker.namespace}:{operation.queue}"
    return QueuedMessage(queue_key, f"{queue_key}.msgs", redis_message_id, message.encode())


def submit(store: JobStore, broker: RedisBroker, operation: Operation, params, *, cap: int | None = None) -> Admission:
    """Raises InvalidParams for bad parameters and redis errors when Redis is away."""
    params = validate(operation, params)
    job_id = str(uuid4())
    return store.admit(
        job_id, operation, params,
        cap=queue_cap(operation.queue) if cap is None else cap,
        message=queued_message(broker, operation, job_id, params),
    )
