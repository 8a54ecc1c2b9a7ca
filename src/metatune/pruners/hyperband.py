"""Hyperband (Li et al., JMLR 2018) over asynchronous successive halving.

Hyperband hedges against early rankings that mislead: bracket b runs successive halving from
`min_resource * eta**b`, so bracket 0 stops trials the earliest and the last bracket never
stops one. A trial's bracket is a pure function of its number (a hash), drawn with the weight
Li et al. give each bracket (its number of configurations, n = ceil((B / (s + 1)) * eta**s)),
so every worker of a shared study agrees without storing it; trials compete only within their
bracket.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from metatune.direction import Direction
from metatune.pruners._values import check_int
from metatune.pruners.base import Pruner, register_pruner
from metatune.pruners.successive_halving import crossed_rungs, halving_decision
from metatune.trial import Trial, TrialState

__all__ = ["HyperbandPruner", "bracket_weights"]


def bracket_weights(min_resource: int, max_resource: int, reduction_factor: int) -> list[int]:
    """The weight of each bracket b = 0..s_max (b: its min_early_stopping_rate), as Li et al.'s
    number of configurations of the bracket with s = s_max - b halvings."""
    s_max = 0
    while min_resource * reduction_factor ** (s_max + 1) <= max_resource:
        s_max += 1
    n_brackets = s_max + 1
    return [
        math.ceil(n_brackets * reduction_factor ** (s_max - b) / (s_max - b + 1))
        for b in range(n_brackets)
    ]


def _unit_hash(number: int, salt: str) -> int:
    digest = hashlib.blake2b(f"{salt}:{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@register_pruner("hyperband")
class HyperbandPruner(Pruner):
    """Several successive-halving brackets, a trial's bracket drawn from its number.

    Args:
        min_resource: the first rung of the most aggressive bracket.
        max_resource: the last step a trial reports (its full budget), or "auto": the largest
            step any completed trial reported (no trial is pruned before one completes).
        reduction_factor: eta of every bracket.
        salt: mixed into the bracket hash; change it to draw another assignment.
    """

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int | str = "auto",
        reduction_factor: int = 3,
        salt: str = "",
    ) -> None:
        self.min_resource = check_int("hyperband", "min_resource", min_resource, 1)
        if max_resource != "auto":
            check_int("hyperband", "max_resource", max_resource, 1)
            if max_resource < min_resource:  # type: ignore[operator]
                raise ValueError(
                    f"hyperband pruner: max_resource must be 'auto' or an integer >= "
                    f"min_resource ({min_resource}), got {max_resource!r}"
                )
        self.max_resource = max_resource
        self.reduction_factor = check_int("hyperband", "reduction_factor", reduction_factor, 2)
        if not isinstance(salt, str):
            raise ValueError(f"hyperband pruner: salt must be a string, got {salt!r}")
        self.salt = salt

    def _max_resource(self, trials: Sequence[Trial]) -> int | None:
        if self.max_resource != "auto":
            return int(self.max_resource)
        done = [
            t.last_step
            for t in trials
            if t.state is TrialState.COMPLETE and t.last_step is not None
        ]
        return max(max(done), self.min_resource) if done else None

    def weights(self, max_resource: int) -> list[int]:
        """The bracket weights for a given full budget."""
        return bracket_weights(self.min_resource, max_resource, self.reduction_factor)

    def bracket(self, number: int, max_resource: int) -> int:
        """The bracket of trial `number` (0 stops trials the earliest)."""
        weights = self.weights(max_resource)
        u = _unit_hash(number, self.salt) % sum(weights)
        for b, w in enumerate(weights):
            if u < w:
                return b
            u -= w
        raise AssertionError("unreachable")

    def prune(self, trial: Trial, trials: Sequence[Trial], direction: Direction) -> bool:
        max_resource = self._max_resource(trials)
        if max_resource is None or trial.last_step is None:
            return False
        b = self.bracket(trial.number, max_resource)
        rungs = crossed_rungs(
            trial, self.min_resource, self.reduction_factor, b, max_resource=max_resource
        )
        if not rungs:
            return False
        same = [
            t
            for t in trials
            if t.number != trial.number and self.bracket(t.number, max_resource) == b
        ]
        return halving_decision(trial, same, direction, rungs, self.reduction_factor)
