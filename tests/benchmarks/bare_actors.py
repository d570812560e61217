"""The baseline: a bare Dramatiq 2.2 actor doing selftest's work, with Dramatiq's default
middleware and its Results middleware (what a Dramatiq user sets up to get results)."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from actors.operations.selftest import _sleep

broker = RedisBroker(url=os.environ["REDIS_URL"], namespace="bare")
broker.add_middleware(Results(backend=RedisBackend(url=os.environ["REDIS_URL"], namespace="bare-results")))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", store_results=True, max_retries=0)
def selftest(params):
    steps = params["steps"]
    for _ in range(steps):
        _sleep(params["sleep_ms"] / 1000 / steps)
    if params["fail"]:
        raise RuntimeError("asked to fail")
    return {"slept_ms": params["sleep_ms"], "steps": steps}
