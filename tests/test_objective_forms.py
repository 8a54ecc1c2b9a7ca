"""Which form an objective has is decided before the first trial."""

from __future__ import annotations

import pytest

from metatune import Float, Study


def test_an_optuna_style_objective_is_refused_before_any_trial() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return (x - 0.3) ** 2

    with pytest.raises(TypeError, match=r"calls suggest_float.*params\['lr'\]"):
        study.optimize(objective, n_trials=3)
    assert study.trials == []


def test_nested_suggest_calls_are_seen_and_plain_objectives_run() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)

    def objective(trial):
        def inner():
            return trial.suggest_categorical("c", ["a", "b"])

        return len(inner())

    class Objective:
        def __call__(self, trial):
            return trial.suggest_int("n", 0, 3)

    for bad in (objective, Objective()):
        with pytest.raises(TypeError, match="suggest_"):
            study.optimize(bad, n_trials=1)
    study.optimize(lambda p: p["x"], n_trials=2)
    assert len(study.trials) == 2
