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
        try:
            queues = {queue: self._queue(queue) for queue in catalog.QUEUES}
        except (redis.ConnectionError, redis.TimeoutError) as e:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "unavailable", "redis": "unreachable", "message": str(e)[:200],
                          "queues": {queue: None for queue in catalog.QUEUES}}
            return
        resp.media = {"status": "ok", "redis": "connected", "queues": queues}

    def _queue(self, queue: str) -> dict:
        store = self.backend.store
        return {
            # Messages waiting in Dramatiq's Redis list, not yet fetched by a worker.
            "depth": store.client.llen(f"{self.backend.broker.namespace}:{queue}"),
            "active_jobs": store.active_count(queue),
            "workers": store.live_workers(queue, within_seconds=WORKER_LIVENESS_SECONDS),
        }
