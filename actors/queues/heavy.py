"""Broker module of the heavy worker (``dramatiq actors.queues.heavy``): heavy actors only."""

from actors.registry import boot

broker = boot("heavy")
