"""Studies the report and dashboard tests look at: plain with failures, a pipeline with real
cache hits, and empty. Each is made in memory in well under a second."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Categorical, Float, Int, Pipeline, Stage, Study
from metatune.pipeline import StageResult
from metatune.storage import InMemoryStorage


def objective(p: dict) -> float:
    if p["kernel"] == "poly" and p["x"] > 1.0:
        raise ValueError("diverged <b>&</b>")  # markup in an error must reach pages as text
    return (p["x"] - 0.5) ** 2 + 0.1 * p["depth"] + (0.3 if p["kernel"] == "rbf" else 0.0)


def make_failing_study(storage=None, n_trials: int = 30, name: str = "plain") -> Study:
    space = {
        "x": Float(-2.0, 2.0),
        "lr": Float(1e-4, 1.0, log=True),
        "depth": Int(1, 6),
        "kernel": Categorical(["linear", "rbf", "poly"]),
    }
    study = Study(
        space, optimizer="random", seed=3, name=name, storage=storage or InMemoryStorage()
    )
    study.optimize(objective, n_trials=n_trials, show_progress=False)
    return study


def _prep(scaler: str) -> StageResult:
    return StageResult({"scaler": scaler}, cost=2.0 if scaler == "robust" else 1.0)


def _train(data: dict, lr: float, width: int) -> StageResult:
    if lr > 0.8:
        raise RuntimeError("loss is nan")
    return StageResult({**data, "lr": lr, "width": width}, cost=1.0 + width / 16)


def _evaluate(model: dict, threshold: float) -> StageResult:
    loss = (
        (model["lr"] - 0.3) ** 2 + abs(threshold - 0.5) + (0.1 if model["scaler"] == "std" else 0)
    )
    return StageResult(loss, cost=0.25)


def make_pipeline_study(cache: Path, budget: float = 60.0, storage=None) -> Study:
    """A 3-stage pipeline whose first stage has two settings, so random search reuses cached
    prefixes; one setting of the second stage fails."""
    pipe = Pipeline(
        [
            Stage("prep", _prep, {"scaler": Categorical(["std", "robust"])}),
            Stage("train", _train, {"lr": Float(0.01, 1.0), "width": Int(8, 64, log=True)}),
            Stage("evaluate", _evaluate, {"threshold": Float(0.0, 1.0)}),
        ],
        cache=cache,
    )
    study = Study(
        pipe, optimizer="random", seed=1, name="pipe", storage=storage or InMemoryStorage()
    )
    study.optimize(pipe, budget=budget, show_progress=False)
    return study


@pytest.fixture(scope="session")
def study_makers() -> tuple:
    """(make_failing_study, make_pipeline_study), for tests that store studies themselves."""
    return make_failing_study, make_pipeline_study


@pytest.fixture
def failing_study() -> Study:
    study = make_failing_study()
    study.ask()  # one trial still running
    return study


@pytest.fixture
def pipeline_study(tmp_path: Path) -> Study:
    return make_pipeline_study(tmp_path / "cache")


@pytest.fixture
def empty_study() -> Study:
    return Study({"x": Float(0, 1)}, optimizer="random", seed=0, name="empty")
