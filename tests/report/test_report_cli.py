"""`metatune report` and `metatune dashboard`: files written, one-line errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from metatune import cli

pytest.importorskip("plotly")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, study_makers: tuple) -> str:
    folder = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{folder / 'runs.db'}"
    make_failing_study, make_pipeline_study = study_makers
    make_failing_study(url, n_trials=12)
    make_pipeline_study(folder / "cache", budget=15, storage=url)
    return url


def test_report_writes_one_html_file(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    code, stdout, err = run(capsys, "report", "--storage", url, "--study", "pipe", "-o", str(out))
    assert code == 0, err
    assert stdout == "" and "Wrote the report of 'pipe'" in err and str(out) in err
    text = out.read_text(encoding="utf-8")
    assert "<section id='stage-cost'>" in text and "metatune report: pipe" in text


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["--storage", "not-a-url"], 1, ["storage must be a SQLAlchemy URL", "not-a-url"]),
        (["--storage", "sqlite:///nowhere/x.db"], 1, ["no database at nowhere/x.db"]),
        (["--storage", "nosuchdialect://x"], 1, ["nosuchdialect"]),
    ],
)
def test_report_bad_storage_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], code: int, fragments: list
) -> None:
    got, out, err = run(capsys, "report", *args, "-o", str(tmp_path / "r.html"))
    assert got == code and out == ""
    assert_one_line_error(err, *fragments)
    assert not (tmp_path / "r.html").exists()


def test_report_unknown_or_missing_study(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "report", "--storage", url, "--study", "nope", "-o", str(tmp_path / "r.html")
    )
    assert code == 1
    assert_one_line_error(err, "no study named 'nope'", "'plain'", "'pipe'")
    code, _, err = run(capsys, "report", "--storage", url, "-o", str(tmp_path / "r.html"))
    assert code == 2  # two studies: which one is a usage error, as for the other commands
    assert_one_line_error(err, "--study", "'plain'", "'pipe'")


def test_report_unwritable_output(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(
        capsys, "report", "--storage", url, "-s", "plain", "-o", str(blocker / "r.html")
    )
    assert code == 1
    assert_one_line_error(err, "cannot write", "r.html")


def test_dashboard_bad_storage_and_busy_port(capsys: pytest.CaptureFixture[str], url: str) -> None:
    code, _, err = run(capsys, "dashboard", "--storage", "not-a-url")
    assert code == 1
    assert_one_line_error(err, "storage must be a SQLAlchemy URL")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run(capsys, "dashboard", "--storage", url, "--port", str(port))
    assert code == 1
    assert_one_line_error(err, f"cannot listen on 127.0.0.1:{port}")


def test_dashboard_says_where_it_listens_and_serves(url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "metatune.cli", "dashboard", "--storage", url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        assert "on http://127.0.0.1:" in line and "loopback only" in line, line
        base = line.split(" on ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(base + "api/studies", timeout=30) as r:
            names = {s["name"] for s in json.load(r)["studies"]}
        assert names == {"plain", "pipe"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_report_of_stored_multi_objective_and_define_by_run_studies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, curve_makers: tuple
) -> None:
    from metatune import Study, TrialPruned

    url = f"sqlite:///{tmp_path / 'more.db'}"
    _, make_two_objective_study = curve_makers
    make_two_objective_study(url, n_trials=10)

    def objective(trial) -> float:
        kind = trial.suggest_categorical("kind", ["a", "b"])
        x = trial.suggest_float("x", 0.0, 1.0) if kind == "a" else 0.3
        for step in range(4):
            trial.report(x + 1 / (step + 1), step)
            if trial.should_prune():
                raise TrialPruned()
        return x

    Study(optimizer="random", seed=0, name="dbr", storage=url, pruner="median").optimize(
        objective, n_trials=12, show_progress=False
    )
    for name, expected in (
        ("two", "<section id='pareto'>"),
        ("dbr", "<section id='intermediate'>"),
    ):
        out = tmp_path / f"{name}.html"
        code, _, err = run(capsys, "report", "--storage", url, "--study", name, "-o", str(out))
        assert code == 0, err
        assert expected in out.read_text(encoding="utf-8")
