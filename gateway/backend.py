"""What the gateway talks to in Redis: job store, Dramatiq's queues, results, aborts."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.brokers.redis import RedisBroker
from dramatiq.results.backends import RedisBackend as ResultBackend
from dramatiq_abort import Abortable
from dramatiq_abort.backends import RedisBackend as AbortBackend

from actors import broker as brokers
from actors.job_store import JobStore
from gateway.encoding import OrjsonEncoder

# A request must not hang on a Redis that is away: fail fast (no retries, short
# timeouts), answer 503 within a second.
GATEWAY_REDIS_TIMEOUT_SECONDS = 0.5


@dataclass
class Backend:
    store: JobStore
    broker: RedisBroker
    results: ResultBackend
    aborts: Abortable

    @classmethod
    def from_env(cls, url: str | None = None) -> "Backend":
        raw = brokers.redis_client(url, socket_timeout=GATEWAY_REDIS_TIMEOUT_SECONDS, retries=0)
        text = brokers.redis_client(url, socket_timeout=GATEWAY_REDIS_TIMEOUT_SECONDS, retries=0, decode=True)
        return cls(
            store=brokers.job_store(text),
            broker=brokers.enqueue_broker(raw),
            results=ResultBackend(client=raw, encoder=OrjsonEncoder()),
            aborts=Abortable(backend=AbortBackend(client=raw)),
        )
