"""Waiting out a Redis outage inside a worker, for writes that must not be dropped."""

from __future__ import annotations

import os
import time

import redis

#: How long a write waits for Redis to come back before giving up (seconds).
REDIS_PATIENCE_SECONDS = float(os.environ.get("WORKER_REDIS_PATIENCE_SECONDS", "300"))


def wait_out_redis(logger, what: str, call):
    """``call()``, retried with backoff while Redis is unreachable (as Dramatiq itself
    does for acks): a job's record or result dropped during a Redis restart would be
    wrong for good."""
    deadline = time.monotonic() + REDIS_PATIENCE_SECONDS
    delay = 0.1
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if time.monotonic() > deadline:
                raise
            logger.warning("Redis unavailable while %s (%s); retrying in %.1f s.", what, e, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
