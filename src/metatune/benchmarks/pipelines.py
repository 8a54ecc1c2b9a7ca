"""Synthetic multi-stage pipelines with a simulated clock and a simulated memo cache.

As in the EEIPU paper: the objective is a sum of classic test functions (from
botorch.test_functions), one per stage, each on that stage's own slice of the inputs; every stage
has a smooth, positive cost of its own inputs (logistic, sine or cosine shapes scaled into a range
of roughly 5 to 50 units, the first stage the most expensive). Nothing runs for real: costs are
charged to a simulated clock, so hundreds of optimization runs take minutes.

The simulated cache holds every stage prefix that has run: a candidate whose stages 1..k have the
exact parameter values of an earlier run pays only `epsilon` for them. `run_synthetic` drives a
`metatune.Study` by ask/tell and builds the `PipelineContext` a pipeline study gives its optimizer
(stages, budget, cached prefixes), so every registered optimizer can be compared. The benchmarks
built on these pipelines (description, default budget) are entries of
`metatune.benchmarks.registry.PIPELINE_BENCHMARKS`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metatune.benchmarks.runs import N_WARMUP, BenchmarkRun
from metatune.pipeline.context import CachedPrefix, PipelineContext, StageInfo

__all__ = [
    "SyntheticStage",
    "SyntheticPipeline",
    "SimulatedPipeline",
    "SYNTHETIC_PIPELINES",
    "get_synthetic_pipeline",
    "cost_share_pipeline",
    "idle_last_stage_pipeline",
    "run_synthetic",
]


# Cost shapes on the stage's unit cube u in [0, 1]^d, each with values in [0, 1].
def _logistic(u: np.ndarray) -> float:
    return float(1.0 / (1.0 + math.exp(-8.0 * (float(np.mean(u)) - 0.5))))


def _sine(u: np.ndarray) -> float:
    w = np.linspace(1.0, 0.5, len(u))
    return float(0.5 * (1.0 + math.sin(2.0 * math.pi * float(np.dot(w, u)) / w.sum() + 0.3)))


def _cosine(u: np.ndarray) -> float:
    return float(0.5 * (1.0 + math.cos(math.pi * float(np.mean(u)) * 1.5)))


COST_SHAPES: dict[str, Callable[[np.ndarray], float]] = {
    "logistic": _logistic,
    "sine": _sine,
    "cosine": _cosine,
}


@dataclass(frozen=True)
class SyntheticStage:
    """One stage: a botorch test function on `dim` inputs named x0.., and its cost range."""

    name: str
    function: str  # class name in botorch.test_functions
    dim: int
    bounds: tuple[float, float] | None = None  # None: the function's own bounds
    cost_range: tuple[float, float] = (5.0, 20.0)
    cost_shape: str = "logistic"
    function_kwargs: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0  # the function's weight in the objective (0: the stage does not matter)

    def make_function(self) -> Any:
        import botorch.test_functions as tf

        kwargs = dict(self.function_kwargs)
        if self.function not in ("Branin", "Beale"):
            kwargs.setdefault("dim", self.dim)
        if self.bounds is not None:
            kwargs["bounds"] = [tuple(self.bounds)] * self.dim
        return getattr(tf, self.function)(**kwargs)


@dataclass(frozen=True)
class SyntheticPipeline:
    """A sequence of synthetic stages; the objective (minimized) is the sum of their functions."""

    name: str
    stages: tuple[SyntheticStage, ...]

    def make(self, epsilon: float = 0.1) -> SimulatedPipeline:
        return SimulatedPipeline(self, epsilon=epsilon)


SYNTHETIC_PIPELINES: dict[str, SyntheticPipeline] = {
    "branin-hartmann-ackley": SyntheticPipeline(
        "branin-hartmann-ackley",
        (
            SyntheticStage("prep", "Branin", 2, cost_range=(20.0, 50.0), cost_shape="logistic"),
            SyntheticStage("train", "Hartmann", 3, cost_range=(8.0, 30.0), cost_shape="sine"),
            SyntheticStage(
                "eval", "Ackley", 2, bounds=(-5.0, 5.0), cost_range=(5.0, 15.0), cost_shape="cosine"
            ),
        ),
    ),
    "hartmann-levy": SyntheticPipeline(
        "hartmann-levy",
        (
            SyntheticStage("prep", "Hartmann", 3, cost_range=(15.0, 50.0), cost_shape="cosine"),
            SyntheticStage(
                "train", "Levy", 2, bounds=(-5.0, 5.0), cost_range=(5.0, 20.0), cost_shape="sine"
            ),
        ),
    ),
}


def cost_share_pipeline(last_share: float, mean_cost: float = 40.0) -> SyntheticPipeline:
    """hartmann-levy's two stages with costs set so the last stage is `last_share` of a fresh run.

    How many more candidates memoization can buy is bounded by what a cached prefix saves: a
    run that reuses the first stage still pays for the last, so with every trial reusing, the
    gain is at most about 1 / `last_share`. This family varies only that share (both stages
    have logistic costs spanning 0.5x to 1.5x their mean, which is exact in expectation over
    the inputs: the logistic shape is symmetric about the middle of the cube), so a sweep over
    it shows how the gain of EEIPU over EI follows the cost structure of a pipeline.
    """
    if not 0.0 < last_share < 1.0:
        raise ValueError(f"last_share must be strictly between 0 and 1, got {last_share!r}")
    if not (mean_cost > 0 and math.isfinite(mean_cost)):
        raise ValueError(f"mean_cost must be a positive finite number, got {mean_cost!r}")
    first, last = (1.0 - last_share) * mean_cost, last_share * mean_cost
    return SyntheticPipeline(
        f"hartmann-levy-last{round(100 * last_share):02d}",
        (
            SyntheticStage(
                "prep", "Hartmann", 3, cost_range=(0.5 * first, 1.5 * first), cost_shape="logistic"
            ),
            SyntheticStage(
                "train",
                "Levy",
                2,
                bounds=(-5.0, 5.0),
                cost_range=(0.5 * last, 1.5 * last),
                cost_shape="logistic",
            ),
        ),
    )


def idle_last_stage_pipeline(last_share: float = 0.1, mean_cost: float = 40.0) -> SyntheticPipeline:
    """`cost_share_pipeline(last_share)` whose cheap last stage does not change the objective.

    Memoization cannot help here: re-running the last stage on a cached first stage is cheap
    but can never improve on the trial it reuses, so only fresh first stages pay. A tuner that
    ignores the cache is the reference a memoization-aware one must not lose to.
    """
    base = cost_share_pipeline(last_share, mean_cost)
    first, last = base.stages
    return SyntheticPipeline(
        f"hartmann-idle-last{round(100 * last_share):02d}",
        (first, dataclasses.replace(last, weight=0.0)),
    )


def get_synthetic_pipeline(pipeline: str | SyntheticPipeline) -> SyntheticPipeline:
    if isinstance(pipeline, SyntheticPipeline):
        return pipeline
    if pipeline not in SYNTHETIC_PIPELINES:
        raise ValueError(
            f"unknown synthetic pipeline {pipeline!r}; available: {sorted(SYNTHETIC_PIPELINES)}"
        )
    return SYNTHETIC_PIPELINES[pipeline]


class SimulatedPipeline:
    """Evaluates a synthetic pipeline on a simulated clock with a simulated memo cache."""

    def __init__(self, spec: SyntheticPipeline, epsilon: float = 0.1) -> None:
        import torch

        from metatune.space import Float, Space

        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.spec = spec
        self.epsilon = float(epsilon)
        self._torch = torch
        self._functions = [s.make_function() for s in spec.stages]
        params: dict[str, Any] = {}
        self._names: list[list[str]] = []
        self._bounds: list[np.ndarray] = []
        for stage, fn in zip(spec.stages, self._functions, strict=True):
            b = fn.bounds.numpy()  # (2, d)
            names = [f"{stage.name}.x{i}" for i in range(stage.dim)]
            for i, n in enumerate(names):
                params[n] = Float(float(b[0, i]), float(b[1, i]))
            self._names.append(names)
            self._bounds.append(b)
        self.space = Space(params)
        self._weights = [float(s.weight) for s in spec.stages]
        self.optimal_value = float(
            sum(
                w * fn.optimal_value  # type: ignore[misc]
                for w, fn in zip(self._weights, self._functions, strict=True)
            )
        )
        self.cache: set[tuple[Any, ...]] = set()
        self._cached_list: list[CachedPrefix] = []

    @property
    def n_stages(self) -> int:
        return len(self.spec.stages)

    def stage_params(self) -> list[dict[str, Any]]:
        return [
            {"name": s.name, "params": list(n)}
            for s, n in zip(self.spec.stages, self._names, strict=True)
        ]

    def _key(self, params: Mapping[str, Any], depth: int) -> tuple[Any, ...]:
        return tuple(params[n] for names in self._names[:depth] for n in names)

    def cached_depth(self, params: Mapping[str, Any]) -> int:
        """Number of leading stages the cache can serve for `params`."""
        depth = 0
        for k in range(1, self.n_stages + 1):
            if self._key(params, k) in self.cache:
                depth = k
            else:
                break
        return depth

    def stage_cost(self, k: int, params: Mapping[str, Any]) -> float:
        stage, b = self.spec.stages[k], self._bounds[k]
        x = np.array([params[n] for n in self._names[k]], dtype=float)
        u = np.clip((x - b[0]) / (b[1] - b[0]), 0.0, 1.0)
        lo, hi = stage.cost_range
        return float(lo + (hi - lo) * COST_SHAPES[stage.cost_shape](u))

    def objective(self, params: Mapping[str, Any]) -> float:
        total = 0.0
        for names, fn, w in zip(self._names, self._functions, self._weights, strict=True):
            if w == 0.0:
                continue
            x = self._torch.tensor([[float(params[n]) for n in names]], dtype=self._torch.float64)
            total += w * float(fn.evaluate_true(x))
        return total

    def evaluate(self, params: Mapping[str, Any]) -> tuple[float, list[dict[str, Any]], float]:
        """Run (simulated): the objective, per-stage records, and the total cost charged."""
        depth = self.cached_depth(params)
        records = []
        for k, stage in enumerate(self.spec.stages):
            hit = k < depth
            cost = self.epsilon if hit else self.stage_cost(k, params)
            records.append({"name": stage.name, "cost": cost, "cache_hit": hit, "seconds": 0.0})
        for k in range(1, self.n_stages + 1):  # every stage's output is cached once it has run
            key = self._key(params, k)
            if key not in self.cache:
                self.cache.add(key)
                if k < self.n_stages:
                    prefix = {n: params[n] for names in self._names[:k] for n in names}
                    self._cached_list.append(CachedPrefix(k, prefix))
        return self.objective(params), records, float(sum(r["cost"] for r in records))

    def context(self, total: float | None, spent: float) -> PipelineContext:
        """What a pipeline study tells its optimizer, as a real Pipeline does."""
        return PipelineContext(
            stages=tuple(StageInfo(s["name"], tuple(s["params"])) for s in self.stage_params()),
            budget_total=total,
            budget_spent=float(spent),
            cached_prefixes=tuple(self._cached_list),
        )


def run_synthetic(
    method: str,
    seed: int,
    budget: float,
    pipeline: str | SyntheticPipeline = "branin-hartmann-ackley",
    n_warmup: int = N_WARMUP,
    epsilon: float = 0.1,
    optimizer_options: dict[str, Any] | None = None,
    max_trials: int = 2000,
) -> BenchmarkRun:
    """Optimize a synthetic pipeline with optimizer `method` until `budget` cost units are spent.

    Every method gets the same `n_warmup` Sobol points for one seed. The run records the
    per-trial values, cumulative costs, best-so-far values, reused stage counts, per-stage costs
    (a cached stage at its epsilon) and ask times (see `BenchmarkRun`).
    """
    from metatune.study import Study

    if not budget > 0:
        raise ValueError(f"budget must be positive, got {budget!r}")
    spec = get_synthetic_pipeline(pipeline)
    sim = spec.make(epsilon=epsilon)
    opts = dict(optimizer_options or {})
    if method != "random":
        opts.setdefault("n_startup_trials", n_warmup)
    study = Study(sim.space, optimizer=method, seed=seed, optimizer_options=opts or None)
    spent, n = 0.0, 0
    ask_s: list[float] = []
    while spent < budget and n < max_trials:
        t0 = time.perf_counter()
        trial = study.ask(pipeline=sim.context(budget, spent))
        ask_s.append(time.perf_counter() - t0)
        value, records, cost = sim.evaluate(trial.params)
        study.tell(trial, value, system_attrs={"stages": records, "cost": cost})
        spent += cost
        n += 1
    return BenchmarkRun.from_trials(
        study.trials,
        method=method,
        seed=seed,
        pipeline=spec.name,
        budget=budget,
        n_warmup=n_warmup,
        optimal_value=sim.optimal_value,
        ask_seconds=ask_s,
    )
