"""Local search (White et al., "Local search is state of the art for NAS benchmarks", 2020).

From a few random points, evaluate unseen neighbours of the best point (one parameter changed);
a better neighbour becomes the point whose neighbours come next. When every neighbour of the
best has been tried, the next best point with untried neighbours continues the search (so a
local optimum hands over instead of restarting from scratch). Reads everything from the
history: no state, resumable, shared by workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from metatune.nas.searchers.moves import (
    completed_by_loss,
    neighbours,
    point_key,
    random_unseen,
    seen_keys,
)
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.trial import Trial

__all__ = ["LocalSearch"]


@register_optimizer("local-search")
class LocalSearch(Optimizer):
    """Best-first hill climbing over single-parameter moves.

    Args:
        n_initial: random points before the first move.
    """

    def __init__(self, n_initial: int = 10) -> None:
        if isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1:
            raise ValueError(f"n_initial must be a positive integer, got {n_initial!r}")
        self.n_initial = n_initial

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        space = context.space
        rng = np.random.default_rng([context.seed, context.trial_number, 0x15])
        seen = seen_keys(space, (*history, *pending))
        ranked = completed_by_loss(history, context.sign)
        if len(ranked) < self.n_initial:
            return random_unseen(space, rng, seen)
        for _, trial in ranked:
            fresh = [n for n in neighbours(space, trial.params) if point_key(space, n) not in seen]
            if fresh:
                return fresh[int(rng.integers(len(fresh)))]
        return random_unseen(space, rng, seen)
