"""Moves job records through their states as the worker processes messages."""

from __future__ import annotations

import os
import socket
import threading

from dramatiq.logging import get_logger
from dramatiq.middleware import Middleware, SkipMessage

from actors import memory
from actors.catalog import CATALOG
from actors.errors import classify
from actors.job_store import CANCELLED, COMPLETED, FAILED, RUNNING, JobStore


class JobState(Middleware):
    """Records running / completed / failed / cancelled in the job store.

    Its "after" hook must run after those of Results (a job is reported completed only
    once its result is stored) and Retries (which decides whether a failure is final):
    see the middleware order in ``actors.registry``."""

    def __init__(self, store: JobStore):
        self.logger = get_logger(__name__, type(self))
        self.store = store
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        # Jobs running in this process: the memory peak is reset when the first starts,
        # so a job's recorded peak covers its run (and any job running beside it).
        self.running = 0
        self.lock = threading.Lock()

    def after_process_boot(self, broker):
        # Forked worker processes get their own name.
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def before_process_message(self, broker, message):
        if message.actor_name not in CATALOG:
            return  # not a job: a scheduler tick
        status, _ = self.store.start(message.message_id, self.worker_name)
        if status != RUNNING:
            # Cancelled while pending, already finished (a redelivery) or expired.
            self.logger.info("Skipping job %s: it is %s.", message.message_id, status)
            raise SkipMessage()
        with self.lock:
            self.running += 1
            if self.running == 1:
                memory.reset_peak()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name not in CATALOG:
            return
        with self.lock:
            self.running -= 1
        peak = memory.peak_mb()
        if exception is None:
            self.store.finish(message.message_id, COMPLETED, peak_memory_mb=peak)
            return
        failure = classify(exception)
        if failure.code == "CANCELLED":
            self.store.finish(message.message_id, CANCELLED, error_code=failure.code, error_message=failure.message,
                              peak_memory_mb=peak)
        elif message.failed:
            self.store.finish(message.message_id, FAILED, error_code=failure.code, error_message=failure.message,
                              peak_memory_mb=peak)
        else:
            # Retries has put the message back: pending again, with the last error.
            self.store.requeue(message.message_id, error_code=failure.code, error_message=failure.message)
