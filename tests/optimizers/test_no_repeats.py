"""A model-based optimizer never proposes a configuration that was already tried or is running."""

from __future__ import annotations

import pytest

from metatune import Categorical, Float, Int, Pipeline, Stage, Study
from metatune.pipeline import StageResult


@pytest.mark.parametrize("optimizer", ["gp", "ei"])
def test_a_small_discrete_space_is_covered_without_repeats(optimizer: str) -> None:
    space = {"k": Int(0, 2), "c": Categorical(["a", "b"])}  # 6 configurations
    study = Study(space, optimizer=optimizer, seed=0, optimizer_options={"n_startup_trials": 2})
    study.optimize(lambda p: p["k"] + (p["c"] == "b"), n_trials=6)
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configs)) == 6


def test_eeipu_leaves_an_exhausted_cached_prefix(tmp_path) -> None:
    """README's old example: the last stage has three values, so once they are tried on the
    best cached prefix, reusing it again can only repeat; a new point is proposed instead."""

    def prep(data, scale):
        return StageResult([x * scale for x in data], cost=5.0)

    def train(xs, lr):
        return StageResult(sum(xs) * lr, cost=5.0)

    def evaluate(w, k):
        return StageResult({"objective": (w - 3) ** 2 + k}, cost=1e-6)

    pipe = Pipeline(
        [
            Stage("prep", prep, {"scale": Float(0.5, 2)}),
            Stage("train", train, {"lr": Float(1e-3, 1, log=True)}),
            Stage("eval", evaluate, {"k": Int(0, 2)}),
        ],
        input=[1.0, 2.0, 3.0],
        cache=tmp_path / "cache",
    )
    study = Study(pipe, optimizer="eeipu", seed=0, optimizer_options={"n_startup_trials": 4})
    study.optimize(pipe, n_trials=14)
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configs)) == len(configs) == 14


def test_the_warm_up_does_not_repeat_either() -> None:
    space = {"a": Int(0, 2), "b": Int(0, 2)}  # 9 configurations, all inside the warm-up
    study = Study(space, optimizer="gp", seed=3, optimizer_options={"n_startup_trials": 20})
    study.optimize(lambda p: p["a"] + p["b"], n_trials=9)
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configs)) == 9


def test_a_noisy_objective_may_be_evaluated_again() -> None:
    """noisy=True: a repeat is informative, so the optimizer proposes its point as it is; in a
    space of 4 configurations 8 trials must repeat some."""
    space = {"a": Int(0, 1), "b": Int(0, 1)}
    opts = {"n_startup_trials": 3, "noisy": True}
    study = Study(space, optimizer="ei", seed=0, optimizer_options=opts)
    study.optimize(lambda p: p["a"] + p["b"], n_trials=8)
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(configs)) < 8
    with pytest.raises(ValueError, match="noisy"):
        Study(space, optimizer="gp", optimizer_options={"noisy": "yes"})
