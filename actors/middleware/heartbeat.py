"""Worker heartbeats per queue, so the gateway's readiness check can count live workers."""

from __future__ import annotations

import os
import socket
import threading

from dramatiq.logging import get_logger
from dramatiq.middleware import Middleware

from actors.job_store import JobStore

HEARTBEAT_INTERVAL_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_SECONDS", "2"))


class WorkerHeartbeat(Middleware):
    def __init__(self, store: JobStore, queues: tuple[str, ...]):
        self.logger = get_logger(__name__, type(self))
        self.store = store
        self.queues = queues
        self.stopped = threading.Event()
        self.worker_name = ""

    def after_worker_boot(self, broker, worker):
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        self.stopped.set()
        for queue in self.queues:
            try:
                self.store.leave(queue, self.worker_name)
            except Exception:  # Redis away: the heartbeat simply ages out.
                self.logger.warning("Could not deregister from queue %s.", queue)

    def _beat(self):
        while not self.stopped.is_set():
            try:
                for queue in self.queues:
                    self.store.heartbeat(queue, self.worker_name)
            except Exception as e:
                self.logger.warning("Heartbeat failed: %s", e)
            self.stopped.wait(HEARTBEAT_INTERVAL_SECONDS)
