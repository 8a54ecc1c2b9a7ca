"""The `metatune` command line: help, the demo end to end, inspection commands, user errors."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from metatune import Categorical, Float, Study, cli
from metatune.benchmarks.sklearn_tasks import SVMDigits
from metatune.storage import get_storage

# A demo small enough for tests: 200 samples, 2-fold CV.
TINY = ["--cv", "2", "--max-samples", "200"]


@pytest.fixture(autouse=True)
def _wide_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are as wide as $COLUMNS off a terminal: pin it so cells do not wrap."""
    monkeypatch.setenv("COLUMNS", "200")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture
def study_db(tmp_path: Path) -> tuple[str, str, dict[int, float]]:
    """A sqlite study with 5 complete trials, 1 failed and 1 running; returns url, name, values."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    study = Study(
        {"x": Float(-1.0, 1.0), "kind": Categorical(["a", "b"])},
        direction="minimize",
        optimizer="random",
        storage=url,
        name="toy",
        seed=1,
    )
    values: dict[int, float] = {}
    for i in range(6):
        t = study.ask()
        if i == 2:
            study.tell(t, error="ValueError: boom\n  File 'x.py', line 1")
        else:
            values[t.number] = t.params["x"] ** 2 + (0.5 if t.params["kind"] == "b" else 0.0)
            study.tell(t, {"objective": values[t.number], "loss": 1.5})
    study.ask()  # left running
    return url, "toy", values


# Help and version -----------------------------------------------------------------------------
def test_help_version_and_subcommand_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("demo", "demo-svm", "trials", "best", "export", "studies"):
        assert command in out
        code, sub, _ = run(capsys, command, "--help")
        assert code == 0 and "--storage" in sub
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"metatune {cli.__version__}"


def test_console_script_reports_usage_errors_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metatune.cli", "export", "--format", "xml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert_one_line_error(proc.stderr, "--format", "xml")


# Demo -----------------------------------------------------------------------------------------
def test_demo_runs_resumes_and_is_inspectable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "demo-svm", "--trials", "3", "--optimizer", "random", *TINY)
    assert code == 0, err
    assert "New study" in err
    plot = tmp_path / "metatune-runs" / "svm-digits-cv2-n200-best-so-far.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Plot: {Path('metatune-runs') / plot.name}" in out
    assert "top 3 of 3 trials" in out and "kernel" in out
    assert (tmp_path / "metatune-runs" / "metatune.db").is_file()

    code, out, err = run(capsys, "demo-svm", "--trials", "2", *TINY)
    assert code == 0, err
    assert "Resuming study svm-digits-cv2-n200" in err and "3 trials so far" in err
    assert "optimizer random" in err  # the stored optimizer is kept on resume

    # The default storage is the demo's: the inspection commands find the study on their own.
    code, out, _ = run(capsys, "best", "--json")
    assert code == 0
    best = json.loads(out)
    assert best["study"] == "svm-digits-cv2-n200" and best["direction"] == "maximize"
    assert 0.0 < best["value"] <= 1.0 and set(best["params"]) == {"C", "gamma", "kernel"}
    code, out, _ = run(capsys, "export", "--format", "json")
    rows = json.loads(out)
    assert [r["number"] for r in rows] == [0, 1, 2, 3, 4]
    assert max(r["value"] for r in rows) == best["value"]
    assert all(r["user_attrs.cv"] == 2 and r["user_attrs.n_samples"] == 200 for r in rows)

    # Same study name, different problem settings: refused before any trial runs.
    code, _, err = run(capsys, "demo-svm", "--study", "svm-digits-cv2-n200", "--cv", "3")
    assert code == 1
    assert_one_line_error(err, "cv=2 on 200 samples")


def test_demo_ctrl_c_keeps_finished_trials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_call = SVMDigits.__call__

    def interrupted(self: SVMDigits, params: dict) -> dict:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_call(self, params)

    monkeypatch.setattr(SVMDigits, "__call__", interrupted)
    out_dir = tmp_path / "runs"
    code, _, err = run(
        capsys, "demo-svm", "--trials", "5", "--optimizer", "random", "--out", str(out_dir), *TINY
    )
    assert code == 130
    assert "Interrupted: the 2 completed trials" in err and "Traceback" not in err
    store = get_storage(f"sqlite:///{out_dir / 'metatune.db'}")
    record = store.get_study("svm-digits-cv2-n200")
    states = [t.state.value for t in store.get_trials(record.id)]
    assert states == ["complete", "complete", "failed"]


# Inspection commands on a known study ---------------------------------------------------------
def test_trials_table(capsys: pytest.CaptureFixture[str], study_db) -> None:
    url, name, _ = study_db
    code, out, _ = run(capsys, "trials", "--storage", url, "--study", name)
    assert code == 0
    assert "7 trials" in out and "ValueError: boom" in out and "File 'x.py'" not in out
    for state in ("complete", "failed", "running"):
        assert state in out
    code, out, _ = run(capsys, "trials", "--storage", url, "--study", name, "--state", "failed")
    assert code == 0 and re.search(r"1 failed trial(?!s)", out) and "complete" not in out
    code, out, _ = run(capsys, "trials", "--storage", url, "--sort", "value", "--limit", "2")
    assert code == 0 and "showing 2" in out


def test_best_json_and_table(capsys: pytest.CaptureFixture[str], study_db) -> None:
    url, name, values = study_db
    number = min(values, key=values.get)
    code, out, _ = run(capsys, "best", "--storage", url, "--study", name, "--json")
    assert code == 0
    best = json.loads(out)
    assert best["number"] == number and best["value"] == pytest.approx(values[number])
    assert set(best["params"]) == {"x", "kind"} and best["user_attrs"] == {"loss": 1.5}
    code, out, _ = run(capsys, "best", "--storage", url, "--study", name)
    assert code == 0 and re.search(rf"^\s*trial\s+{number}\s*$", out, re.MULTILINE)
    assert re.search(r"^\s*loss\s+1\.5\s*$", out, re.MULTILINE)


@pytest.mark.parametrize("to_file", [False, True])
def test_export_csv(
    capsys: pytest.CaptureFixture[str], study_db, tmp_path: Path, to_file: bool
) -> None:
    url, name, values = study_db
    args = ["export", "--storage", url, "--study", name, "--format", "csv"]
    if to_file:
        args += ["--output", str(tmp_path / "trials.csv")]
    code, out, err = run(capsys, *args)
    assert code == 0
    text = (tmp_path / "trials.csv").read_text() if to_file else out
    if to_file:
        assert out == "" and "Wrote 7 trials" in err
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "number", "state", "value", "error", "started_at", "finished_at", "duration",
        "params.x", "params.kind", "user_attrs.loss",
    ]  # fmt: skip
    assert [r["state"] for r in rows] == ["complete"] * 2 + ["failed"] + ["complete"] * 3 + [
        "running"
    ]
    for r in rows:
        n = int(r["number"])
        if n in values:
            assert float(r["value"]) == values[n]  # full precision, not rounded
            assert float(r["duration"]) >= 0 and r["finished_at"].endswith("Z")
            assert -1 <= float(r["params.x"]) <= 1 and r["params.kind"] in ("a", "b")
    assert rows[2]["error"] == "ValueError: boom" and rows[2]["value"] == ""
    assert rows[6]["finished_at"] == "" and rows[6]["duration"] == ""


def test_export_json(capsys: pytest.CaptureFixture[str], study_db) -> None:
    url, name, values = study_db
    code, out, _ = run(capsys, "export", "--storage", url, "--study", name, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 7
    assert {r["number"]: r["value"] for r in rows if r["state"] == "complete"} == values
    assert rows[2]["error"] == "ValueError: boom" and rows[2]["value"] is None
    assert isinstance(rows[0]["params.x"], float)


def test_studies(capsys: pytest.CaptureFixture[str], study_db) -> None:
    url, name, values = study_db
    code, out, _ = run(capsys, "studies", "--storage", url, "--json")
    assert code == 0
    (summary,) = json.loads(out)
    assert summary["name"] == name and summary["n_trials"] == 7
    assert (summary["n_complete"], summary["n_failed"], summary["n_running"]) == (5, 1, 1)
    assert summary["best_value"] == pytest.approx(min(values.values()))
    code, out, _ = run(capsys, "studies", "--storage", url)
    assert code == 0 and name in out and "minimize" in out


# User errors: one line on stderr, no traceback, nothing done ----------------------------------
@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["best", "--study", "nope"], 1, ["no study named 'nope'", "studies: ['toy']"]),
        (["trials", "--study", "nope"], 1, ["no study named 'nope'"]),
        (["export", "--format", "xml"], 2, ["--format", "xml"]),
        (["trials", "--state", "done"], 2, ["--state"]),
        (["trials", "--limit", "0"], 2, ["--limit"]),
        (["studies", "--bogus"], 2, ["--bogus"]),
    ],
)
def test_user_errors(capsys, study_db, args: list[str], code: int, fragments: list[str]) -> None:
    url, _, _ = study_db
    got, out, err = run(capsys, *args, "--storage", url)
    assert got == code and out == ""
    assert_one_line_error(err, *fragments)


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["demo-svm", "--trials", "0"], 2, ["--trials"]),
        (["demo-svm", "--trials", "-3"], 2, ["--trials"]),
        (["demo-svm", "--optimizer", "bogus"], 2, ["'bogus' is not one of"]),
        (["demo-svm", "--storage", "not-a-url"], 1, ["SQLAlchemy URL"]),
        (["demo-svm", "--storage", "nodb://x"], 1, ["nodb"]),
        (["best", "--storage", "sqlite:///missing.db"], 1, ["no database at missing.db"]),
        (["studies", "--storage", "not-a-url"], 1, ["SQLAlchemy URL"]),
        (["trials"], 1, ["no database at"]),
        (["lhopt", "train", "--baseline-lrs", "1,x"], 2, ["--baseline-lrs", "'1,x'"]),
        (["lhopt", "train", "--baseline-lrs", "0,1"], 2, ["baseline_lrs", "[0.0, 1.0]"]),
        (["lhopt", "train", "--init-policy", "none.pt"], 2, ["--init-policy", "none.pt"]),
    ],
)
def test_bad_arguments_fail_before_any_work(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args, code, fragments
) -> None:
    monkeypatch.chdir(tmp_path)
    got, out, err = run(capsys, *args)
    assert got == code
    assert_one_line_error(err, *fragments)
    assert list(tmp_path.iterdir()) == []  # no database, folder or plot created


def test_study_is_required_when_storage_holds_several(capsys, study_db) -> None:
    url, _, _ = study_db
    Study({"y": Float(0, 1)}, storage=url, name="other")
    code, _, err = run(capsys, "best", "--storage", url)
    assert code == 2
    assert_one_line_error(err, "--study", "'toy'", "'other'")
    code, _, err = run(capsys, "best", "--storage", url, "--study", "other")
    assert code == 1
    assert_one_line_error(err, "no completed trial")


def test_pipeline_demo_runs_on_a_tiny_budget_and_resumes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # A simulated clock charges every stage 1 s (the 4 stages of a trial: 4 s), so the count of
    # candidates a budget of 1 s buys does not depend on how fast the machine trains.
    settings = cli.Settings(stage_clock=itertools.count().__next__)

    def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = cli.main(list(args), settings=settings)
        out, err = capsys.readouterr()
        return code, out, err

    args = ("demo", "--budget", "1", "--optimizer", "random", "--pipeline", "vision")
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "prep -> phase1 -> phase2 -> evaluate" in err
    assert "1 candidates" in out and "Best: trial #0" in out
    assert (tmp_path / "metatune-runs" / "vision-random-best-so-far.png").is_file()
    assert any((tmp_path / "metatune-runs" / "cache").iterdir())
    code, out, err = run(capsys, *args)  # resumes with a new budget
    assert code == 0, err
    assert "already spent" in err and "2 candidates" in out


def test_pipeline_demo_rejects_unknown_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "demo", "--pipeline", "audio")
    assert code == 2 and "'audio' is not one of" in err
