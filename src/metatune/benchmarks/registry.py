"""Every benchmark, registered once: what it runs, how it is described, its default budget.

* `PIPELINE_BENCHMARKS`: name -> `PipelineBenchmark`, run and reported by benchmarks/pipelines.py
  and benchmarks/pipelines_cost_share.py. Synthetic benchmarks charge a simulated clock (cost
  units); real ones (``ml-*``) their stages' wall seconds on one thread.
* `SYNTHETIC_FUNCTIONS`: name -> `SyntheticFunction` (a botorch test function), compared across
  libraries by benchmarks/synthetic.py.
* `HELD_OUT_TASKS`: name -> a held-out lhopt training task ``seed -> TrainingTask``, never in the
  meta-training families (`metatune.lhopt.tasks.TASK_FAMILIES`), used by benchmarks/lhopt.py.

The scripts only run and report what is registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from metatune._registry import Registry
from metatune.benchmarks.ml_pipelines import ML_PIPELINES, run_ml_pipeline
from metatune.benchmarks.pipelines import (
    SYNTHETIC_PIPELINES,
    SyntheticPipeline,
    cost_share_pipeline,
    idle_last_stage_pipeline,
    run_synthetic,
)
from metatune.benchmarks.runs import N_WARMUP, BenchmarkRun

__all__ = [
    "COST_SHARES",
    "DEFAULT_FUNCTIONS",
    "DEFAULT_HELD_OUT_TASKS",
    "DEFAULT_ML_MAX_TRIALS",
    "DEFAULT_PIPELINE_BENCHMARKS",
    "HELD_OUT_TASKS",
    "HIGH_DIM_FUNCTIONS",
    "PIPELINE_BENCHMARKS",
    "SYNTHETIC_FUNCTIONS",
    "BenchmarkKind",
    "EmbeddedFunction",
    "PipelineBenchmark",
    "SyntheticFunction",
    "cost_share_benchmarks",
]

BenchmarkKind = Literal["synthetic", "real"]
DEFAULT_ML_MAX_TRIALS = 300  # a real-pipeline run stops here even with budget left


@dataclass(frozen=True)
class PipelineBenchmark:
    """One pipeline benchmark.

    Args:
        name: its registry name (also the name on the pages and in the JSON).
        description: one line for the page, ending before "; optimum ...".
        default_budget: the cost budget of a run (cost units, or stage seconds for a real one),
            before a script's ``--budget-scale``.
        kind: "synthetic" (a `SyntheticPipeline` on a simulated clock) or "real" (a
            `metatune.Pipeline` of `ML_PIPELINES`, charged its wall seconds).
        pipeline: the synthetic pipeline's spec, or the name of the real pipeline.
        last_stage_share: for the cost-share family, the last stage's share of a fresh trial's
            mean cost; None for the others.
    """

    name: str
    description: str
    default_budget: float
    kind: BenchmarkKind
    pipeline: SyntheticPipeline | str
    last_stage_share: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "real"):
            raise ValueError(f"kind must be 'synthetic' or 'real', got {self.kind!r}")
        if not self.default_budget > 0:
            raise ValueError(f"default_budget must be positive, got {self.default_budget!r}")
        if self.kind == "synthetic" and not isinstance(self.pipeline, SyntheticPipeline):
            raise TypeError(
                f"a synthetic benchmark needs a SyntheticPipeline, got {self.pipeline!r}"
            )
        if self.kind == "real" and (
            not isinstance(self.pipeline, str) or self.pipeline not in ML_PIPELINES
        ):
            raise ValueError(
                f"unknown real pipeline {self.pipeline!r}; available: {sorted(ML_PIPELINES)}"
            )

    @property
    def cost_label(self) -> str:
        """The x-axis label of its plots."""
        if self.kind == "real":
            return "cost spent (stage seconds)"
        return "cost spent (simulated units)"

    def factory(self, **kwargs: Any) -> Any:
        """A fresh pipeline to evaluate: a `SimulatedPipeline` (kwargs: epsilon) or a
        `metatune.Pipeline` (kwargs: cache, ...)."""
        if isinstance(self.pipeline, SyntheticPipeline):
            return self.pipeline.make(**kwargs)
        return ML_PIPELINES[self.pipeline](**kwargs)

    def run(
        self,
        method: str,
        seed: int,
        budget: float | None = None,
        *,
        optimizer_options: dict[str, Any] | None = None,
        n_warmup: int = N_WARMUP,
        max_trials: int = DEFAULT_ML_MAX_TRIALS,
        trial_cost: float = 0.0,
        stage_clock: Callable[[], float] | None = None,
    ) -> BenchmarkRun:
        """One run of optimizer `method` at `budget` (default: `default_budget`). `max_trials`,
        `trial_cost` and `stage_clock` apply to real pipelines (see `run_ml_pipeline`)."""
        budget = self.default_budget if budget is None else budget
        if isinstance(self.pipeline, SyntheticPipeline):
            return run_synthetic(
                method,
                seed,
                budget,
                pipeline=self.pipeline,
                n_warmup=n_warmup,
                optimizer_options=optimizer_options or None,
            )
        return run_ml_pipeline(
            self.pipeline,
            method,
            seed,
            budget,
            n_warmup=n_warmup,
            max_trials=max_trials,
            trial_cost=trial_cost,
            optimizer_options=optimizer_options or None,
            stage_clock=stage_clock,
        )


def _check(obj: Any) -> None:
    if not isinstance(obj, PipelineBenchmark):
        raise TypeError(f"a pipeline benchmark must be a PipelineBenchmark, got {obj!r}")


PIPELINE_BENCHMARKS: Registry[PipelineBenchmark] = Registry("pipeline benchmark", check=_check)


def _register(bench: PipelineBenchmark) -> None:
    """Register `bench` under its own name (the pages and the JSON use that name)."""
    PIPELINE_BENCHMARKS.register(bench.name, bench)


# Synthetic budgets give EI about 45-70 BO steps after the warm-up, the paper's regime (about 40);
# half of these (used until 2026-11-30) gave 12-32 and a smaller EEIPU advantage.
_register(
    PipelineBenchmark(
        "branin-hartmann-ackley",
        "3 stages: Branin (2d, cost 20-50, logistic) + Hartmann3 (cost 8-30, sine) + "
        "Ackley2 on [-5, 5]^2 (cost 5-15, cosine); objective = sum, minimized",
        3000.0,
        "synthetic",
        SYNTHETIC_PIPELINES["branin-hartmann-ackley"],
    )
)
_register(
    PipelineBenchmark(
        "hartmann-levy",
        "2 stages: Hartmann3 (cost 15-50, cosine) + Levy2 on [-5, 5]^2 (cost 5-20, sine); "
        "objective = sum, minimized",
        2400.0,
        "synthetic",
        SYNTHETIC_PIPELINES["hartmann-levy"],
    )
)

# The cost-share family (benchmarks/pipelines_cost_share.py): hartmann-levy with the last stage
# at 5-50% of a fresh trial's mean cost of 40 units; 2400 units give EI about 60 trials.
COST_SHARES = (0.05, 0.1, 0.2, 0.3, 0.5)
for _share in COST_SHARES:
    _spec = cost_share_pipeline(_share)
    _register(
        PipelineBenchmark(
            _spec.name,
            f"2 stages: Hartmann3 + Levy2 on [-5, 5]^2 as hartmann-levy, logistic costs with the "
            f"last stage {100 * _share:g}% of a fresh trial's mean cost of 40 units; "
            "objective = sum, minimized",
            2400.0,
            "synthetic",
            _spec,
            last_stage_share=_share,
        )
    )
del _share, _spec

# Where memoization cannot help: the cheap last stage (10% of a fresh trial) does not change the
# objective, so reusing a cached first stage buys nothing (the hedge of eeipu must not lose here).
_spec = idle_last_stage_pipeline(0.1)
_register(
    PipelineBenchmark(
        _spec.name,
        "2 stages: Hartmann3, then a stage of 2 parameters that do not change the objective; "
        "logistic costs with the last stage 10% of a fresh trial's mean cost of 40 units; "
        "objective = Hartmann3, minimized",
        2400.0,
        "synthetic",
        _spec,
    )
)
del _spec

# Real pipelines (budget in stage wall-seconds, one thread): not in the default run yet, since
# 7 methods x 5 seeds of each take hours on 2 cores; select them with --benchmarks.
_register(
    PipelineBenchmark(
        "ml-stacking",
        "breast_cancer stacking: base models with out-of-fold predictions (expensive), then a "
        "logistic-regression meta-learner; objective = validation log loss",
        300.0,
        "real",
        "stacking",
    )
)
_register(
    PipelineBenchmark(
        "ml-vision",
        "digits CNN: augmentation, two training phases (lr, weight decay), test-time "
        "augmentation; objective = validation cross-entropy",
        300.0,
        "real",
        "vision",
    )
)
_register(
    PipelineBenchmark(
        "ml-language",
        "char-GRU on stdlib sources: data (context, pre-training size), pre-training, "
        "fine-tuning; objective = validation loss per character",
        400.0,
        "real",
        "language",
    )
)
# The EEIPU paper's shape: a costly early part, then cheap stages whose knobs matter. Budgets of
# about 40 fresh trials' seconds on an idle core (a fresh trial: about 2.5 s and 7 s).
_register(
    PipelineBenchmark(
        "ml-vision-post",
        "digits CNN: augmentation, training (the bulk), post-processing of its validation "
        "predictions (temperature, test-time-augmentation weight, smoothing); objective = "
        "validation NLL",
        100.0,
        "real",
        "vision-post",
    )
)
_register(
    PipelineBenchmark(
        "ml-language-distill",
        "char-GRU teacher on stdlib sources (pre-training, the bulk; fine-tuning), then three "
        "distillation rounds to a smaller student (lr, temperature, weight decay each); "
        "objective = the student's validation loss per character",
        300.0,
        "real",
        "language-distill",
    )
)

DEFAULT_PIPELINE_BENCHMARKS = ("branin-hartmann-ackley", "hartmann-levy")


def cost_share_benchmarks() -> dict[str, float]:
    """Benchmark name -> its last stage's share, for the cost-share family, by share."""
    family = [b for _, b in PIPELINE_BENCHMARKS.items() if b.last_stage_share is not None]
    return {b.name: float(b.last_stage_share) for b in sorted(family, key=_share_of)}


def _share_of(bench: PipelineBenchmark) -> float:
    return bench.last_stage_share or 0.0


# Synthetic functions (benchmarks/synthetic.py) ------------------------------------------------
class EmbeddedFunction:
    """A botorch test function of a few inputs, embedded in `dim` inputs of which the others do
    nothing (the effective inputs are a fixed, seeded choice of columns), as high-dimensional
    problems with a low effective dimension often are."""

    def __init__(self, inner: Any, dim: int, seed: int = 0) -> None:
        import torch

        if dim < inner.dim:
            raise ValueError(f"dim must be >= the function's {inner.dim} inputs, got {dim!r}")
        self.inner = inner
        self.dim = dim
        gen = torch.Generator().manual_seed(seed)
        self.columns = torch.randperm(dim, generator=gen)[: inner.dim].sort().values
        # the inactive columns get the bounds of the inner function's first input
        lo = torch.full((dim,), float(inner.bounds[0, 0]), dtype=inner.bounds.dtype)
        hi = torch.full((dim,), float(inner.bounds[1, 0]), dtype=inner.bounds.dtype)
        lo[self.columns], hi[self.columns] = inner.bounds[0], inner.bounds[1]
        self.bounds = torch.stack([lo, hi])
        self.optimal_value = inner.optimal_value

    def evaluate_true(self, X: Any) -> Any:
        return self.inner.evaluate_true(X[..., self.columns])


@dataclass(frozen=True)
class SyntheticFunction:
    """A botorch test function, minimized noise-free; its own bounds unless `kwargs` set them.

    Args:
        embed_dim: embed the function in this many inputs (`EmbeddedFunction`), or None.
        n_trials: the trial budget of every method on this function.
        high_dim: listed with the 20-60 dimensional functions (where the trust region runs).
    """

    name: str
    botorch_class: str  # class name in botorch.test_functions
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    embed_dim: int | None = None
    n_trials: int = 50
    high_dim: bool = False

    def make(self) -> Any:
        """A fresh instance of the function."""
        import botorch.test_functions as tf

        f = getattr(tf, self.botorch_class)(**dict(self.kwargs))
        return EmbeddedFunction(f, self.embed_dim) if self.embed_dim else f

    def info(self) -> dict[str, Any]:
        """Dimension, bounds (one [low, high] per input), the tabulated optimum and the budget."""
        f = self.make()
        return {
            "dim": int(f.dim),
            "bounds": f.bounds.T.tolist(),
            "optimal_value": float(f.optimal_value),
            "n_trials": self.n_trials,
            "high_dim": self.high_dim,
        }


def _check_function(obj: Any) -> None:
    if not isinstance(obj, SyntheticFunction):
        raise TypeError(f"a synthetic function must be a SyntheticFunction, got {obj!r}")


SYNTHETIC_FUNCTIONS: Registry[SyntheticFunction] = Registry(
    "synthetic function", check=_check_function
)
_HIGH_DIM_TRIALS = 100
for _fn in (
    SyntheticFunction("Branin", "Branin"),
    SyntheticFunction("Hartmann6", "Hartmann", {"dim": 6}),
    SyntheticFunction("Ackley5", "Ackley", {"dim": 5, "bounds": [(-5.0, 10.0)] * 5}),
    SyntheticFunction("Levy4", "Levy", {"dim": 4}),
    SyntheticFunction("Rosenbrock4", "Rosenbrock", {"dim": 4}),
    SyntheticFunction(
        "Ackley20",
        "Ackley",
        {"dim": 20, "bounds": [(-5.0, 10.0)] * 20},
        n_trials=_HIGH_DIM_TRIALS,
        high_dim=True,
    ),
    SyntheticFunction(
        "Rosenbrock20", "Rosenbrock", {"dim": 20}, n_trials=_HIGH_DIM_TRIALS, high_dim=True
    ),
    SyntheticFunction(
        "Hartmann6in40",
        "Hartmann",
        {"dim": 6},
        embed_dim=40,
        n_trials=_HIGH_DIM_TRIALS,
        high_dim=True,
    ),
):
    SYNTHETIC_FUNCTIONS.register(_fn.name, _fn)
del _fn
DEFAULT_FUNCTIONS = ("Branin", "Hartmann6", "Ackley5", "Levy4", "Rosenbrock4")  # page order
HIGH_DIM_FUNCTIONS = ("Ackley20", "Rosenbrock20", "Hartmann6in40")


# Held-out lhopt tasks (benchmarks/lhopt.py) ---------------------------------------------------
def _check_task(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"a held-out task must be a callable seed -> TrainingTask, got {obj!r}")


HELD_OUT_TASKS: Registry[Callable[[int], Any]] = Registry("held-out task", check=_check_task)
# lazy: the tasks import torch
# lazy: the tasks import torch; each is a `lhopt_suite.SuiteTask` (callable seed -> task, with
# its run length)
for _name, _attr in (
    ("matrix-factorization", "MATRIX_FACTORIZATION"),
    ("diabetes-regression", "DIABETES_REGRESSION"),
    ("diabetes-mlp", "DIABETES_MLP"),
    ("bars-cnn", "BARS_CNN"),
    ("signal-gru", "SIGNAL_GRU"),
    ("signal-transformer", "SIGNAL_TRANSFORMER"),
    ("denoise-mlp", "DENOISE_MLP"),
    ("quantiles-mlp", "QUANTILES_MLP"),
):
    HELD_OUT_TASKS.register_lazy(_name, f"metatune.benchmarks.lhopt_suite:{_attr}")
del _name, _attr
DEFAULT_HELD_OUT_TASKS = (  # page order
    "matrix-factorization",
    "diabetes-regression",
    "diabetes-mlp",
    "bars-cnn",
    "signal-gru",
    "signal-transformer",
    "denoise-mlp",
    "quantiles-mlp",
)
