"""Deterministic recovery of a dead worker's messages.

Stock Dramatiq puts a dead worker's unacknowledged messages back on their queue only
during "maintenance", which runs by chance on about 0.1% of Redis commands, and only
after 60 s without a heartbeat. A busy worker with nothing to fetch sends no command at
all, so it does not even heartbeat. Here every worker runs maintenance of its queues
on a fixed interval (which is also its heartbeat), with a short heartbeat timeout, so
a killed worker's job is back on its queue within timeout + interval.
"""

from __future__ import annotations

import os
import threading
import time

from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from dramatiq.logging import get_logger
from dramatiq.middleware import Middleware

from actors.middleware.reliability import wait_out_redis

#: A worker silent this long is dead and its messages are requeued (seconds).
DEAD_AFTER_SECONDS = float(os.environ.get("WORKER_DEAD_AFTER_SECONDS", "8"))
#: How often each worker heartbeats and requeues dead workers' messages (seconds).
MAINTENANCE_INTERVAL_SECONDS = float(os.environ.get("WORKER_MAINTENANCE_SECONDS", "1"))


class MaintainedRedisBroker(RedisBroker):
    """The workers' RedisBroker: maintenance runs when asked (``do_maintenance(queue)``),
    never by chance, and enqueueing waits out a Redis outage."""

    def __init__(self, **kwargs):
        kwargs.setdefault("heartbeat_timeout", int(DEAD_AFTER_SECONDS * 1000))
        super().__init__(**kwargs)

    def enqueue(self, message, *, delay=None):
        # Retries and requeues are enqueued from inside the worker: if that failed
        # during a Redis restart, the message would be acknowledged and the job lost.
        return wait_out_redis(self.logger, f"enqueueing {message.message_id}",
                              lambda: super(MaintainedRedisBroker, self).enqueue(message, delay=delay))

    def _should_do_maintenance(self, command: str) -> int:
        # dispatch.lua runs maintenance before its command; "maintenance" matches no
        # command, so the call does nothing else (but refresh this worker's heartbeat).
        return int(command == "maintenance")


class QueueMaintenance(Middleware):
    def __init__(self, queues: tuple[str, ...], interval: float = MAINTENANCE_INTERVAL_SECONDS):
        self.logger = get_logger(__name__, type(self))
        self.queues = [name for queue in queues for name in (queue, dq_name(queue))]
        self.interval = interval
        self.stopped = threading.Event()

    def after_worker_boot(self, broker, worker):
        threading.Thread(target=self._run, args=(broker,), name="maintenance", daemon=True).start()

    def after_worker_shutdown(self, broker, worker):
        # Not before: during the shutdown grace period a job may still be running here,
        # and a worker that stopped heartbeating would have it taken and run elsewhere.
        self.stopped.set()

    def _run(self, broker: MaintainedRedisBroker) -> None:
        # After an outage every worker's heartbeat is stale at once; requeueing now
        # would take running jobs from live workers. Only heartbeat until the others
        # have had a full timeout to come back.
        quiet_until = 0.0
        while not self.stopped.is_set():
            try:
                for queue in self.queues:
                    if time.monotonic() < quiet_until:
                        broker.do_qsize(queue)  # any command refreshes this worker's heartbeat
                    else:
                        broker.do_maintenance(queue)
            except Exception as e:  # Redis away: try again next round
                self.logger.warning("Queue maintenance failed: %s", e)
                quiet_until = time.monotonic() + broker.heartbeat_timeout / 1000 + self.interval
            self.stopped.wait(self.interval)
