"""optimize(n_workers=N, executor="ray") on a local Ray with 2 CPUs."""

from __future__ import annotations

import json
import threading

import pytest
from _objectives import (
    BRANIN_SPACE,
    branin,
    learning_curve,
    raise_when_x1_high,
    random_median_best,
    sigkill_self_when_x1_high,
    sleep_when_x1_high,
)

from metatune import Study, TrialState
from metatune.executors.ray import RayExecutor

pytest.importorskip("ray")

# 4 trials at once on 2 CPUs: each asks for half a CPU
OPTIONS = {"resources": {"num_cpus": 0.5}}


def test_bad_resources_are_refused_with_the_allowed_keys() -> None:
    with pytest.raises(ValueError, match="unknown key 'gpus'; allowed: num_cpus, num_gpus"):
        RayExecutor(resources={"gpus": 1})
    with pytest.raises(ValueError, match=r"\['num_gpus'\] must be a number >= 0"):
        RayExecutor(resources={"num_gpus": -1})


def test_four_ray_workers_beat_random_search(local_ray) -> None:
    n = 16  # as the process executor's test
    rand_best = random_median_best(n)
    gp = Study(
        BRANIN_SPACE,
        optimizer="gp",
        seed=2,
        optimizer_options={"n_candidates": 256, "n_startup_trials": 6},
    )
    gp.optimize(branin, n_trials=n, n_workers=4, executor="ray", executor_options=OPTIONS)
    trials = gp.trials
    assert [t.number for t in trials] == list(range(n))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == n
    assert gp.best_value < rand_best


def test_a_sigkilled_ray_worker_fails_its_trial_and_the_study_finishes(local_ray) -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    study.optimize(
        sigkill_self_when_x1_high,
        n_trials=8,
        n_workers=4,
        executor="ray",
        executor_options=OPTIONS,
    )
    trials = study.trials
    assert len(trials) == 8
    assert any(t.params["x1"] > 5.0 for t in trials)
    for t in trials:
        if t.params["x1"] > 5.0:
            assert t.state is TrialState.FAILED
            assert "the Ray worker running this trial died" in t.error
        else:
            assert t.state is TrialState.COMPLETE, t.error


def test_an_exception_in_a_ray_task_fails_only_its_trial(local_ray) -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    study.optimize(
        raise_when_x1_high, n_trials=6, n_workers=2, executor="ray", executor_options=OPTIONS
    )
    for t in study.trials:
        high = t.params["x1"] > 5.0
        assert t.state is (TrialState.FAILED if high else TrialState.COMPLETE)
        if high:
            assert t.error.startswith("ValueError: x1=")


def test_ray_sends_lambdas_but_refuses_what_cannot_be_pickled(local_ray) -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    study.optimize(lambda p: p["x1"], n_trials=2, n_workers=2, executor="ray")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    lock = threading.Lock()

    def holds_a_lock(p):
        with lock:
            return p["x1"]

    with pytest.raises(TypeError, match="objective '.*holds_a_lock' cannot be sent to Ray"):
        study.optimize(holds_a_lock, n_trials=2, n_workers=2, executor="ray")
    assert len(study.trials) == 2


def test_ctrl_c_cancels_ray_tasks_and_keeps_finished_trials(local_ray) -> None:
    seen = []

    def interrupt(study, trial) -> None:
        seen.append(trial.number)
        if len(seen) == 2:
            raise KeyboardInterrupt

    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(
            sleep_when_x1_high,
            n_trials=20,
            n_workers=4,
            executor="ray",
            executor_options=OPTIONS,
            callbacks=[interrupt],
        )
    trials = study.trials
    assert all(trials[n].state is TrialState.COMPLETE for n in seen)
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert failed and all("interrupted by the user" in t.error for t in failed)


def test_ray_workers_report_and_get_prune_decisions(local_ray) -> None:
    from metatune.pruners import Pruner

    class PruneAtFirstReportAbove30(Pruner):
        def prune(self, trial, trials, direction) -> bool:
            return trial.intermediate_values[max(trial.intermediate_values)] > 30.0

    study = Study(BRANIN_SPACE, optimizer="random", seed=0, pruner=PruneAtFirstReportAbove30())
    study.optimize(
        learning_curve, n_trials=8, n_workers=4, executor="ray", executor_options=OPTIONS
    )
    for t in study.trials:
        first = branin(t.params) + 3
        assert t.state is (TrialState.PRUNED if first > 30.0 else TrialState.COMPLETE), t.error
        assert len(t.intermediate_values) == (1 if first > 30.0 else 4)
