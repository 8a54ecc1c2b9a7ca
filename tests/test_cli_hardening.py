"""The CLI never shows a traceback for a bad input, prints names as text, and writes JSON that is
JSON."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from metatune import Float, Study
from metatune.cli import main

CLEAR = "\x1b[2J"


def _study(tmp_path: Path, name: str = "s") -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Study({"x": Float(0, 1)}, storage=url, name=name, optimizer="random", seed=0).optimize(
        lambda p: {"objective": p["x"], "m": 1.0}, n_trials=3
    )
    return url


def _nan_metric(tmp_path: Path) -> None:
    """A metric stored as a bare NaN, as older versions wrote them."""
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("UPDATE trials SET user_attrs = '{\"m\": NaN}'")


def test_studies_prints_an_escaped_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell is folded
    url = _study(tmp_path, name=f"{CLEAR}x")
    assert main(["studies", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert CLEAR not in out and "\\x1b[2Jx" in out
    assert main(["best", "--storage", url, "--study", f"{CLEAR}x"]) == 0
    out = capsys.readouterr().out
    assert CLEAR not in out and "\\x1b[2Jx" in out
    assert main(["trials", "--storage", url, "--study", f"{CLEAR}nope"]) != 0
    err = capsys.readouterr().err
    assert CLEAR not in err and "error:" in err


def test_json_outputs_are_strict_json_with_a_nan_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _study(tmp_path)
    _nan_metric(tmp_path)
    assert main(["best", "--storage", url, "--json"]) == 0
    best = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert best["user_attrs"]["m"] == "nan"
    out = tmp_path / "trials.json"
    assert main(["export", "--storage", url, "--format", "json", "--output", str(out)]) == 0
    rows = json.loads(out.read_text(), parse_constant=_refuse)
    assert len(rows) == 3 and rows[0]["user_attrs.m"] == "nan"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _refuse(token: str) -> None:
    raise AssertionError(f"not JSON: {token}")


def test_lhopt_train_refuses_bad_files_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    args = ["lhopt", "train", "--out", str(out), "--iterations", "1", "--episodes", "2"]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot resume" in err and err.count("\n") <= 2
    bad = tmp_path / "policy.pt"
    torch.save({"config": {"nope": 1}}, bad)
    args = ["lhopt", "train", "--out", str(tmp_path / "run2"), "--init-policy", str(bad)]
    assert main([*args, "--iterations", "1", "--episodes", "2"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "not a metatune policy file" in err


def test_an_internal_error_is_one_line_unless_debugging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import metatune.report.tables as tables

    url = _study(tmp_path)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(tables, "studies_table", broken)
    assert main(["studies", "--storage", url]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error: RuntimeError: a bug" in err
    monkeypatch.setenv("METATUNE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["studies", "--storage", url])
