"""Which form an objective has is decided before the first trial."""

from __future__ import annotations

import pytest

from metatune import Float, Study, TrialState


def test_an_optuna_style_objective_runs_on_a_declared_space() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        assert trial.params == {"x": x}
        return (x - 0.3) ** 2

    study.optimize(objective, n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert all(t.value == pytest.approx((t.params["x"] - 0.3) ** 2) for t in study.trials)


def test_objectives_of_the_wrong_shape_are_refused_before_any_trial() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    for bad in (lambda: 1.0, lambda a, b: 1.0):
        with pytest.raises(TypeError, match="must take one argument"):
            study.optimize(bad, n_trials=2)
    with pytest.raises(TypeError, match="callable"):
        study.optimize(3.0, n_trials=2)  # type: ignore[arg-type]
    assert study.trials == []


def test_a_dict_objective_needs_a_declared_space() -> None:
    study = Study(optimizer="random", seed=0)  # define-by-run
    with pytest.raises(TypeError, match=r"declares no space.*trial\.suggest_float"):
        study.optimize(lambda params: params["x"], n_trials=2)
    assert study.trials == []


def test_nested_suggest_calls_make_a_trial_objective() -> None:
    study = Study(optimizer="random", seed=0)

    def objective(t):
        def inner():
            return t.suggest_categorical("c", ["a", "bb"])

        return len(inner())

    class Objective:
        def __call__(self, t):
            return t.suggest_int("n", 0, 3)

    study.optimize(objective, n_trials=2)
    assert {t.params["c"] for t in study.trials} <= {"a", "bb"}
    other = Study(optimizer="random", seed=0)
    other.optimize(Objective(), n_trials=2)
    assert all(0 <= t.params["n"] <= 3 for t in other.trials)


def test_a_name_outside_the_declared_space_fails_its_trial_with_the_reason() -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    study.optimize(lambda trial: trial.suggest_int("n", 0, 3), n_trials=1)
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED
    assert "'n' is not in the study's declared space" in trial.error
