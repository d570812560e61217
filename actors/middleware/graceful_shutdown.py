"""A grace period on SIGTERM: running jobs may finish, and are interrupted after it.

Dramatiq's own ShutdownNotifications interrupts jobs the moment the worker is told to
stop, and without it a job outliving the shutdown timeout is cut off with its record
left 'running'. Here a job gets ``grace_seconds`` to finish; after that it receives
Dramatiq's ``Shutdown`` exception, and JobRetries puts it back on its queue.
"""

from __future__ import annotations

import threading

from dramatiq.logging import get_logger
from dramatiq.middleware import Middleware, Shutdown
from dramatiq.middleware.threading import raise_thread_exception


class GracefulShutdown(Middleware):
    def __init__(self, grace_seconds: float):
        self.logger = get_logger(__name__, type(self))
        self.grace_seconds = grace_seconds
        self.running: set[int] = set()
        self.lock = threading.Lock()

    def before_process_message(self, broker, message):
        with self.lock:
            self.running.add(threading.get_ident())

    def after_process_message(self, broker, message, *, result=None, exception=None):
        with self.lock:
            self.running.discard(threading.get_ident())

    after_skip_message = after_process_message

    def before_worker_shutdown(self, broker, worker):
        timer = threading.Timer(self.grace_seconds, self._interrupt)
        timer.daemon = True
        timer.start()

    def _interrupt(self):
        with self.lock:
            threads = list(self.running)
        for thread_id in threads:
            self.logger.warning("Grace period over: interrupting the job in thread %d.", thread_id)
            raise_thread_exception(thread_id, Shutdown)
