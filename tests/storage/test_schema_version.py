"""The SQL schema version is stamped in the database and checked on every open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from metatune import Float, Study
from metatune.exceptions import SchemaVersionError
from metatune.storage.sql import SCHEMA_VERSION, SQLStorage


def _stamp(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT key, value FROM metatune_meta").fetchall()


def test_a_new_database_is_stamped_and_reopens(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    SQLStorage(f"sqlite:///{db}").close()
    assert _stamp(db) == [("schema_version", str(SCHEMA_VERSION))]
    SQLStorage(f"sqlite:///{db}").close()  # the same version opens
    assert _stamp(db) == [("schema_version", str(SCHEMA_VERSION))]


def test_another_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    Study({"x": Float(0, 1)}, storage=url, name="s", optimizer="random").optimize(
        lambda p: p["x"], n_trials=2
    )
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE metatune_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match=r"schema version 999.*reads version 2") as err:
        SQLStorage(url)
    assert err.value.found == "999" and err.value.expected == SCHEMA_VERSION
    with pytest.raises(ValueError, match="schema version 999"):  # what the CLI reports
        Study(name="s", storage=url)


def test_a_database_from_before_the_stamp_is_stamped_and_keeps_its_trials(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    Study({"x": Float(0, 1)}, storage=url, name="s", optimizer="random").optimize(
        lambda p: p["x"], n_trials=3
    )
    with sqlite3.connect(db) as conn:  # what a database written before the stamp looks like
        conn.execute("DROP TABLE metatune_meta")
    resumed = Study(name="s", storage=url)
    assert len(resumed.trials) == 3
    assert _stamp(db) == [("schema_version", str(SCHEMA_VERSION))]


def _as_version_1(db: Path) -> None:
    """Make `db` look like a database a version-1 metatune wrote (no version-2 columns)."""
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE trials DROP COLUMN intermediate")
        conn.execute("ALTER TABLE trials DROP COLUMN objective_values")
        conn.execute("ALTER TABLE studies DROP COLUMN directions")
        conn.execute("UPDATE metatune_meta SET value = '1' WHERE key = 'schema_version'")


def test_a_version_1_database_is_upgraded_in_place_and_keeps_its_trials(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    url = f"sqlite:///{db}"
    Study({"x": Float(0, 1)}, storage=url, name="s", optimizer="random").optimize(
        lambda p: p["x"], n_trials=3
    )
    _as_version_1(db)
    with pytest.raises(ValueError, match="older metatune.*open it once for writing"):
        SQLStorage(url, read_only=True)
    study = Study(name="s", storage=url)
    assert [t.value for t in study.trials] == [t.value for t in study.completed_trials()]
    assert len(study.trials) == 3
    assert _stamp(db) == [("schema_version", str(SCHEMA_VERSION))]
    trial = study.ask()
    study.report(trial, 0.5, step=1)  # the new columns work
    assert study.trials[-1].intermediate_values == {1: 0.5}
    SQLStorage(url, read_only=True).close()  # and read-only opens now
