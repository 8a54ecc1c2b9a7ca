"""Read-only storages and commands write nothing, not even metatune's tables."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from metatune import Float, Study
from metatune.cli import main
from metatune.storage import get_storage


def _foreign_db(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('mine')")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


@pytest.mark.parametrize("command", ["studies", "trials", "best", "export"])
def test_read_only_commands_leave_another_programs_database_alone(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "other.db"
    digest = _foreign_db(db)
    code = main([command, "--storage", f"sqlite:///{db}"])
    assert code != 0
    err = capsys.readouterr().err
    assert "no metatune studies" in err and "Traceback" not in err
    assert _tables(db) == {"notes"}
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_read_only_storage_reads_and_refuses_to_create(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Study({"x": Float(0, 1)}, storage=url, name="s", optimizer="random").optimize(
        lambda p: p["x"], n_trials=2
    )
    store = get_storage(url, read_only=True)
    record = store.get_study("s")
    assert record is not None and len(store.get_trials(record.id)) == 2
    with pytest.raises(ValueError, match="is open read-only"):
        store.create_study("t", "minimize", {}, "random")
    with pytest.raises(ValueError, match="no database file"):
        get_storage(f"sqlite:///{tmp_path / 'missing.db'}", read_only=True)
    assert not (tmp_path / "missing.db").exists()
