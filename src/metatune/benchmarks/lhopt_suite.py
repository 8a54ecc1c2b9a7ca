"""Scoring a learned control policy against a tuned AdamW grid on tasks it never trained on.

Shared by the held-out benchmark (benchmarks/lhopt.py, the test tasks) and the selection rule
(benchmarks/lhopt_select.py, the validation tasks, docs/lhopt-selection-rule.md), so that a
policy is chosen and reported by the same measure.

Per task and seed, every run starts from the same initial weights and minibatches:

* the grid: AdamW at `LRS` x the task's default rate with each of `SCHEDULES`; the best cell is
  the one with the lowest median (over seeds) best validation loss;
* the policy: `metatune.lhopt.Controller` as a user runs it (guard on), starting AdamW at the
  default rate.

A run's loss is its best validation loss (what early stopping keeps). Speedup = steps / the first
step at which the policy reaches the best cell's best loss; if it never does, the ratio of the
best losses (below 1).

Tasks of the procedural task space (`SpaceTask`) run their grid in lockstep
(`metatune.lhopt.vectorized`, every seed and cell of a task in one batched run; equal to torch's
AdamW within float32 rounding, tests/lhopt/test_vectorized.py); other tasks run it one model at a
time. Policy runs always go through `Controller` on one model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metatune.lhopt import Controller, Policy
from metatune.lhopt.tasks import TrainingTask
from metatune.lhopt.training import best_loss
from metatune.lhopt.vectorized import ReplicaStart, TaskGroup, run_lockstep
from metatune.lhopt.vectorized.engine import schedule_factor

__all__ = [
    "LRS",
    "SCHEDULES",
    "GRID_CELLS",
    "evaluate",
    "Curve",
    "SpaceTask",
    "SuiteTask",
    "VALIDATION_TASKS",
    "VALIDATION_TASKS_V2",
    "VALIDATION_SUITES",
    "MAX_SEEDS",
    "grid_curves",
    "policy_curve",
    "score_task",
    "speedup",
    "suite_score",
]

LRS = (0.1, 0.3, 1.0, 3.0, 10.0)  # x the task's default learning rate
SCHEDULES = ("constant", "cosine", "warmup_cosine")
GRID_CELLS = tuple((m, s) for m in LRS for s in SCHEDULES)  # (lr multiplier, schedule)
MAX_SEEDS = 10  # a space task draws this many replicas, so seed k is the same task for any count
Curve = list[tuple[int, float]]


_GROUPS: dict[SpaceTask, TaskGroup] = {}


@dataclass(frozen=True)
class SpaceTask:
    """One architecture of a task-space family, drawn from `draw_seed`, trained `steps` steps;
    seed k is its k-th replica (own data split, initial weights and minibatches)."""

    family: str
    draw_seed: int
    steps: int

    def group(self) -> TaskGroup:
        """All `MAX_SEEDS` replicas (built once per process)."""
        if self not in _GROUPS:
            from metatune.lhopt.task_space import sample_group

            rng = np.random.default_rng([self.draw_seed, 4099])
            _GROUPS[self], _ = sample_group(self.family, rng, MAX_SEEDS, self.steps)
        return _GROUPS[self]

    def label(self) -> str:
        """The drawn architecture, e.g. "mlp-moons mlp d2 w32 relu none g1.2 b64 T600"."""
        return self.group().labels[0]

    def __call__(self, seed: int) -> TrainingTask:
        if not 0 <= seed < MAX_SEEDS:
            raise ValueError(f"seed must be in [0, {MAX_SEEDS}), got {seed!r}")
        return self.group().training_task(seed)


@dataclass(frozen=True)
class SuiteTask:
    """A named task: seed -> TrainingTask (`make`), trained `steps` steps. Callable like
    `make`, so it is also a held-out task of the registry."""

    name: str
    make: Callable[[int], TrainingTask]
    steps: int

    def __call__(self, seed: int) -> TrainingTask:
        return self.make(seed)

    def describe(self) -> str:
        return self.make.label() if isinstance(self.make, SpaceTask) else self.name


def _space(name: str, family: str, draw_seed: int, steps: int) -> SuiteTask:
    return SuiteTask(name, SpaceTask(family, draw_seed, steps), steps)


# the selection rule's validation suite (docs/lhopt-selection-rule.md): 2 tasks per validation
# family, fixed before any lockstep-trained policy existed
VALIDATION_TASKS = (
    _space("moons-a", "mlp-moons", 10, 600),
    _space("moons-b", "mlp-moons", 11, 1500),
    _space("hastie-a", "mlp-hastie", 12, 800),
    _space("hastie-b", "mlp-hastie", 13, 2000),
)

# the second rule's suite (docs/lhopt-selection-rule.md, "Rule 2"): v1's tasks and one task of
# each family added after v1 proved too narrow (a regression, a CNN, a sequence model)
VALIDATION_TASKS_V2 = (
    *VALIDATION_TASKS,
    _space("sparse-a", "mlp-sparse", 14, 1000),
    _space("blobs-a", "cnn-blobs", 15, 600),
    _space("balance-a", "gru-balance", 16, 400),
)
VALIDATION_SUITES = {"v1": VALIDATION_TASKS, "v2": VALIDATION_TASKS_V2}

# the held-out benchmark's tasks from the task space's held-out families (registered in
# metatune.benchmarks.registry.HELD_OUT_TASKS with the two hand-written ones)
DIABETES_MLP = _space("diabetes-mlp", "mlp-diabetes", 1, 1000)
BARS_CNN = _space("bars-cnn", "cnn-bars", 2, 600)
SIGNAL_GRU = _space("signal-gru", "gru-signal", 3, 400)
SIGNAL_TRANSFORMER = _space("signal-transformer", "transformer-signal", 4, 500)
DENOISE_MLP = _space("denoise-mlp", "mlp-denoise", 5, 2000)
QUANTILES_MLP = _space("quantiles-mlp", "mlp-quantiles", 6, 1500)


def _hand_written(name: str, steps: int) -> SuiteTask:
    from metatune.benchmarks import lhopt_tasks

    return SuiteTask(name, getattr(lhopt_tasks, name.replace("-", "_")), steps)


MATRIX_FACTORIZATION = _hand_written("matrix-factorization", 400)
DIABETES_REGRESSION = _hand_written("diabetes-regression", 400)


def _process_grid_run(task: TrainingTask, steps: int, mult: float, schedule: str) -> Curve:
    opt = torch.optim.AdamW(task.model.parameters(), lr=task.default_lr * mult)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: schedule_factor(schedule, t, steps))
    return task.run(opt, steps, on_step=lambda *a: sched.step())


def grid_curves(
    task: SuiteTask,
    seeds: Sequence[int],
    cells: Sequence[tuple[float, str]],
    cache: dict[str, list] | None = None,
) -> dict[tuple[float, str], list[Curve]]:
    """Validation curves of every (lr multiplier, schedule) cell on every seed; `cache` (a dict
    kept by the caller, e.g. in a JSON file) holds runs already made, by task, seed, steps and cell."""
    cache = {} if cache is None else cache

    def key(seed: int, cell: tuple[float, str]) -> str:
        return f"{task.name}|{seed}|{task.steps}|{cell[0]}|{cell[1]}"

    missing = [(s, c) for s in seeds for c in cells if key(s, c) not in cache]
    if missing and isinstance(task.make, SpaceTask) and task.make.steps == task.steps:
        group = task.make.group()
        wide = group.subset([s for s, _ in missing])
        starts = [ReplicaStart(lr=float(min(group.default_lr[s] * c[0], 1.0))) for s, c in missing]
        res = run_lockstep(wide, starts, task.steps, schedule=[c[1] for _, c in missing])
        for (s, c), curve in zip(missing, res.curves, strict=True):
            cache[key(s, c)] = curve
    else:
        for s, c in missing:
            cache[key(s, c)] = _process_grid_run(task.make(s), task.steps, *c)
    return {c: [[tuple(p) for p in cache[key(s, c)]] for s in seeds] for c in cells}


def policy_curve(task: SuiteTask, seed: int, policy: Policy, lr_mult: float = 1.0) -> Curve:
    """One run under `Controller` (as users run it: the guard on), AdamW started at the task's
    default rate times `lr_mult`; the controller samples its moves with `seed`."""
    model_task = task.make(seed)
    lr = float(min(model_task.default_lr * lr_mult, 1.0))
    opt = torch.optim.AdamW(model_task.model.parameters(), lr=lr)
    ctl = Controller(opt, task.steps, policy=policy, seed=seed)
    try:
        return model_task.run(opt, task.steps, on_step=lambda t, loss, val: ctl.step(loss, val))
    finally:
        if ctl.clipper is not None:
            ctl.clipper.remove()


def first_reach(curve: Curve, target: float) -> int | None:
    return next((t for t, v in curve if math.isfinite(v) and v <= target), None)


def speedup(baseline: Curve, run: Curve, steps: int) -> float:
    """steps / the first step `run` reaches `baseline`'s best loss; else the ratio of the best
    losses (below 1; 0 if `run` never had a finite loss)."""
    target, reached = best_loss(baseline), best_loss(run)
    t = first_reach(run, target)
    if t is not None:
        return steps / t
    return target / reached if math.isfinite(reached) else 0.0


def score_task(
    grid: dict[tuple[float, str], list[Curve]], policy: list[Curve], steps: int
) -> dict[str, Any]:
    """The policy's runs against the grid's best cell (and against AdamW with cosine at the
    default rate, when that cell is in the grid), seed by seed."""
    best = min(grid, key=lambda c: (np.median([best_loss(x) for x in grid[c]]), c))
    base = grid[best]
    out: dict[str, Any] = {
        "best_cell": {"lr_mult": best[0], "schedule": best[1]},
        "speedup": [speedup(b, p, steps) for b, p in zip(base, policy, strict=True)],
        "best_ratio": [best_loss(p) / best_loss(b) for b, p in zip(base, policy, strict=True)],
        "best_policy": [best_loss(p) for p in policy],
        "best_grid_loss": [best_loss(b) for b in base],
    }
    cosine = grid.get((1.0, "cosine"))
    if cosine is not None:
        out["best_cosine_default"] = [best_loss(c) for c in cosine]
        out["cosine_ratio"] = [
            best_loss(p) / best_loss(c) for c, p in zip(cosine, policy, strict=True)
        ]
    return out


def evaluate(
    task: SuiteTask, policy: Policy, seeds: Sequence[int], cache: dict[str, list]
) -> tuple[dict[tuple[float, str], list[Curve]], list[Curve], dict[str, Any]]:
    """The grid (`GRID_CELLS`, cached), the policy's runs and `score_task` of one task."""
    grid = grid_curves(task, seeds, GRID_CELLS, cache)
    curves = [policy_curve(task, s, policy) for s in seeds]
    return grid, curves, score_task(grid, curves, task.steps)


def suite_score(results: dict[str, dict[str, Any]]) -> tuple[float, int]:
    """(median over tasks of the per-task median speedup, number of tasks whose median
    best-loss ratio is above 1.02): the selection rule's score and first tie-break."""
    speed = float(np.median([np.median(r["speedup"]) for r in results.values()]))
    far = sum(float(np.median(r["best_ratio"])) > 1.02 for r in results.values())
    return speed, far
