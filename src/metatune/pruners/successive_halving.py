"""Asynchronous successive halving (ASHA, Li et al., MLSys 2020).

Rungs sit at `min_resource * reduction_factor ** (min_early_stopping_rate + k)`, k = 0, 1, ...
When a trial's report carries it past a rung, it continues only if its value there is in the
top 1 / reduction_factor of every value recorded at that rung so far (its own included), and
is stopped otherwise. Nothing waits for a rung to fill: that is what makes it asynchronous.
While a rung holds fewer than `reduction_factor` values, only a trial that is the best there
continues (a trial cannot be paused and resumed later, so "wait" is not an option).

The pruner keeps no state: a trial's value at a rung is read from its reports (the value at
its largest reported step <= the rung), so many workers sharing a storage take the same
decisions, and a trial promoted past a rung is never judged there again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from metatune.direction import Direction
from metatune.pruners._values import check_int, loss_at, losses, other_trials, previous_step
from metatune.pruners.base import Pruner, register_pruner
from metatune.trial import Trial

__all__ = ["SuccessiveHalvingPruner", "crossed_rungs", "promoted", "rung_value"]


def rung_value(trial: Trial, rung: int, direction: Direction) -> float | None:
    """The trial's loss at `rung` when it got that far: its loss at the largest reported step
    <= the rung (at its first report when that came later); None when it stopped before."""
    if trial.last_step is None or trial.last_step < rung:
        return None
    curve = losses(trial, direction)
    value = loss_at(curve, rung)
    return curve[min(curve)] if value is None else value


def crossed_rungs(
    trial: Trial,
    min_resource: int,
    reduction_factor: int,
    min_early_stopping_rate: int,
    max_resource: int | None = None,
) -> list[int]:
    """The rungs the trial's latest report carried it past (usually none or one), lowest first.

    A rung at or above `max_resource` is never a decision point: a trial there has finished.
    """
    step, prev = trial.last_step, previous_step(trial)
    if step is None:
        return []
    out = []
    k = min_early_stopping_rate
    while True:
        rung = min_resource * reduction_factor**k
        if rung > step or (max_resource is not None and rung >= max_resource):
            return out
        if prev is None or prev < rung:
            out.append(rung)
        k += 1


def promoted(mine: float, values: Sequence[float], reduction_factor: int) -> bool:
    """True when loss `mine` is in the top 1 / reduction_factor of `values` (which hold it);
    with fewer values than that fraction can pick, only the best is promoted."""
    ranked = sorted(values)
    k = len(ranked) // reduction_factor
    return mine <= ranked[max(k, 1) - 1]


def halving_decision(
    trial: Trial,
    competitors: Sequence[Trial],
    direction: Direction,
    rungs: Sequence[int],
    reduction_factor: int,
) -> bool:
    """True (prune) when the trial is outside the top 1/eta at any of `rungs` among
    `competitors` (the other trials that compete with it)."""
    for rung in rungs:
        mine = rung_value(trial, rung, direction)
        assert mine is not None
        if math.isinf(mine) and mine > 0:
            return True
        values = [mine]
        for t in competitors:
            v = rung_value(t, rung, direction)
            if v is not None:
                values.append(v)
        if not promoted(mine, values, reduction_factor):
            return True
    return False


@register_pruner("successive-halving")
class SuccessiveHalvingPruner(Pruner):
    """Asynchronous successive halving over the steps trials report.

    Args:
        min_resource: the step of the first rung (the least a trial runs before judgement).
        reduction_factor: eta: 1 / eta of the trials pass each rung, and rungs are eta apart.
        min_early_stopping_rate: s: the first rung is at min_resource * eta**s.
    """

    def __init__(
        self, min_resource: int = 1, reduction_factor: int = 3, min_early_stopping_rate: int = 0
    ) -> None:
        name = "successive-halving"
        self.min_resource = check_int(name, "min_resource", min_resource, 1)
        self.reduction_factor = check_int(name, "reduction_factor", reduction_factor, 2)
        self.min_early_stopping_rate = check_int(
            name, "min_early_stopping_rate", min_early_stopping_rate, 0
        )

    def prune(self, trial: Trial, trials: Sequence[Trial], direction: Direction) -> bool:
        rungs = crossed_rungs(
            trial, self.min_resource, self.reduction_factor, self.min_early_stopping_rate
        )
        if not rungs:
            return False
        return halving_decision(
            trial, other_trials(trial, trials), direction, rungs, self.reduction_factor
        )
