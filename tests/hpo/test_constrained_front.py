"""A constrained multi-objective study's result is the front of the trials that meet the
constraints, the same from the study, a report read from storage and the CLI (as in Optuna)."""

from __future__ import annotations

import json

import pytest

from metatune import Float, Study, cli, load_study
from metatune.constraints import stored_constraints
from metatune.report.data import StudyView
from metatune.storage import get_storage

# (objective values, the constrained metric c); "c <= 1" holds for all but the second, which
# would dominate the first and third, and the last trial reports no c at all.
_TOLD = [([1.0, 3.0], 0.5), ([0.5, 0.5], 2.0), ([3.0, 1.0], 1.0), ([0.1, 0.1], None)]


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study(
        {"x": Float(0, 1)},
        directions=["minimize", "minimize"],
        storage=url,
        name="mo",
        optimizer="mo-gp",
        optimizer_options={"constraints": ["c <= 1"], "n_startup_trials": 10},
        seed=0,
    )
    for values, c in _TOLD:
        metrics = {} if c is None else {"c": c}
        study.tell(study.ask(), {"objective": values, **metrics})
    return url


def _front(trials) -> list[list[float]]:
    return [list(t.values) for t in trials]


def test_best_trials_leave_out_trials_that_break_a_constraint(url):
    study = load_study("mo", url)
    assert _front(study.best_trials) == [[1.0, 3.0], [3.0, 1.0]]
    assert _front(StudyView.from_any(study).pareto()) == [[1.0, 3.0], [3.0, 1.0]]


def test_a_report_read_from_storage_uses_the_stored_constraints(url):
    store = get_storage(url)
    try:
        record = store.get_study("mo")
        trials = store.get_trials(record.id)
    finally:
        store.close()
    view = StudyView.from_record(record, trials)
    assert [str(c) for c in view.constraints] == ["c <= 1"]
    assert _front(view.pareto()) == [[1.0, 3.0], [3.0, 1.0]]


def test_cli_best_shows_the_feasible_front(capsys, url):
    assert cli.main(["best", "--study", "mo", "--storage", url, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [t["values"] for t in payload["best_trials"]] == [[1.0, 3.0], [3.0, 1.0]]


def test_an_unconstrained_study_keeps_every_trial_on_its_front(tmp_path):
    study = Study({"x": Float(0, 1)}, directions=["minimize", "minimize"], optimizer="random")
    for values, _ in _TOLD:
        study.tell(study.ask(), values)
    assert _front(study.best_trials) == [[0.1, 0.1]]


def test_stored_options_that_are_not_constraints_give_none():
    assert stored_constraints(None) == []
    assert stored_constraints({"constraints": "not a list"}) == []
    assert [str(c) for c in stored_constraints({"constraints": ["a >= 2"]})] == ["a >= 2"]
