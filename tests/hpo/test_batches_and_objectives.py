"""ask(n) batches and multi-objective studies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metatune import Categorical, Float, Int, Study, TrialState
from metatune.pareto import dominates


def _space():
    return {"x": Float(0, 1), "n": Int(1, 4), "c": Categorical(["a", "b"])}


@pytest.mark.parametrize("optimizer", ["random", "gp"])
def test_ask_n_returns_n_distinct_valid_points(optimizer):
    study = Study(
        _space(),
        optimizer=optimizer,
        seed=0,
        optimizer_options=None if optimizer == "random" else {"n_startup_trials": 3},
    )
    for t in study.ask(3):
        study.tell(t, t.params["x"] + t.params["n"])
    batch = study.ask(4)
    assert len(batch) == 4 and len({t.number for t in batch}) == 4
    keys = {repr(sorted(t.params.items())) for t in batch}
    assert len(keys) == 4
    for t in batch:
        study.space.validate(t.params)
        assert t.state is TrialState.RUNNING
    with pytest.raises(ValueError, match="n must be a positive integer"):
        study.ask(0)


def _two_objectives(params):
    x, y = params["x"], params["y"]
    return [x**2 + y**2, (x - 1) ** 2 + y]


@pytest.mark.parametrize("optimizer", ["mo-gp", "nsga2", "random"])
def test_the_pareto_front_of_a_two_objective_study_is_non_dominated(optimizer):
    options = {"n_startup_trials": 4} if optimizer == "mo-gp" else None
    if optimizer == "nsga2":
        options = {"population_size": 4}
    study = Study(
        {"x": Float(0, 1), "y": Float(0, 1)},
        directions=["minimize", "minimize"],
        optimizer=optimizer,
        optimizer_options=options,
        seed=0,
    )
    study.optimize(_two_objectives, n_trials=10)
    front = study.best_trials
    done = study.completed_trials()
    assert front and all(t.values is not None and len(t.values) == 2 for t in done)
    for a in front:
        assert not any(dominates(b.values, a.values) for b in done)
    for b in done:
        if b not in front:
            assert any(dominates(a.values, b.values) for a in front)
    with pytest.raises(ValueError, match="best_trials"):
        study.best  # noqa: B018


def test_maximized_objectives_are_compared_the_right_way():
    study = Study({"x": Float(0, 1)}, directions=["maximize", "minimize"], optimizer="random")
    for vals in ([1.0, 1.0], [2.0, 1.0], [0.5, 0.1]):
        t = study.ask()
        study.tell(t, vals)
    assert sorted(t.values for t in study.best_trials) == [[0.5, 0.1], [2.0, 1.0]]


def test_multi_objective_results_of_the_wrong_shape_fail_their_trial():
    study = Study({"x": Float(0, 1)}, directions=["minimize", "minimize"], optimizer="random")
    for bad in (1.0, [1.0], [1.0, math.nan], "ab"):
        t = study.ask()
        done = study.tell(t, bad)
        assert done.state is TrialState.FAILED and done.error
    t = study.ask()
    assert study.tell(t, np.array([1.0, 2.0])).values == [1.0, 2.0]


def test_multi_objective_arguments_are_checked_before_anything_is_stored():
    with pytest.raises(ValueError, match="not both"):
        Study({"x": Float(0, 1)}, direction="minimize", directions=["minimize", "maximize"])
    with pytest.raises(ValueError, match="every entry of directions"):
        Study({"x": Float(0, 1)}, directions=["minimize", "up"])
    with pytest.raises(ValueError, match="optimizes one objective.*'mo-gp'"):
        Study({"x": Float(0, 1)}, directions=["minimize", "maximize"], optimizer="gp")


def test_directions_survive_a_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Study(
        {"x": Float(0, 1)},
        directions=["minimize", "maximize"],
        storage=url,
        name="mo",
        optimizer="random",
    ).optimize(lambda p: [p["x"], p["x"]], n_trials=3)
    again = Study(name="mo", storage=url)
    assert again.directions == ["minimize", "maximize"] and again.is_multi_objective
    assert len(again.best_trials) == 3  # x against x, one minimized, one maximized: all tie
    with pytest.raises(ValueError, match="exists with directions"):
        Study(name="mo", storage=url, directions=["minimize", "minimize"])


MO_OPTIONS = {"mo-gp": {"n_startup_trials": 3, "n_candidates": 64}, "nsga2": {"population_size": 3}}


def _mo_study(optimizer, **kwargs):
    return Study(
        {"x": Float(0, 1), "y": Float(0, 1)},
        directions=["minimize", "minimize"],
        optimizer=optimizer,
        optimizer_options=MO_OPTIONS[optimizer],
        **kwargs,
    )


def _mo_run(study, n):
    asked = []
    for _ in range(n):
        t = study.ask()
        asked.append(t.params)
        study.tell(t, _two_objectives(t.params))
    return asked


@pytest.mark.parametrize("optimizer", sorted(MO_OPTIONS))
def test_multi_objective_optimizers_are_reproducible_and_resume(optimizer, tmp_path):
    expected = _mo_run(_mo_study(optimizer, seed=4), 6)
    assert _mo_run(_mo_study(optimizer, seed=4), 6) == expected
    url = f"sqlite:///{tmp_path / 's.db'}"
    before = _mo_study(optimizer, seed=4, storage=url, name="mo")
    _mo_run(before, 3)
    before.storage.close()
    assert _mo_run(Study(name="mo", storage=url), 3) == expected[3:]
    a, b = _mo_study(optimizer, seed=4).ask(2)
    assert a.params != b.params


def test_a_bad_executor_is_refused_before_any_trial_even_with_one_worker():
    study = Study({"x": Float(0, 1)}, optimizer="random")
    with pytest.raises(ValueError, match="unknown executor 'rey'; available: process, ray"):
        study.optimize(lambda p: p["x"], n_trials=1, executor="rey")
    assert study.trials == []
