"""Redis connections, the Dramatiq broker and the result backend, as each process needs them.

Light on purpose: the gateway imports this module to enqueue and to read results.
"""

from __future__ import annotations

import os

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results.backends import RedisBackend as ResultBackend

from actors.catalog import Operation
from actors.job_store import DEFAULT_LOST_RUNS_LIMIT, DEFAULT_RETENTION_SECONDS, JobStore

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def retention_seconds() -> int:
    return int(os.environ.get("JOB_RETENTION_SECONDS", DEFAULT_RETENTION_SECONDS))


def redis_client(url: str | None = None, *, socket_timeout: float = 10.0, retries: int = 3,
                 decode: bool = False) -> redis.Redis:
    """A client with bounded timeouts; ``retries`` quick retries of a failed command
    (with jittered backoff) ride out a dropped connection."""
    return redis.Redis.from_url(
        url or redis_url(),
        socket_connect_timeout=min(1.0, socket_timeout),
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        health_check_interval=15,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries),
        decode_responses=decode,
    )


def job_store(client: redis.Redis | None = None) -> JobStore:
    return JobStore(
        client or redis_client(),
        retention_seconds=retention_seconds(),
        lost_runs_limit=int(os.environ.get("WORKER_LOST_LIMIT", DEFAULT_LOST_RUNS_LIMIT)),
    )


def enqueue_broker(client: redis.Redis | None = None) -> RedisBroker:
    """The broker outside the workers: it names Dramatiq's queues in Redis (submission
    writes a job's message there itself, in one step with its record). No middleware:
    nothing is processed here."""
    return RedisBroker(client=client or redis_client(), middleware=[])


def result_backend(client: redis.Redis | None = None) -> ResultBackend:
    return ResultBackend(client=client or redis_client())


def job_message(operation: Operation, job_id: str, params: dict) -> Message:
    """The Dramatiq message of a job. Its message id is the job id, so the result
    backend and dramatiq-abort find a job by the id the client holds."""
    return Message(
        queue_name=operation.queue,
        actor_name=operation.name,
        args=(params,),
        kwargs={},
        options={},
        message_id=job_id,
    )
