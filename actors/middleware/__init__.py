"""Dramatiq middleware that applies to every job: job records, retries, heartbeats, shutdown."""
