"""Pruning through a Study: reports stored, pruned trials stored as pruned (with their
reports) and never best, on SQLite; the multi-fidelity GP reading those reports."""

import logging

import metatune
from metatune.trial import TrialState


def _overfitting(trial):
    """Lower x is better, but every curve rises with the steps: a trial stopped early has a
    lower last report than any completed trial's final value."""
    x = trial.suggest_float("x", 0.0, 1.0)
    value = None
    for step in range(1, 10):
        value = x + 0.1 * step
        trial.report(value, step)
        if trial.should_prune():
            raise metatune.TrialPruned()
    return value


def test_pruned_trials_are_stored_as_pruned_and_never_best(tmp_path):
    url = f"sqlite:///{tmp_path / 'pruning.db'}"
    study = metatune.Study(
        storage=url, name="prune", optimizer="random", pruner="successive-halving", seed=0
    )
    study.optimize(_overfitting, n_trials=20)
    study.storage.close()

    reopened = metatune.Study(name="prune", storage=url)
    trials = reopened.trials
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert pruned and complete
    assert all(t.intermediate_values and t.last_step < 9 for t in pruned)
    assert all(sorted(t.intermediate_values) == list(range(1, 10)) for t in complete)
    best = reopened.best_trial
    assert best.state is TrialState.COMPLETE
    assert reopened.best_value == min(t.value for t in complete)
    # the check can fail: some pruned trial reported lower than the best completed value
    assert min(min(t.intermediate_values.values()) for t in pruned) < reopened.best_value
    reopened.storage.close()


def test_ask_tell_reports_and_prunes():
    space = metatune.Space({"x": metatune.Float(0.0, 1.0)})
    study = metatune.Study(space, optimizer="random", pruner="median", seed=1)
    decisions = []
    for i in range(8):
        trial = study.ask()
        x = 0.0 if i < 5 else 1.0  # five good completed trials, then bad ones
        pruned = False
        for step in range(3):
            study.report(trial, x + step, step)
            if study.should_prune(trial):
                pruned = True
                break
        decisions.append(pruned)
        if pruned:
            study.tell(trial, state="pruned")
        else:
            study.tell(trial, x + 2)
    assert decisions == [False] * 5 + [True] * 3
    assert [t.state for t in study.trials[5:]] == [TrialState.PRUNED] * 3
    assert study.best_value == 2.0


def test_mf_gp_models_the_reports_of_a_pruned_study(caplog):
    caplog.set_level(logging.WARNING, logger="metatune")
    study = metatune.Study(
        optimizer="mf-gp",
        optimizer_options={"n_startup_trials": 4, "n_candidates": 64},
        pruner="successive-halving",
        seed=2,
    )
    study.optimize(_overfitting, n_trials=9)
    assert any(t.state is TrialState.PRUNED for t in study.trials)
    assert "suggestion failed" not in caplog.text  # the model path ran
    assert study.best_trial.state is TrialState.COMPLETE
