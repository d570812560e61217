"""Liveness (no Redis) and readiness (Redis, queue depths, live workers)."""

from __future__ import annotations

import os

import falcon
import redis

from actors import catalog
from gateway.backend import Backend

# A worker heartbeats every 2 s; three missed beats and it no longer counts.
WORKER_LIVENESS_SECONDS = float(os.environ.get("WORKER_LIVENESS_SECONDS", "6"))


class Health:
    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class Ready:
    def __init__(self, backend: Backend):
        self.backend = backend

    def on_get(self, req, resp):
        # "depth": messages waiting in Dramatiq's Redis list, not yet fetched by a worker.
        queue_keys = {queue: f"{self.backend.broker.namespace}:{queue}" for queue in catalog.QUEUES}
        try:
            queues = self.backend.store.queue_health(queue_keys, within_seconds=WORKER_LIVENESS_SECONDS)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "redis": "unreachable", "message": str(e)[:200],
                          "queues": {queue: None for queue in catalog.QUEUES}}
            return
        resp.media = {"status": "ok", "redis": "connected", "queues": queues}
