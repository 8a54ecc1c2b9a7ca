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
