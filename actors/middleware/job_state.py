"""Moves job records through their states as the worker processes messages."""

from __future__ import annotations

import os
import socket
import threading

import redis
from dramatiq.logging import get_logger
from dramatiq.middleware import Middleware, SkipMessage

from actors import memory
from actors.catalog import CATALOG
from actors.errors import classify
from actors.job_store import CANCELLED, COMPLETED, FAILED, RUNNING, JobStore
from actors.middleware.reliability import wait_out_redis

#: How often buffered progress reports are written (seconds).
PROGRESS_FLUSH_SECONDS = 0.2


class JobState(Middleware):
    """Records running / completed / failed / cancelled in the job store.

    Its "after" hook must run after those of Results (a job is reported completed only
    once its result is stored) and Retries (which decides whether a failure is final):
    see the middleware order in ``actors.registry``.

    State changes wait out a Redis outage instead of failing: a record left behind
    (say 'running' for a job that completed) would be wrong for good. Progress reports
    are buffered and written in batches off the job's thread; a job's last report is
    written with its final state.
    """

    def __init__(self, store: JobStore, *, one_job_at_a_time: bool = False):
        self.logger = get_logger(__name__, type(self))
        self.store = store
        self.one_job_at_a_time = one_job_at_a_time
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.progress: dict[str, tuple] = {}
        self.progress_lock = threading.Lock()
        self.stopped = threading.Event()

    def after_process_boot(self, broker):
        # Forked worker processes get their own name.
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def after_worker_boot(self, broker, worker):
        threading.Thread(target=self._flush_progress, name="progress", daemon=True).start()

    def after_worker_shutdown(self, broker, worker):
        # Jobs finishing within the shutdown grace period still report progress.
        self.stopped.set()

    # -- progress -----------------------------------------------------------------------

    def report_progress(self, job_id: str, step: str, message: str, current: int, total: int) -> None:
        with self.progress_lock:
            self.progress[job_id] = (step, message, current, total)

    def _take_progress(self, job_id: str) -> tuple | None:
        with self.progress_lock:
            return self.progress.pop(job_id, None)

    def _flush_progress(self) -> None:
        while not self.stopped.wait(PROGRESS_FLUSH_SECONDS):
            # Held while writing, so a job's final state never overtakes its last report.
            with self.progress_lock:
                if not self.progress:
                    continue
                reports, self.progress = self.progress, {}
                try:
                    self.store.progress_many(reports)
                except redis.RedisError as e:
                    self.logger.warning("Could not write progress (%s); keeping the latest reports.", e)
                    self.progress = {**reports, **self.progress}

    # -- states -------------------------------------------------------------------------

    def _reliably(self, what: str, call):
        return wait_out_redis(self.logger, what, call)

    def before_process_message(self, broker, message):
        if message.actor_name not in CATALOG:
            return  # not a job: a scheduler tick
        job_id = message.message_id
        status, _ = self._reliably(f"starting job {job_id}", lambda: self.store.start(job_id, self.worker_name))
        if status != RUNNING:
            # Cancelled while pending, already finished (a redelivery), expired, or
            # failed just now because its workers kept dying under it.
            self.logger.info("Skipping job %s: it is %s.", job_id, status)
            raise SkipMessage()
        if self.one_job_at_a_time:
            memory.reset_peak()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name not in CATALOG:
            return
        job_id = message.message_id
        peak = memory.peak_mb() if self.one_job_at_a_time else memory.lifetime_peak_mb()
        if exception is None:
            self._finish(job_id, COMPLETED, peak=peak)
            return
        failure = classify(exception)
        if failure.code == "CANCELLED":
            self._finish(job_id, CANCELLED, failure.code, failure.message, peak)
        elif message.failed:
            self._finish(job_id, FAILED, failure.code, failure.message, peak)
        else:
            # Retries has put the message back: pending again, with the last error.
            self._take_progress(job_id)
            self._reliably(f"requeueing job {job_id}", lambda: self.store.requeue(
                job_id, error_code=failure.code, error_message=failure.message))

    def _finish(self, job_id: str, status: str, code: str = "", message: str = "", peak=None) -> None:
        # The flusher holds the lock while it writes, so once the last report is taken
        # here no older one of this job can still be on its way.
        last = self._take_progress(job_id)
        self._reliably(f"finishing job {job_id}", lambda: self.store.finish(
            job_id, status, error_code=code, error_message=message, peak_memory_mb=peak, progress=last))
