"""What a failed job tells its client: an error code, a message, and whether to retry."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from dramatiq.middleware import Shutdown, TimeLimitExceeded
from dramatiq_abort import Abort

from actors.params import InvalidParams


class JobError(Exception):
    """A failure an operation reports on purpose, with its own code."""

    code = "JOB_ERROR"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class TransientJobError(JobError):
    """A failure that may go away by itself (a remote API's 503, a dropped connection)."""

    code = "TRANSIENT_ERROR"
    retryable = True


class NotImplementedYet(JobError):
    code = "NOT_IMPLEMENTED"


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    retryable: bool


# Connection problems anywhere (sockets, HTTP clients, Redis) are worth another try; so
# is a plain bug, within the catalog's retry budget, since heavy analyses also fail on
# transient resource limits.
_TRANSIENT = (OSError, redis.ConnectionError, redis.TimeoutError)


def classify(exception: BaseException) -> Failure:
    if isinstance(exception, JobError):
        return Failure(exception.code, exception.message, exception.retryable)
    if isinstance(exception, InvalidParams):
        return Failure("INVALID_PARAMS", exception.message, False)
    if isinstance(exception, TimeLimitExceeded):
        return Failure("TIME_LIMIT", "the job ran past its time limit", False)
    if isinstance(exception, Abort):
        return Failure("CANCELLED", "cancelled while running", False)
    if isinstance(exception, MemoryError):
        return Failure("MEMORY_LIMIT", "the job needed more memory than its worker may use", False)
    if isinstance(exception, Shutdown):
        return Failure("WORKER_SHUTDOWN", "the worker stopped before the job finished; requeued", True)
    message = f"{type(exception).__name__}: {exception}"[:1000]
    if isinstance(exception, _TRANSIENT):
        return Failure("TRANSIENT_ERROR", message, True)
    return Failure("INTERNAL_ERROR", message, True)
