"""Broker module of the light worker (``dramatiq actors.queues.light``): light actors only."""

from actors.registry import boot

broker = boot("light")
