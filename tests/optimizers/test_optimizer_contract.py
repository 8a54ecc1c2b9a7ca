"""The contract every registered optimizer keeps, with and without a pipeline context.

Valid suggestions, reproducibility from the seed, distinct points for concurrent asks, and a
study reopened from SQLite that continues exactly where it stopped. Small spaces, 3 start-up
trials and light search options keep each optimizer to seconds while its model path runs.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from metatune import Categorical, Float, Int, Space, Study
from metatune.optimizers import OPTIMIZERS, available_optimizers, make_optimizer
from metatune.pipeline.context import PipelineContext
from metatune.trial import SystemAttr, Trial

N_STARTUP = 3
# Tried one by one; an optimizer gets those it accepts (`random` takes none).
LIGHT_OPTIONS: dict[str, Any] = {
    "n_startup_trials": N_STARTUP,
    "n_candidates": 64,
    "prefix_candidates": 32,
    "n_cost_samples": 32,
    "n_initial": N_STARTUP,  # the architecture searchers
    "population_size": N_STARTUP,
}
STAGES = (("prep", ("prep.x", "prep.n")), ("train", ("train.lr", "train.c")))
BUDGET = 1000.0


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small GPs: one thread avoids oversubscription on busy 2-core machines."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _space() -> Space:
    return Space(
        {
            "prep.x": Float(-2.0, 2.0),
            "prep.n": Int(1, 5),
            "train.lr": Float(1e-4, 1.0, log=True),
            "train.c": Categorical(["a", "b", "c"]),
        }
    )


def _objective(p: dict[str, Any]) -> float:
    lr = math.log10(p["train.lr"])
    return (p["prep.x"] - 0.3) ** 2 + abs(p["prep.n"] - 3) + (lr + 2) ** 2 + (p["train.c"] != "b")


def _stage_records(p: dict[str, Any]) -> list[dict[str, Any]]:
    """Deterministic per-stage costs: the first stage dominates and grows with prep.n."""
    prep = 10.0 + 5.0 * p["prep.n"] + p["prep.x"] ** 2
    train = 1.0 + abs(p["prep.x"])
    return [
        {"name": "prep", "cost": prep, "cache_hit": False, "seconds": 0.0},
        {"name": "train", "cost": train, "cache_hit": False, "seconds": 0.0},
    ]


def _context(trials: list[Trial]) -> PipelineContext:
    """What a memoizing pipeline would report: budget spent, every run's first stage cached."""
    spent = sum(float(t.system_attrs.get(SystemAttr.COST, 0.0)) for t in trials)
    ran = [t for t in trials if t.state.finished and t.params]
    prefixes = [(1, {n: t.params[n] for n in STAGES[0][1]}) for t in ran]
    return PipelineContext.build(STAGES, BUDGET, spent, prefixes, trial_cost=0.5)


def _options(name: str) -> dict[str, Any] | None:
    accepted = {}
    for key, value in LIGHT_OPTIONS.items():
        try:
            make_optimizer(name, {key: value})
        except (TypeError, ValueError):
            continue
        accepted[key] = value
    return accepted or None


def _study(method: str, seed: int = 0, **kwargs: Any) -> Study:
    return Study(
        _space(), optimizer=method, seed=seed, optimizer_options=_options(method), **kwargs
    )


def _ask(study: Study, pipeline: bool) -> Trial:
    return study.ask(pipeline=_context(study.trials) if pipeline else None)


def _tell(study: Study, trial: Trial, pipeline: bool) -> None:
    attrs = None
    if pipeline:
        records = _stage_records(trial.params)
        cost = sum(r["cost"] for r in records) + 0.5
        attrs = {SystemAttr.STAGES: records, SystemAttr.COST: cost}
    study.tell(trial, _objective(trial.params), system_attrs=attrs)


def _run(study: Study, n: int, pipeline: bool) -> list[dict[str, Any]]:
    asked = []
    for _ in range(n):
        trial = _ask(study, pipeline)
        asked.append(trial.params)
        _tell(study, trial, pipeline)
    return asked


METHODS = available_optimizers()
PIPELINE = pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipeline"])


def test_every_registered_optimizer_is_covered():
    assert set(METHODS) == set(OPTIMIZERS.names())
    assert {"gp", "random", "eeipu", "ms-bo"} <= set(METHODS)


@pytest.mark.parametrize("name", METHODS)
@PIPELINE
def test_suggestions_are_valid_points(name, pipeline, caplog):
    study = _study(name)
    for params in _run(study, N_STARTUP + 3, pipeline):
        study.space.validate(params)
    assert all(t.state.finished for t in study.trials)
    assert "suggestion failed" not in caplog.text  # the model path ran, no Sobol fallback


@pytest.mark.parametrize("name", METHODS)
@PIPELINE
def test_the_same_seed_gives_the_same_suggestions(name, pipeline):
    first = _run(_study(name, seed=7), N_STARTUP + 2, pipeline)
    again = _run(_study(name, seed=7), N_STARTUP + 2, pipeline)
    assert first == again


@pytest.mark.parametrize("name", METHODS)
@PIPELINE
def test_concurrent_asks_get_distinct_points(name, pipeline):
    study = _study(name, seed=1)
    _run(study, N_STARTUP, pipeline)
    a = _ask(study, pipeline)  # still running when b is asked: b must avoid it
    b = _ask(study, pipeline)
    assert a.params != b.params
    study.space.validate(a.params)
    study.space.validate(b.params)


@pytest.mark.parametrize("name", METHODS)
@PIPELINE
def test_a_reopened_study_continues_the_same_sequence(name, pipeline, tmp_path):
    """Closed after the start-up trials and reopened by name from SQLite, the study makes the
    model-based suggestions the uninterrupted one makes."""
    n_after = 2
    whole = _study(name, seed=3)
    expected = _run(whole, N_STARTUP + n_after, pipeline)

    url = f"sqlite:///{tmp_path / 'study.db'}"
    before = _study(name, seed=3, storage=url, name="contract")
    _run(before, N_STARTUP, pipeline)
    before.storage.close()
    reopened = Study(name="contract", storage=url)
    assert reopened.optimizer.name == name
    assert [t.params for t in reopened.trials] == expected[:N_STARTUP]
    assert _run(reopened, n_after, pipeline) == expected[N_STARTUP:]
    reopened.storage.close()


@pytest.mark.xfail(
    strict=True,
    reason="GP hyperparameters are warm-started from the optimizer object's previous fit, "
    "which a reopened study does not have: after model-based trials its next suggestion "
    "differs slightly from the uninterrupted study's",
)
def test_a_study_reopened_after_model_trials_continues_the_same_sequence(tmp_path):
    whole = _study("gp", seed=3)
    expected = _run(whole, N_STARTUP + 3, pipeline=False)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    before = _study("gp", seed=3, storage=url, name="contract")
    _run(before, N_STARTUP + 2, pipeline=False)
    before.storage.close()
    reopened = Study(name="contract", storage=url)
    assert _run(reopened, 1, pipeline=False) == expected[N_STARTUP + 2 :]
