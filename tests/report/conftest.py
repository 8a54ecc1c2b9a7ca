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


def curve_objective(trial) -> float:
    """A tiny regression trained epoch by epoch with Adam or AdamW (weight decay only for AdamW:
    a conditional parameter) under the LHOPT controller: reports the validation loss each epoch,
    stops when the pruner says so and keeps the controller's learning-rate record."""
    import torch

    from metatune import TrialPruned
    from metatune.integrations.schedule import LR_SCHEDULE_ATTR, schedule_record
    from metatune.lhopt import Controller

    name = trial.suggest_categorical("optimizer", ["adam", "adamw"])
    lr = trial.suggest_float("lr", 1e-4, 0.5, log=True)
    wd = trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True) if name == "adamw" else 0.0
    width = trial.suggest_int("width", 2, 16)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=g)
    w = torch.tensor([[1.5], [-1.0], [0.8], [0.0], [0.5], [-0.7]])
    y = torch.tanh(x @ w) * 2 + 0.1 * torch.randn(96, 1, generator=g)
    torch.manual_seed(trial.number)
    net = torch.nn.Sequential(torch.nn.Linear(6, width), torch.nn.Tanh(), torch.nn.Linear(width, 1))
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    opt = cls(net.parameters(), lr=lr, weight_decay=wd)
    epochs, batches = 8, 4
    ctl = Controller(opt, total_steps=epochs * batches, n_policy_steps=8, policy=_policy())
    try:
        for epoch in range(epochs):
            for b in range(batches):
                loss = torch.nn.functional.mse_loss(
                    net(x[b * 16 : b * 16 + 16]), y[b * 16 : b * 16 + 16]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                ctl.step(loss.item())
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(net(x[64:]), y[64:]).item()
            trial.report(val, epoch)
            if trial.should_prune():
                raise TrialPruned()
    finally:
        trial.set_user_attr(LR_SCHEDULE_ATTR, schedule_record(ctl, lr))
    return val


_POLICY: list = []


def _policy():
    from metatune.lhopt import Policy
    from metatune.lhopt.controller import default_policy_path

    if not _POLICY:  # loaded once, not once a trial
        _POLICY.append(Policy.load(default_policy_path()))
    return _POLICY[0]


def make_curve_study(storage=None, n_trials: int = 24, name: str = "curves") -> Study:
    """A define-by-run study (no declared space, a conditional parameter) whose trials report
    learning curves; the median pruner stops most of them after the warm-up epochs."""
    study = Study(
        optimizer="random",
        seed=0,
        name=name,
        pruner="median",
        pruner_options={"n_warmup_steps": 2, "n_startup_trials": 4},
        storage=storage or InMemoryStorage(),
    )
    study.optimize(curve_objective, n_trials=n_trials, show_progress=False)
    return study


def make_two_objective_study(storage=None, n_trials: int = 30, name: str = "two") -> Study:
    """Error against model size: a trade-off with a real Pareto front."""
    study = Study(
        {"width": Int(1, 64, log=True), "reg": Float(1e-4, 1.0, log=True)},
        directions=["minimize", "minimize"],
        optimizer="random",
        seed=2,
        name=name,
        storage=storage or InMemoryStorage(),
    )
    study.optimize(
        lambda p: [1.0 / p["width"] + 0.3 * p["reg"], float(p["width"])],
        n_trials=n_trials,
        show_progress=False,
    )
    return study


@pytest.fixture(scope="session")
def curve_study() -> Study:
    """Read-only: made once for every test that looks at learning curves."""
    return make_curve_study()


@pytest.fixture(scope="session")
def two_objective_study() -> Study:
    return make_two_objective_study()


@pytest.fixture(scope="session")
def curve_makers() -> tuple:
    """(make_curve_study, make_two_objective_study), for tests that store studies themselves."""
    return make_curve_study, make_two_objective_study
