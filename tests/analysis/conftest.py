"""Databases for the data-store tests: SQLite always, PostgreSQL too when one is reachable
(a database of its own per test module, dropped afterwards)."""

from __future__ import annotations

import uuid

import pytest

from actors.datastore import llm_cache, models  # noqa: F401  (registers every table on Base)
from actors.datastore.base import Base, make_engine

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def postgres_url():
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    name = f"sysndd_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"))
        Base.metadata.drop_all(engine)  # a clean slate per test within the module's database
    yield engine
    engine.dispose()
