"""Define-by-run objectives: conditionals by Python `if`, the space learned from the trials."""

from __future__ import annotations

import pytest

from metatune import Study, TrialState
from metatune.define_by_run import learned_space


def _objective(trial):
    kind = trial.suggest_categorical("kind", ["linear", "mlp"])
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    loss = (lr - 0.01) ** 2
    if kind == "mlp":
        n_layers = trial.suggest_int("n_layers", 1, 3)
        for i in range(n_layers):
            loss += (trial.suggest_int(f"units_{i}", 4, 64, log=True) - 16) ** 2 / 1e3
    else:
        loss += trial.suggest_float("l2", 0.0, 1.0)
    return loss


def _active(params: dict) -> set[str]:
    names = {"kind", "lr"}
    if params["kind"] == "mlp":
        names |= {"n_layers"} | {f"units_{i}" for i in range(params["n_layers"])}
    else:
        names.add("l2")
    return names


def test_conditionals_are_learned_and_every_trial_has_exactly_its_branch(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study(storage=url, name="dbr", seed=3, optimizer_options={"n_startup_trials": 6})
    assert study.is_define_by_run
    study.optimize(_objective, n_trials=14)
    done = study.trials
    assert all(t.state is TrialState.COMPLETE for t in done)
    for t in done:
        assert set(t.params) == _active(t.params)
    space = learned_space(done)
    assert space is not None
    assert space.condition_of("l2") == ("kind", ("linear",))
    assert space.condition_of("n_layers") == ("kind", ("mlp",))
    parent, values = space.condition_of("units_2")
    assert parent == "n_layers" and set(values) == {3}
    assert space.condition_of("lr") is None


def test_a_define_by_run_study_resumes_from_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = Study(storage=url, name="dbr", seed=5, optimizer_options={"n_startup_trials": 4})
    first.optimize(_objective, n_trials=8)
    best_before = first.best_value
    first.storage.close()
    resumed = Study(name="dbr", storage=url)
    assert resumed.is_define_by_run and len(resumed.trials) == 8
    resumed.optimize(_objective, n_trials=4)
    trials = resumed.trials
    assert len(trials) == 12 and [t.number for t in trials] == list(range(12))
    assert all(set(t.params) == _active(t.params) for t in trials)
    assert resumed.best_value <= best_before


def test_the_model_proposal_is_what_suggest_returns():
    study = Study(seed=0, optimizer_options={"n_startup_trials": 3})
    study.optimize(lambda trial: (trial.suggest_float("x", -2, 2) - 1) ** 2, n_trials=12)
    # after the start-up, proposals come from the GP: they concentrate near the optimum
    late = [t.params["x"] for t in study.trials[6:]]
    assert min(abs(x - 1) for x in late) < 0.1


def test_suggesting_one_name_with_two_ranges_fails_the_trial():
    def objective(trial):
        trial.suggest_float("x", 0, 1)
        return trial.suggest_float("x", 0, 2)

    study = Study(seed=0)
    study.optimize(objective, n_trials=1)
    (t,) = study.trials
    assert t.state is TrialState.FAILED and "suggested twice" in t.error


def test_unsupported_steps_are_refused_with_the_alternative():
    study = Study(seed=0)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1, step=0.1), n_trials=1)
    assert "step is not supported" in study.trials[0].error


def test_user_attrs_set_in_the_objective_are_kept():
    def objective(trial):
        trial.set_user_attr("note", "hi")
        return trial.suggest_float("x", 0, 1)

    study = Study(seed=0)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].user_attrs == {"note": "hi"}


def test_a_failed_trial_keeps_what_it_suggested():
    def objective(trial):
        trial.suggest_int("n", 0, 3)
        raise RuntimeError("boom")

    study = Study(seed=0)
    study.optimize(objective, n_trials=2)
    assert all(t.state is TrialState.FAILED and set(t.params) == {"n"} for t in study.trials)


@pytest.mark.parametrize("optimizer", ["random", "gp", "regularized-evolution"])
def test_other_optimizers_run_define_by_run(optimizer):
    study = Study(optimizer=optimizer, seed=1)
    study.optimize(_objective, n_trials=8)
    assert all(t.state is TrialState.COMPLETE for t in study.trials)
