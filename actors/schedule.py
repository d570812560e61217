"""Scheduled jobs, with periodiq: ``python -m actors.schedule`` runs the scheduler process.

The scheduler only sends a tick message per schedule (periodiq's model); a light
worker runs the tick, which submits the real job through the job layer, so scheduled
jobs have records, history and duplicate detection like any other. Cron lines come
from the environment. A Redis lock per schedule and minute makes a second scheduler,
started by mistake, harmless: its ticks find the lock taken and do nothing.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.logging import get_logger
from dramatiq.middleware import CurrentMessage
from periodiq import PeriodiqMiddleware, cron

from actors import catalog
from actors.broker import job_store, redis_client
from actors.submission import submit

logger = get_logger(__name__)

#: operation -> (environment variable, default cron line)
SCHEDULED_JOBS = {
    "backup_create": ("SCHEDULE_BACKUP_CREATE", "0 2 * * *"),  # nightly
    "pubtator_update": ("SCHEDULE_PUBTATOR_UPDATE", "0 3 * * 0"),  # weekly
    "comparisons_update": ("SCHEDULE_COMPARISONS_UPDATE", "0 4 * * 0"),  # weekly
}
CLEANUP = ("SCHEDULE_CLEANUP", "13 * * * *")  # hourly

#: A tick older than this when a worker gets to it is dropped (PeriodiqMiddleware):
#: the next one comes soon enough, and a backlog of stale ticks helps nobody.
STALE_TICK_SECONDS = 3600

TICK_QUEUE = "light"


def cron_line(variable: str, default: str) -> str:
    return os.environ.get(variable) or default


@lru_cache(maxsize=None)
def _store():
    return job_store(redis_client(decode=True))


def _first_tick(name: str) -> bool:
    """True for the first tick of this schedule in this minute, whichever scheduler sent it."""
    message = CurrentMessage.get_current_message()
    scheduled_at = (message.options.get("scheduled_at") if message else None) or "manual"
    minute = scheduled_at[:16]  # "2026-11-28T02:00": cron has minute resolution
    key = f"{_store().prefix}:tick:{name}:{minute}"
    return bool(_store().client.set(key, message.message_id if message else "-", nx=True, ex=86_400))


def _submit_scheduled(broker: RedisBroker, operation_name: str) -> None:
    if not _first_tick(operation_name):
        logger.info("Tick for %s already handled (a second scheduler?); skipping.", operation_name)
        return
    admission = submit(_store(), broker, catalog.get(operation_name), {})
    logger.info("Scheduled %s: %s %s.", operation_name, admission.outcome, admission.job_id or "")


def _cleanup() -> None:
    if _first_tick("cleanup"):
        removed = _store().cleanup()
        logger.info("Cleanup removed %d expired history entries.", removed)


def declare_ticks(broker: RedisBroker) -> None:
    """The tick actors, on both the scheduler's broker (which sends them) and the light
    workers' (which run them)."""
    for name, (variable, default) in SCHEDULED_JOBS.items():
        def tick(name=name):
            _submit_scheduled(broker, name)

        dramatiq.actor(tick, actor_name=f"scheduled_{name}", queue_name=TICK_QUEUE, broker=broker,
                       periodic=cron(cron_line(variable, default)), max_retries=3)
    dramatiq.actor(_cleanup, actor_name="scheduled_cleanup", queue_name=TICK_QUEUE, broker=broker,
                   periodic=cron(cron_line(*CLEANUP)), max_retries=0)


def periodiq_middleware() -> PeriodiqMiddleware:
    return PeriodiqMiddleware(skip_delay=STALE_TICK_SECONDS)


def main() -> int:
    import logging

    import periodiq

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(name)s] [%(levelname)s] %(message)s")
    args = periodiq.make_argument_parser().parse_args(["actors.queues.scheduler:broker", "--path", "."])
    return periodiq.main(args)


if __name__ == "__main__":
    sys.exit(main())
