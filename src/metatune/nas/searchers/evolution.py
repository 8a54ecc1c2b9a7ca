"""Regularized evolution (Real et al., AAAI 2019): tournament selection, one mutation, and the
oldest member leaves the population rather than the worst, which keeps it from stalling on a
lucky early evaluation.

The population is read from the history each time (the last `population_size` finished trials),
so the searcher keeps no state: a resumed study or another worker continues the same search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from metatune.nas.searchers.moves import (
    completed_by_loss,
    mutate,
    point_key,
    random_unseen,
    seen_keys,
)
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.trial import Trial

__all__ = ["RegularizedEvolution"]


@register_optimizer("regularized-evolution")
class RegularizedEvolution(Optimizer):
    """Random points until the population is full, then the best of `sample_size` random
    members, mutated until the child is new (neither tried nor running).

    Args:
        population_size: finished trials the population holds (the most recent ones).
        sample_size: members drawn for each tournament (default: 10, or the population size
            when that is smaller).
    """

    def __init__(self, population_size: int = 30, sample_size: int | None = None) -> None:
        if sample_size is None:
            sample_size = min(10, population_size) if isinstance(population_size, int) else 10
        for label, v in (("population_size", population_size), ("sample_size", sample_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive integer, got {v!r}")
        if sample_size > population_size:
            raise ValueError(
                f"sample_size ({sample_size}) must be at most population_size ({population_size})"
            )
        self.population_size = population_size
        self.sample_size = sample_size

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        space = context.space
        rng = np.random.default_rng([context.seed, context.trial_number, 0x5E])
        seen = seen_keys(space, (*history, *pending))
        finished = [t for _, t in completed_by_loss(history, context.sign)]
        if len(finished) < self.population_size:
            return random_unseen(space, rng, seen)
        population = sorted(finished, key=lambda t: t.number)[-self.population_size :]
        for _ in range(100):
            picks = rng.choice(len(population), size=self.sample_size, replace=False)
            parent = min((population[i] for i in picks), key=lambda t: context.sign * t.value)
            child = mutate(space, parent.params, rng)
            if point_key(space, child) not in seen:
                return child
        return random_unseen(space, rng, seen)
