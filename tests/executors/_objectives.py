"""Objectives the executor tests send to worker processes and Ray workers (importable there:
a module of their own, not a test file)."""

from __future__ import annotations

import math
import os
import signal
import time

from metatune import Float

BRANIN_SPACE = {"x1": Float(-5.0, 10.0), "x2": Float(0.0, 15.0)}
BRANIN_MIN = 0.397887


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def raise_when_x1_high(p: dict) -> float:
    if p["x1"] > 5.0:
        raise ValueError(f"x1={p['x1']:.3f} is too high")
    return branin(p)


def exit_when_x1_high(p: dict) -> float:
    """Dies without cleanup (like a segfault or the OOM killer) on part of the space."""
    if p["x1"] > 5.0:
        os._exit(7)
    return branin(p)


def sigkill_self_when_x1_high(p: dict) -> float:
    if p["x1"] > 5.0:
        os.kill(os.getpid(), signal.SIGKILL)
    return branin(p)


def sleepy(p: dict) -> float:
    """Slow enough that trials are still running when the driver is interrupted."""
    time.sleep(30.0)
    return branin(p)


def branin_in_2s(p: dict) -> float:
    time.sleep(2.0)
    return branin(p)


def sleep_when_x1_high(p: dict) -> float:
    """Fast on part of the space, stuck on the rest: some trials finish, others are running
    when the driver is interrupted."""
    if p["x1"] > 2.5:
        time.sleep(60.0)
    return branin(p)


# -- a small pipeline whose stages report their own costs -----------------------------------------
PREP_COST, FIT_COST = 5.0, 1.0


def prep(n: int):
    from metatune.pipeline import StageResult

    return StageResult({"n": n, "pid": os.getpid()}, cost=PREP_COST)


def fit(data: dict, w: float):
    from metatune.pipeline import StageResult

    return StageResult((w - data["n"] / 10.0) ** 2, cost=FIT_COST)


def small_pipeline(cache_dir: str):
    from metatune import Categorical, Pipeline, Stage

    return Pipeline(
        [
            Stage("prep", prep, {"n": Categorical([1, 2, 3])}),
            Stage("fit", fit, {"w": Float(0.0, 1.0)}),
        ],
        cache=cache_dir,
    )


def prune_when_x1_high(p: dict) -> float:
    from metatune import TrialPruned

    if p["x1"] > 5.0:
        raise TrialPruned()
    return branin(p)


def learning_curve(p: dict) -> float:
    """Reports a falling curve over 4 steps, asking the pruner after each report."""
    import metatune

    for step in range(4):
        metatune.report_intermediate(branin(p) + 3 - step, step)
        if metatune.should_prune():
            raise metatune.TrialPruned()
    return branin(p)


def random_median_best(n_trials: int, seeds: int = 5) -> float:
    """Random search's best Branin value after `n_trials`, median over `seeds` seeds: the bar a
    parallel GP must clear."""
    import statistics

    from metatune import Study

    bests = []
    for seed in range(seeds):
        study = Study(BRANIN_SPACE, optimizer="random", seed=seed)
        study.optimize(branin, n_trials=n_trials, show_progress=False)
        bests.append(study.best_value)
    return statistics.median(bests)
