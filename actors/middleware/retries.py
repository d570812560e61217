"""Dramatiq's Retries with our rules on what is worth another try."""

from __future__ import annotations

from dramatiq.middleware import Retries, Shutdown

from actors.errors import classify


class JobRetries(Retries):
    """Retries only failures that may go away (see ``actors.errors.classify``).

    Invalid input, time limits and cancellation fail at once. A job interrupted by a
    worker's graceful shutdown goes straight back to its queue without using up a
    retry: it did not fail, its worker left."""

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None:
            return
        if isinstance(exception, Shutdown):
            broker.enqueue(message)
            return
        if not classify(exception).retryable:
            message.fail()
            return
        super().after_process_message(broker, message, result=result, exception=exception)
