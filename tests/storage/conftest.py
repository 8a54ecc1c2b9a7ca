"""Fixtures shared by the storage tests: each backend, and a way to fake a trial's owner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from metatune.storage import BaseStorage, InMemoryStorage
from metatune.storage.sql import SQLStorage, _metadata, _trials

# Set to a throwaway database (its tables are dropped) to also run the contract on a server,
# e.g. METATUNE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/metatune_test
POSTGRES_URL = os.environ.get("METATUNE_TEST_POSTGRES_URL")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _worker_url(url: str) -> str:
    """`url` with a database of this test process's own (created if missing), so that xdist
    workers do not drop each other's tables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database or 'metatune_test'}_{worker}"
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _fresh_server_url() -> str:
    """The PostgreSQL test URL with its metatune tables dropped, or skip the test."""
    if not POSTGRES_URL:
        pytest.skip("set METATUNE_TEST_POSTGRES_URL to test a PostgreSQL server")
    url = _worker_url(POSTGRES_URL)
    store = SQLStorage(url)
    _metadata.drop_all(store._engine)
    store.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a SQLite file, or the PostgreSQL test server if configured."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "test.db")
    return _fresh_server_url()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStorage]:
    """Every backend, so one test states the contract for all of them."""
    if request.param == "memory":
        store: BaseStorage = InMemoryStorage()
    elif request.param == "sqlite":
        store = SQLStorage(sqlite_url(tmp_path / "contract.db"))
    else:
        store = SQLStorage(_fresh_server_url())
    yield store
    store.close()


def _set_trial_owner(
    storage: BaseStorage, study_id: int, number: int, owner: str, heartbeat_at: datetime
) -> None:
    """Pretend a trial is run by `owner` whose last heartbeat was at `heartbeat_at`."""
    if isinstance(storage, InMemoryStorage):
        storage._meta[(study_id, number)] = (owner, heartbeat_at)
    elif isinstance(storage, SQLStorage):
        with storage._engine.begin() as conn:
            conn.execute(
                update(_trials)
                .where(_trials.c.study_id == study_id, _trials.c.number == number)
                .values(owner=owner, heartbeat_at=heartbeat_at)
            )
    else:  # pragma: no cover
        raise TypeError(type(storage))


@pytest.fixture
def set_trial_owner():
    """The function `_set_trial_owner(storage, study_id, number, owner, heartbeat_at)`."""
    return _set_trial_owner
