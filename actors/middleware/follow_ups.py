"""Submits the catalog's follow-up job when a job completes (clustering -> LLM summary)."""

from __future__ import annotations

import os

from dramatiq.logging import get_logger
from dramatiq.middleware import Middleware

from actors import catalog
from actors.job_store import JobStore
from actors.submission import submit


class FollowUps(Middleware):
    """Its "after" hook runs once the job is recorded completed and its result stored
    (first in the middleware list, see ``actors.registry``), so the follow-up can read
    both."""

    def __init__(self, store: JobStore):
        self.logger = get_logger(__name__, type(self))
        self.store = store

    def after_process_message(self, broker, message, *, result=None, exception=None):
        operation = catalog.get(message.actor_name)
        if exception is not None or operation is None or operation.follow_up is None:
            return
        if operation.follow_up_if_env and not os.environ.get(operation.follow_up_if_env):
            return
        name, params = operation.follow_up
        try:
            admission = submit(self.store, broker, catalog.get(name), {**params, "source_job_id": message.message_id})
        except Exception:
            self.logger.exception("Could not submit the %s follow-up of job %s.", name, message.message_id)
            return
        if admission.outcome == "capacity":
            self.logger.warning("No %s follow-up for job %s: its queue is full.", name, message.message_id)
            return
        self.store.note_follow_up(message.message_id, admission.job_id)
