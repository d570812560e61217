"""Calling a remote API politely: a rate limit, and retries of what may go away.

Shared by the operations that call remote APIs (PubTator, the LLM endpoint). Not
urllib3's Retry: it sleeps on its own clock (the tests inject one), would sleep through
any Retry-After however long (here a long one fails the job, and Dramatiq's retry comes
back later instead of holding a worker), and cannot tell progress about a retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests

#: Network failures worth another try.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class RateLimiter:
    """Starts requests at least ``1 / per_second`` seconds apart.

    Not a library: one job fetches its pages one after another in one thread, so
    spacing request starts is the whole requirement; a token bucket (pyrate-limiter,
    limits) would add a dependency for bursts and sharing we do not use. Jobs running
    at the same time do not share this limiter.
    """

    def __init__(self, per_second: float | None, *, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / per_second if per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_start: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._next_start is not None and now < self._next_start:
            self._sleep(self._next_start - now)
            now = self._next_start
        self._next_start = now + self.interval


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    #: A Retry-After longer than this is not slept through: the job fails and its own
    #: (Dramatiq) retry comes back later instead of holding a worker.
    max_retry_after_seconds: float = 300.0

    def backoff(self, attempt: int) -> float:
        # "Equal jitter": at least half the exponential delay, so retries never
        # collapse to zero, with the other half random to spread clients apart.
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def is_retryable(status_code: int) -> bool:
    return status_code in (408, 429) or status_code >= 500


class Rejected(Exception):
    """A 4xx other than 408/429: the request itself is wrong, retrying cannot help."""

    def __init__(self, response: requests.Response):
        super().__init__(f"HTTP {response.status_code} from {response.url}")
        self.status_code = response.status_code
        self.url = response.url
        self.body = response.text


class Unavailable(Exception):
    """Still failing after every retry, or asked to wait longer than we would."""


@dataclass
class RetryingSender:
    limiter: RateLimiter
    policy: RetryPolicy
    sleep: Callable[[float], None] = time.sleep
    #: Called with (reason, delay) before each retry's wait, so progress can show it.
    on_retry: Callable[[str, float], None] | None = None
    requests_made: int = 0
    retries: int = 0

    def send(self, request: Callable[[], requests.Response], describe: str) -> requests.Response:
        """The first 2xx answer of ``request()``; raises Rejected or Unavailable."""
        for attempt in range(self.policy.max_retries + 1):
            self.limiter.wait()
            self.requests_made += 1
            retry_after = None
            try:
                response = request()
            except TRANSIENT_ERRORS as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    return response
                if not is_retryable(response.status_code):
                    raise Rejected(response)
                reason = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response)
            if attempt == self.policy.max_retries:
                raise Unavailable(f"{describe}: {reason} after {attempt + 1} attempts")
            delay = retry_after if retry_after is not None else self.policy.backoff(attempt)
            if delay > self.policy.max_retry_after_seconds:
                raise Unavailable(f"{describe}: {reason}, asked to retry after {delay:.0f} s")
            self.retries += 1
            if self.on_retry is not None:
                self.on_retry(reason, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")
