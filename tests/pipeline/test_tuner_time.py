"""The tuner's time is a cost: a budget in wall seconds bounds the wall time of a study."""

from __future__ import annotations

import time

import pytest

from metatune import Float, Pipeline, Stage, Study
from metatune.pipeline import StageResult
from metatune.trial import SystemAttr


def _slow_prep(x):
    time.sleep(0.05 + 0.05 * x)
    return x


def _quick_train(prev, y):
    time.sleep(0.01)
    return (prev - 0.3) ** 2 + (y - 0.6) ** 2


def _sleeping_pipeline(tmp_path, **options) -> Pipeline:
    return Pipeline(
        [
            Stage("prep", _slow_prep, {"x": Float(0.0, 1.0)}),
            Stage("train", _quick_train, {"y": Float(0.0, 1.0)}),
        ],
        cache=tmp_path / "cache",
        **options,
    )


def test_a_wall_second_budget_ends_within_one_trial_and_one_ask(tmp_path) -> None:
    """Stages are wall seconds, so every trial is charged the tuner's time too (the ask, the
    study's bookkeeping, the cache's): the study ends within the budget plus its last trial.
    The bound is in the trials' own measured durations, so it holds on a slow machine."""
    budget = 3.0
    pipe = _sleeping_pipeline(tmp_path)
    light = {"n_candidates": 256, "prefix_candidates": 32, "n_cost_samples": 32}
    study = Study(
        pipe, optimizer="eeipu", seed=1, optimizer_options={"n_startup_trials": 2, **light}
    )
    start = time.perf_counter()
    study.optimize(pipe, budget=budget)
    wall = time.perf_counter() - start
    trials = study.trials
    assert len(trials) > 2  # the budget outlasts the warm-up (even on a loaded machine)
    tuner = [t.system_attrs[SystemAttr.TUNER_COST] for t in trials]
    assert all(c > 0 for c in tuner)
    for t in trials:  # the recorded cost: stages, then the tuner's share
        stages = sum(r["cost"] for r in t.system_attrs[SystemAttr.STAGES])
        assert t.system_attrs[SystemAttr.COST] == pytest.approx(
            stages + t.system_attrs[SystemAttr.TUNER_COST]
        )
        assert t.system_attrs[SystemAttr.TUNER_COST] >= t.system_attrs[SystemAttr.ASK_SECONDS]
    longest = max(t.system_attrs[SystemAttr.COST] for t in trials)  # one trial plus its ask
    assert study.cost_spent < budget + longest
    # what the costs do not hold: the study's set-up and the last tell
    assert wall <= budget + longest + 0.1 * budget
    assert study.cost_spent == pytest.approx(wall, rel=0.15)


def test_a_simulated_clock_is_not_charged_the_tuners_time(tmp_path) -> None:
    """Stages that report their own cost (a simulated clock) are not in seconds: "auto" leaves
    the tuner's time out, and the budget counts the stages' units exactly."""

    def prep(x):
        return StageResult(x, cost=4.0)

    def train(prev, y):
        return StageResult((prev - 0.3) ** 2 + y, cost=1.0)

    pipe = Pipeline(
        [Stage("prep", prep, {"x": Float(0.0, 1.0)}), Stage("train", train, {"y": Float(0, 1)})],
        cache=tmp_path / "cache",
    )
    study = Study(pipe, optimizer="eeipu", seed=0, optimizer_options={"n_startup_trials": 3})
    study.optimize(pipe, n_trials=6)
    for t in study.trials:
        assert t.system_attrs[SystemAttr.TUNER_COST] == 0.0
        hits = [r["cache_hit"] for r in t.system_attrs[SystemAttr.STAGES]]
        assert t.system_attrs[SystemAttr.COST] == (1.0 if hits[0] else 5.0)
    # True: the units are seconds after all, so a cache hit charged 0 still pays the tuner
    pipe.count_tuner_time = True
    study.optimize(pipe, n_trials=3)
    assert all(t.system_attrs[SystemAttr.TUNER_COST] > 0 for t in study.trials[6:])


def test_the_tuners_time_can_be_left_out_of_wall_second_costs(tmp_path) -> None:
    pipe = _sleeping_pipeline(tmp_path, count_tuner_time=False)
    study = Study(pipe, optimizer="random", seed=0)
    study.optimize(pipe, n_trials=2)
    for t in study.trials:
        assert t.system_attrs[SystemAttr.TUNER_COST] == 0.0
        stages = sum(r["cost"] for r in t.system_attrs[SystemAttr.STAGES])
        assert t.system_attrs[SystemAttr.COST] == stages
    with pytest.raises(ValueError, match="count_tuner_time"):
        _sleeping_pipeline(tmp_path, count_tuner_time="yes")
    with pytest.raises(ValueError, match="count_tuner_time"):
        _sleeping_pipeline(tmp_path, count_tuner_time=1)
