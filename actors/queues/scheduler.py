"""Broker module of the scheduler process: the tick actors only, no operation modules.

Dramatiq's default middleware is there only so the ticks' options (``max_retries``)
are known; this process sends messages and never processes one."""

from dramatiq.brokers.redis import RedisBroker

from actors.broker import redis_client
from actors.schedule import declare_ticks, periodiq_middleware

broker = RedisBroker(client=redis_client())
broker.add_middleware(periodiq_middleware())
declare_ticks(broker)
