"""Fixtures: a real Redis server on a free port, real workers, a real gateway over HTTP.

The session stack (one Redis, one heavy worker, one light worker, one gateway) serves
the contract tests; tests that stop, kill or starve processes build their own.
"""

from __future__ import annotations

import itertools

import pytest
import requests

from actors.broker import job_store, redis_client
from tests.support import fake_apis
from tests.support.processes import Redis, start_gateway, start_worker, wait_until

TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="session")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def pubtator_api():
    server = fake_apis.pubtator()
    yield server
    server.close()


@pytest.fixture(scope="session")
def llm_api():
    server = fake_apis.chat_completions()
    yield server
    server.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, logs, pubtator_api, llm_api):
    redis = Redis(tmp_path_factory.mktemp("redis"))
    data_dir = tmp_path_factory.mktemp("data")
    env = {
        "DATA_DIR": str(data_dir),
        "PUBTATOR_BASE_URL": pubtator_api.url, "PUBTATOR_RATE_LIMIT_PER_SECOND": "0",
        "LLM_BASE_URL": llm_api.url, "LLM_MODEL": "test-model", "LLM_API_KEY": "test-key",
        "LLM_RATE_LIMIT_PER_MINUTE": "0",
    }
    started = []
    try:
        started.append(start_worker(redis.url, "heavy", logs, env=env))
        started.append(start_worker(redis.url, "light", logs, env=env))
        gateway, base = start_gateway(redis.url, logs)
        started.append(gateway)
        yield Stack(redis=redis, base=base, heavy=started[0], light=started[1], gateway=gateway, data_dir=data_dir)
    finally:
        for process in reversed(started):
            process.stop()
        redis.stop()


class Stack:
    def __init__(self, *, redis, base, heavy=None, light=None, gateway=None, data_dir=None):
        self.data_dir = data_dir
        self.redis = redis
        self.base = base
        self.heavy = heavy
        self.light = light
        self.gateway = gateway
        self.http = requests.Session()
        self.store = job_store(redis_client(redis.url, decode=True))

    def url(self, path: str) -> str:
        return self.base + path

    def submit(self, operation: str, params=None, **kwargs) -> requests.Response:
        return self.http.post(self.url(f"/api/jobs/{operation}/submit"), json=params, timeout=10, **kwargs)

    def status(self, job_id: str) -> requests.Response:
        return self.http.get(self.url(f"/api/jobs/{job_id}/status"), timeout=10)

    def wait_status(self, job_id: str, statuses=TERMINAL, timeout: float = 60) -> dict:
        def reached():
            body = self.status(job_id).json()
            return body if body.get("status") in statuses else None

        return wait_until(reached, timeout=timeout, what=f"job {job_id} to reach {statuses}")


@pytest.fixture
def fresh_redis(tmp_path):
    redis = Redis(tmp_path / "redis")
    yield redis
    redis.stop()


_counter = itertools.count(1)


@pytest.fixture
def unique():
    """A number that makes a job's parameters unique (added to ``sleep_ms``), so jobs of
    different tests on the session stack never collide as duplicates."""
    return lambda: next(_counter)
