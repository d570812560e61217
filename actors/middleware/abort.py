"""dramatiq-abort for running jobs only."""

from __future__ import annotations

from dramatiq_abort import Abortable


class RunningAbortable(Abortable):
    """Abortable without its per-message check for cancelled pending messages.

    The job store already skips a job cancelled while pending (JobState reads its
    record before each run), so Abortable's extra Redis round trip per message would
    be paid for nothing. Running jobs are still interrupted through its watcher."""

    def before_process_message(self, broker, message):
        actor = broker.get_actor(message.actor_name)
        if self.is_abortable(actor, message):
            self.manager.add_abortable(message.message_id)
