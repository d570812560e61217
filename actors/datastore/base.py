"""Declarative base and engine factory shared by every table of the data store.

SQLite file by default; any SQLAlchemy URL (PostgreSQL, MySQL) through DATABASE_URL.
"""

import os
from functools import lru_cache
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

DEFAULT_SQLITE_PATH = Path(os.environ.get("DATA_DIR", "var")) / "sysndd-jobs.sqlite3"


class Base(DeclarativeBase):
    pass


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, future=True, pool_pre_ping=True)


def create_all(engine: Engine) -> None:
    Base.metadata.create_all(engine)


@lru_cache(maxsize=None)
def shared_engine() -> Engine:
    """One engine (and connection pool) per worker process, with every table created."""
    # Importing the table modules registers them on Base.
    from actors.datastore import models  # noqa: F401

    try:
        from actors.datastore import llm_cache  # noqa: F401
    except ImportError:  # the LLM cache lands with llm_generation
        pass
    engine = make_engine()
    create_all(engine)
    return engine


def backup_dir() -> Path:
    return Path(os.environ.get("BACKUP_DIR") or Path(os.environ.get("DATA_DIR", "var")) / "backups")
