"""Dramatiq's Redis result backend, waiting out a Redis outage instead of dropping a result."""

from __future__ import annotations

from dramatiq.logging import get_logger
from dramatiq.results.backends import RedisBackend

from actors.middleware.reliability import wait_out_redis


class ReliableResultBackend(RedisBackend):
    """With the stock backend a store error propagates and Dramatiq only logs it: the
    job would be recorded completed with its result gone."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.logger = get_logger(__name__, type(self))

    def _store(self, message_key, result, ttl):
        wait_out_redis(self.logger, "storing a result", lambda: super(ReliableResultBackend, self)._store(
            message_key, result, ttl))
