"""Intermediate values and pruning through the study: report, should_prune, the pruned state."""

from __future__ import annotations

import pytest

import metatune
from metatune import Float, Study, TrialPruned, TrialState
from metatune.pruners import PRUNERS, Pruner, register_pruner


class PruneAboveOne(Pruner):
    """Stops a trial whose latest report is above 1 (a rule a test can predict)."""

    def prune(self, trial, trials, direction):
        return trial.intermediate_values[trial.last_step] > 1.0


def _curve(trial):
    x = trial.suggest_float("x", 0.0, 4.0)
    for step in range(5):
        trial.report(x + 0.1 * (5 - step), step)
        if trial.should_prune():
            raise TrialPruned()
    return x


def test_a_pruned_trial_is_stored_as_pruned_and_never_best(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study(storage=url, name="p", optimizer="random", seed=0, pruner=PruneAboveOne())
    study.optimize(_curve, n_trials=12)
    reopened = Study(name="p", storage=url)
    pruned = [t for t in reopened.trials if t.state is TrialState.PRUNED]
    complete = [t for t in reopened.trials if t.state is TrialState.COMPLETE]
    assert pruned and complete
    for t in pruned:
        assert t.intermediate_values[t.last_step] > 1.0
        assert t.value == t.intermediate_values[t.last_step]  # the last report is its value
        assert len(t.intermediate_values) < 5
    assert all(len(t.intermediate_values) == 5 for t in complete)
    # a pruned trial's last report can be lower than every completed value: still not best
    assert reopened.best.state is TrialState.COMPLETE
    assert reopened.best_value == min(t.value for t in complete)


def test_module_level_report_works_in_a_dict_objective():
    def objective(params):
        for step in range(3):
            metatune.report_intermediate(params["x"] * step, step)
            if metatune.should_prune():
                raise TrialPruned()
        return params["x"]

    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0, pruner="none")
    study.optimize(objective, n_trials=2)
    assert all(t.intermediate_values.keys() == {0, 1, 2} for t in study.trials)


def test_the_default_pruner_and_the_multi_fidelity_switch():
    from metatune.pruners import DEFAULT_PRUNER, PRUNERS

    study = Study({"x": Float(0, 1)}, seed=0)
    assert isinstance(study.pruner, PRUNERS.get(DEFAULT_PRUNER))
    trial = study.ask()
    assert study._optimizer_for(study.trials).name == "gp"
    study.report(trial, 1.0, 0)
    study.tell(trial, state="pruned")
    assert study._optimizer_for(study.trials).name == "mf-gp"
    chosen = Study({"x": Float(0, 1)}, seed=0, optimizer="random")
    assert chosen._optimizer_for(study.trials).name == "random"  # a chosen optimizer stays


def test_report_outside_a_trial_says_what_to_do():
    with pytest.raises(RuntimeError, match="outside a running trial"):
        metatune.report_intermediate(1.0, 0)


def test_ask_tell_reports_and_prunes():
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0, pruner=PruneAboveOne())
    trial = study.ask()
    study.report(trial, 0.5, step=0)
    assert not study.should_prune(trial)
    study.report(trial, 2.0, step=1)
    study.report(trial, 9.0, step=1)  # a second report at a step is ignored
    assert study.should_prune(trial)
    done = study.tell(trial, state="pruned")
    assert done.state is TrialState.PRUNED and done.value == 2.0
    assert done.intermediate_values == {0: 0.5, 1: 2.0}
    with pytest.raises(ValueError, match="has no completed trial"):
        study.best  # noqa: B018


@pytest.mark.parametrize(
    ("value", "step", "match"),
    [
        (float("nan"), 0, "finite number"),
        ("a", 0, "finite number"),
        (1.0, -1, "non-negative"),
        (1.0, 1.5, "non-negative"),
    ],
)
def test_bad_reports_are_refused(value, step, match):
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    trial = study.ask()
    with pytest.raises(ValueError, match=match):
        study.report(trial, value, step)


def test_pruners_are_found_by_name_and_unknown_names_listed():
    register_pruner("above-one-test")(PruneAboveOne)
    try:
        study = Study({"x": Float(0, 1)}, optimizer="random", pruner="above-one-test")
        assert isinstance(study.pruner, PruneAboveOne)
    finally:
        PRUNERS.unregister("above-one-test")
    with pytest.raises(ValueError, match="unknown pruner 'no-such-pruner'; available: .*none"):
        Study({"x": Float(0, 1)}, pruner="no-such-pruner")
