"""The worker side of the catalog: a broker with our middleware and one actor per operation.

A worker process boots one queue (``boot("heavy")``) and so imports only that queue's
operation modules: the light workers never load the analysis stack.
"""

from __future__ import annotations

import importlib
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, TimeLimit
from dramatiq.results import Results
from dramatiq_abort.backends import RedisBackend as AbortBackend

from actors import catalog
from actors.broker import job_store, redis_client, retention_seconds
from actors.catalog import Operation
from actors.middleware.abort import RunningAbortable
from actors.middleware.follow_ups import FollowUps
from actors.middleware.graceful_shutdown import GracefulShutdown
from actors.middleware.heartbeat import WorkerHeartbeat
from actors.middleware.job_state import JobState
from actors.middleware.maintenance import MaintainedRedisBroker, QueueMaintenance
from actors.middleware.results import ReliableResultBackend
from actors.middleware.retries import JobRetries
from actors.params import validate
from actors.schedule import TICK_QUEUE, declare_ticks, periodiq_middleware

DEFAULT_GRACE_SECONDS = 30.0


def grace_seconds() -> float:
    return float(os.environ.get("WORKER_SHUTDOWN_GRACE_SECONDS", DEFAULT_GRACE_SECONDS))


def worker_broker(queues: tuple[str, ...]) -> RedisBroker:
    client = redis_client()
    store = job_store(redis_client(decode=True))
    # Dramatiq runs "before" hooks in this order and "after" hooks in reverse, so
    # JobState sees a finished message after Results has stored the result (no
    # 'completed' without one) and JobRetries has decided whether the failure is final;
    # FollowUps comes last of all, once the job is recorded completed.
    middleware = [
        FollowUps(store),
        WorkerHeartbeat(store, queues),
        JobState(store, one_job_at_a_time=os.environ.get("WORKER_THREADS") == "1"),
        TimeLimit(),
        GracefulShutdown(grace_seconds()),
        CurrentMessage(),
        RunningAbortable(backend=AbortBackend(client=client)),
        JobRetries(),
        Results(backend=ReliableResultBackend(client=client), result_ttl=retention_seconds() * 1000),
        periodiq_middleware(),
        QueueMaintenance(queues),
    ]
    return MaintainedRedisBroker(client=client, middleware=middleware)


def declare(broker: RedisBroker, operation: Operation, run) -> dramatiq.Actor:
    def job(params: dict):
        return run(validate(operation, params))

    job.__name__ = job.__qualname__ = operation.name
    return dramatiq.actor(
        job,
        actor_name=operation.name,
        queue_name=operation.queue,
        broker=broker,
        time_limit=operation.time_limit_seconds * 1000,
        max_retries=operation.max_retries,
        min_backoff=operation.min_backoff_ms,
        max_backoff=operation.max_backoff_ms,
        store_results=True,
    )


def boot(queue: str) -> RedisBroker:
    if queue not in catalog.QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {catalog.QUEUES}")
    broker = worker_broker((queue,))
    dramatiq.set_broker(broker)
    for operation in catalog.operations_on(queue):
        module = importlib.import_module(f"actors.operations.{operation.name}")
        declare(broker, operation, module.run)
    if queue == TICK_QUEUE:
        declare_ticks(broker)
    return broker
