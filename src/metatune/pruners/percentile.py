"""Percentile and median pruning: stop a trial whose best value so far is worse than a given
percentile of the completed trials' best values at the same step.

How the comparison differs from Optuna's PercentilePruner, and why: Optuna compares the trial's
best value so far with the other trials' raw values at exactly that step. Here both sides are
best-so-far values (each other trial's best report at steps <= the step), so like is compared
with like, and a completed trial that did not report at exactly that step (reports every few
steps, or at other steps) still counts as long as it got that far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from metatune.direction import Direction
from metatune.pruners._values import best_loss_up_to, check_int, losses, other_trials
from metatune.pruners.base import Pruner, register_pruner
from metatune.trial import Trial, TrialState

__all__ = ["MedianPruner", "PercentilePruner"]


@register_pruner("percentile")
class PercentilePruner(Pruner):
    """Prune when the trial's best value so far is outside the best `percentile` percent.

    Args:
        percentile: in [0, 100]; 50 keeps the better half, 25 the best quarter.
        n_startup_trials: never prune before this many trials have completed.
        n_warmup_steps: never prune a trial at a step below this.
        interval_steps: judge only the first report in each interval of this many steps after
            the warm-up (reports in between are stored, not judged).
        n_min_trials: never prune at a step fewer than this many completed trials reached.
    """

    def __init__(
        self,
        percentile: float = 50.0,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
    ) -> None:
        label = self._label()
        if (
            isinstance(percentile, bool)
            or not isinstance(percentile, (int, float))
            or not 0.0 <= float(percentile) <= 100.0
        ):
            raise ValueError(
                f"{label} pruner: percentile must be a number in [0, 100], got {percentile!r}"
            )
        self.percentile = float(percentile)
        self.n_startup_trials = check_int(label, "n_startup_trials", n_startup_trials, 0)
        self.n_warmup_steps = check_int(label, "n_warmup_steps", n_warmup_steps, 0)
        self.interval_steps = check_int(label, "interval_steps", interval_steps, 1)
        self.n_min_trials = check_int(label, "n_min_trials", n_min_trials, 1)

    def _label(self) -> str:
        return "percentile"

    def _judged_step(self, trial: Trial, step: int) -> bool:
        """True when `step` is the first report of its interval after the warm-up."""
        if step < self.n_warmup_steps:
            return False
        if self.interval_steps == 1:
            return True
        start = (step - self.n_warmup_steps) // self.interval_steps * self.interval_steps
        start += self.n_warmup_steps
        return not any(start <= s < step for s in trial.intermediate_values)

    def prune(self, trial: Trial, trials: Sequence[Trial], direction: Direction) -> bool:
        step = trial.last_step
        if step is None or not self._judged_step(trial, step):
            return False
        completed = other_trials(trial, trials, (TrialState.COMPLETE,))
        if len(completed) < self.n_startup_trials:
            return False
        mine = best_loss_up_to(losses(trial, direction), step)
        assert mine is not None
        if math.isinf(mine) and mine > 0:
            return True  # only NaN (or infinite) reports: nothing worth continuing
        others = []
        for t in completed:
            if t.last_step is None or t.last_step < step:
                continue  # it never got this far: no value to compare at this step
            best = best_loss_up_to(losses(t, direction), step)
            if best is not None:
                others.append(best)
        if len(others) < self.n_min_trials:
            return False
        with np.errstate(invalid="ignore"):
            threshold = float(np.percentile(np.asarray(others, dtype=float), self.percentile))
        if math.isnan(threshold):  # between two infinite losses
            threshold = math.inf
        return mine > threshold


@register_pruner("median")
class MedianPruner(PercentilePruner):
    """Prune when the trial's best value so far is worse than the median of the completed
    trials' best values at the same step (the 50th percentile pruner)."""

    def __init__(
        self,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
    ) -> None:
        super().__init__(50.0, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials)

    def _label(self) -> str:
        return "median"
