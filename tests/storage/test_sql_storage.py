"""What is particular to SQLStorage: URLs and their errors, SQLite settings, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from metatune.storage.sql import SQLStorage
from metatune.trial import TrialState

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}}


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.mark.parametrize("url", ["not a url", "sqlite//missing-colon.db", "://nothing"])
def test_malformed_url_is_a_value_error_naming_it(url: str) -> None:
    with pytest.raises(ValueError, match="URL") as info:
        SQLStorage(url)
    assert url in str(info.value)


def test_unknown_dialect_names_the_url() -> None:
    with pytest.raises(ValueError, match="nosuchdb://host/db"):
        SQLStorage("nosuchdb://host/db")


def test_unreachable_server_fails_at_construction_without_leaking_the_password() -> None:
    # No driver installed, or nothing listening on port 1: either way a ValueError, right now.
    with pytest.raises(ValueError, match="postgresql") as info:
        SQLStorage("postgresql://user:s3cret@127.0.0.1:1/metatune")
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_sqlite_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot open storage") as info:
        SQLStorage(_url(tmp_path))  # a directory, not a database file
    assert str(tmp_path) in str(info.value)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot create folder"):
        SQLStorage(_url(blocker / "sub" / "x.db"))


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="junk.db"):
        SQLStorage(_url(junk))


def test_sqlite_pragmas_and_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "study.db"
    store = SQLStorage(_url(path))
    assert path.exists()
    with store._engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 10_000
    store.close()


def test_tables_created_once_and_reopened(sql_url: str) -> None:
    url = sql_url
    first = SQLStorage(url)
    rec = first.create_study("s", "minimize", SPACE, "random")
    first.close()
    again = SQLStorage(url)  # create_all is idempotent and keeps the data
    assert again.get_study("s") == rec


def test_concurrent_openers_and_trial_creators(sql_url: str) -> None:
    """Threads with their own storages race to create the tables, then to number trials."""
    url = sql_url
    n_threads, per_thread = 4, 15
    # A thread that fails breaks the barrier, so the others raise instead of waiting forever.
    barrier = threading.Barrier(n_threads, timeout=120)
    numbers: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            store = SQLStorage(url)
            try:
                rec = store.create_study("s", "minimize", SPACE, "random")
            except ValueError:
                rec = store.get_study("s")
            barrier.wait()
            for _ in range(per_thread):
                t = store.create_trial(rec.id, {})
                numbers.append(t.number)
                store.finish_trial(rec.id, t.number, TrialState.COMPLETE, value=float(t.number))
            store.close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors  # the first failure, then the threads it released
    assert sorted(numbers) == list(range(n_threads * per_thread))


def test_finish_race_only_one_wins(sql_url: str) -> None:
    url = sql_url
    stores = [SQLStorage(url) for _ in range(4)]
    rec = stores[0].create_study("s", "minimize", SPACE, "random")
    stores[0].create_trial(rec.id, {})
    barrier = threading.Barrier(len(stores), timeout=120)
    outcomes: list[str] = []

    def finish(i: int) -> None:
        barrier.wait()
        try:
            stores[i].finish_trial(rec.id, 0, TrialState.COMPLETE, value=float(i))
            outcomes.append(f"won {i}")
        except ValueError:
            outcomes.append("refused")

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes)[:3] == ["refused"] * 3
    winner = int(sorted(outcomes)[3].split()[1])
    assert stores[1].get_trials(rec.id)[0].value == float(winner)
    for store in stores:
        store.close()


def test_unknown_study_or_trial(sql_url: str) -> None:
    store = SQLStorage(sql_url)
    with pytest.raises(KeyError):
        store.create_trial(99, {})
    rec = store.create_study("s", "minimize", SPACE, "random")
    with pytest.raises(KeyError):
        store.finish_trial(rec.id, 5, TrialState.COMPLETE, value=1.0)
    with pytest.raises(KeyError):
        store.set_trial_params(rec.id, 5, {})
    with pytest.raises(KeyError, match="nope"):
        store.delete_study("nope")


def test_numpy_scalars_are_stored_as_python_numbers(sql_url: str) -> None:
    store = SQLStorage(sql_url)
    rec = store.create_study("s", "minimize", SPACE, "random")
    store.create_trial(rec.id, {"i": np.int64(3), "f": np.float64(0.1), "b": np.bool_(True)})
    [t] = store.get_trials(rec.id)
    assert t.params == {"i": 3, "f": 0.1, "b": True}
    assert [type(v) for v in t.params.values()] == [int, float, bool]


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.dictionaries(st.text(min_size=1, max_size=10), _scalars, max_size=6))
def test_params_json_round_trip_property(params: dict) -> None:
    store = _memory_store()
    rec = store.create_study(f"s{len(store.list_studies())}", "minimize", SPACE, "random")
    t = store.create_trial(rec.id, params)
    [stored] = store.get_trials(rec.id)
    assert stored.params == params
    assert [type(v) for v in stored.params.values()] == [type(v) for v in params.values()]
    assert t.params == params


_MEMORY: list[SQLStorage] = []


def _memory_store() -> SQLStorage:
    if not _MEMORY:
        _MEMORY.append(SQLStorage("sqlite://"))
    return _MEMORY[0]


def test_switching_sqlite_to_wal_retries_while_another_opener_holds_the_file() -> None:
    import sqlite3

    from metatune.storage.sql import _enable_wal

    class Cursor:
        def __init__(self, busy: int) -> None:
            self.busy, self.calls = busy, []

        def execute(self, sql: str):
            self.calls.append(sql)
            if sql == "PRAGMA journal_mode":
                return self
            if self.busy:
                self.busy -= 1
                raise sqlite3.OperationalError("database is locked")
            return self

        def fetchone(self):
            return ("delete",)

    cursor = Cursor(busy=3)
    _enable_wal(cursor)  # no error: it waited for the other opener
    assert cursor.calls.count("PRAGMA journal_mode = WAL") == 4

    class Broken(Cursor):
        def execute(self, sql: str):
            if sql == "PRAGMA journal_mode = WAL":
                raise sqlite3.OperationalError("disk I/O error")
            return self

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enable_wal(Broken(busy=0))
