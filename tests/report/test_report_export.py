"""Flat CSV/JSON exports of trials: columns, first-line errors, full-precision values."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest

from metatune.report.export import trial_columns, trial_rows, write_csv, write_json, write_trials
from metatune.trial import Trial, TrialState

T0 = datetime(2024, 1, 2, 3, 4, 5, 123456)

TRIALS = [
    Trial(
        0,
        {"lr": 0.1234567890123, "opt": "adam"},
        TrialState.COMPLETE,
        value=0.987654321012345,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1.5),
        user_attrs={"std": 0.01},
    ),
    Trial(
        1,
        {"lr": 0.5, "opt": None},
        TrialState.FAILED,
        error="ValueError: bad\nTraceback (most recent call last):\n  ...",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2),
    ),
    Trial(2, {}, TrialState.RUNNING, started_at=T0),  # not suggested yet
]


def test_columns_and_rows() -> None:
    assert trial_columns(TRIALS) == [
        "number", "state", "value", "error", "started_at", "finished_at", "duration",
        "params.lr", "params.opt", "user_attrs.std",
    ]  # fmt: skip
    rows = trial_rows(TRIALS)
    assert rows[0]["value"] == 0.987654321012345 and rows[0]["duration"] == 1.5
    assert rows[0]["started_at"] == "2024-01-02T03:04:05.123456Z"
    assert rows[1]["error"] == "ValueError: bad" and rows[1]["params.opt"] is None
    assert rows[2]["params.lr"] is None and rows[2]["finished_at"] is None
    assert rows[2]["duration"] is None and rows[2]["user_attrs.std"] is None


def test_csv_round_trip() -> None:
    buf = io.StringIO()
    write_csv(TRIALS, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["state"] for r in rows] == ["complete", "failed", "running"]
    assert float(rows[0]["value"]) == 0.987654321012345
    assert float(rows[0]["params.lr"]) == 0.1234567890123
    assert rows[1]["value"] == "" and rows[1]["error"] == "ValueError: bad"
    assert rows[2]["params.opt"] == ""


def test_json_round_trip_keeps_types() -> None:
    buf = io.StringIO()
    write_trials(TRIALS, buf, "json")
    rows = json.loads(buf.getvalue())
    assert rows == json.loads(json.dumps(trial_rows(TRIALS)))
    assert rows[1]["params.opt"] is None and rows[0]["user_attrs.std"] == 0.01


def test_empty_and_bad_format() -> None:
    buf = io.StringIO()
    write_json([], buf)
    assert json.loads(buf.getvalue()) == []
    with pytest.raises(ValueError, match="csv, json"):
        write_trials(TRIALS, io.StringIO(), "xml")


def test_pipeline_trials_export_their_cost_cached_depth_and_seconds_saved(tmp_path) -> None:
    from metatune import Float, Pipeline, Stage, Study
    from metatune.pipeline import StageResult

    def prep(scale):
        return StageResult(scale, cost=2.0)

    def score(x, k):
        return StageResult(x + k, cost=1.0)

    pipe = Pipeline(
        [Stage("prep", prep, {"scale": Float(0, 1)}), Stage("score", score, {"k": Float(0, 1)})],
        cache=tmp_path / "cache",
    )
    study = Study(pipe, optimizer="random", seed=0)
    study.optimize(pipe, n_trials=2)
    trial = study.ask()  # told by hand with the records of a run that reuses trial 0's prefix
    rerun = pipe.run({**study.trials[0].params, "score.k": 0.5})
    study.tell(trial, rerun.result, system_attrs=rerun.system_attrs)
    columns = trial_columns(study.trials)
    assert columns[7:10] == ["cost", "cache_depth", "seconds_saved"]
    rows = trial_rows(study.trials)
    assert [r["cost"] for r in rows] == [3.0, 3.0, 1.0]
    assert [r["cache_depth"] for r in rows] == [0, 0, 1]
    assert rows[2]["seconds_saved"] >= 0.0
