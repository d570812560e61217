"""How an operation reports progress: ``report(step, current=, total=, message=)``.

Inside a worker it updates the running job's record (within a fraction of a second:
JobState writes reports in batches); run in-process (no current
message) it goes to the reporter set with ``report_locally`` (``python -m actors.run``
prints it), or nowhere, so operations need no branch for either case.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage

from actors.middleware.job_state import JobState


_local_reporter = None


def report_locally(reporter) -> None:
    """Where progress goes outside a worker: ``reporter(step, current, total, message)``."""
    global _local_reporter
    _local_reporter = reporter


def report(step: str, *, current: int = 0, total: int = 0, message: str = "") -> None:
    job = CurrentMessage.get_current_message()
    if job is None:
        if _local_reporter is not None:
            _local_reporter(step, current, total, message)
        return
    for middleware in dramatiq.get_broker().middleware:
        if isinstance(middleware, JobState):
            middleware.report_progress(job.message_id, step, message, current, total)
            return


def callback(step: str, current: int = 0, total: int = 0, message: str = "") -> None:
    """The same, in the positional shape the analysis functions call."""
    report(step, current=current, total=total, message=message)
