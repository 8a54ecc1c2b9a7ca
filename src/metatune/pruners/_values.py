"""What the pruners read from trials: losses by step, best-so-far curves, rung values, and the
option checks they share.

Every value is turned into a loss (lower is better) with the study's direction first, and a NaN
counts as the worst loss, so the pruners never compare raw values or special-case maximization.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from metatune.direction import Direction
from metatune.trial import Trial, TrialState

__all__ = [
    "best_loss_up_to",
    "check_int",
    "loss_at",
    "losses",
    "other_trials",
    "previous_step",
]


def check_int(pruner: str, name: str, value: Any, low: int) -> int:
    """`value` if it is an integer >= `low`; else a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{pruner} pruner: {name} must be an integer >= {low}, got {value!r}")
    return value


def losses(trial: Trial, direction: Direction) -> dict[int, float]:
    """The trial's reports as losses by step (NaN -> +inf: a diverged run is the worst)."""
    out = {}
    for step, value in trial.intermediate_values.items():
        v = float(value)
        out[int(step)] = math.inf if math.isnan(v) else direction.loss(v)
    return out


def best_loss_up_to(curve: dict[int, float], step: int) -> float | None:
    """The lowest loss reported at steps <= `step`, or None when none was."""
    seen = [v for s, v in curve.items() if s <= step]
    return min(seen) if seen else None


def loss_at(curve: dict[int, float], step: int) -> float | None:
    """The loss at the largest reported step <= `step` (a rung's value), or None."""
    steps = [s for s in curve if s <= step]
    return curve[max(steps)] if steps else None


def previous_step(trial: Trial) -> int | None:
    """The step reported before the latest one, or None for a first report."""
    steps = sorted(trial.intermediate_values)
    return steps[-2] if len(steps) >= 2 else None


def other_trials(
    trial: Trial, trials: Sequence[Trial], states: tuple[TrialState, ...] | None = None
) -> list[Trial]:
    """The study's trials other than `trial` (by number), optionally only in `states`."""
    return [t for t in trials if t.number != trial.number and (states is None or t.state in states)]
