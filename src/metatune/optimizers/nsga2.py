"""NSGA-II as an ask/tell optimizer, the evolutionary baseline of multi-objective studies.

Trials are grouped in generations of `population_size` by number. The parents of a generation
are the best `population_size` completed trials of the earlier ones by non-dominated rank, then
crowding distance (Deb et al., 2002); each child is a uniform crossover of two binary-tournament
winners, then a mutation of each parameter with probability 1/len(space). The first generation
is Sobol points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from metatune.optimizers._gp.history import unseen_point
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.optimizers.multi_objective import objective_losses
from metatune.optimizers.random import sobol_point
from metatune.pareto import pareto_front
from metatune.trial import Trial

__all__ = ["NSGA2", "rank_and_crowding"]


def rank_and_crowding(losses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated rank (0 is the front) and crowding distance of each row of `losses`."""
    n = len(losses)
    rank = np.full(n, -1)
    left = list(range(n))
    level = 0
    while left:
        front = [left[i] for i in pareto_front(losses[left])]
        rank[front] = level
        left = [i for i in left if i not in set(front)]
        level += 1
    crowd = np.zeros(n)
    for r in range(level):
        idx = np.flatnonzero(rank == r)
        for j in range(losses.shape[1]):
            order = idx[np.argsort(losses[idx, j])]
            span = losses[order[-1], j] - losses[order[0], j]
            crowd[order[0]] = crowd[order[-1]] = np.inf
            if span > 0 and len(order) > 2:
                crowd[order[1:-1]] += (losses[order[2:], j] - losses[order[:-2], j]) / span
    return rank, crowd


@register_optimizer("nsga2")
class NSGA2(Optimizer):
    """NSGA-II (elitist non-dominated sorting GA).

    Args:
        population_size: trials per generation.
        crossover_prob: chance a child mixes two parents (else it copies the first).
    """

    multi_objective = True

    def __init__(self, population_size: int = 20, crossover_prob: float = 0.9) -> None:
        if not (isinstance(population_size, int) and population_size >= 2):
            raise ValueError(f"population_size must be an integer >= 2, got {population_size!r}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must be in [0, 1], got {crossover_prob!r}")
        self.population_size = population_size
        self.crossover_prob = float(crossover_prob)

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        space = context.space
        generation = context.trial_number // self.population_size
        earlier = [t for t in history if t.number < generation * self.population_size]
        done, losses = objective_losses(earlier, context.directions or [context.direction])
        if generation == 0 or len(done) < 2:
            return sobol_point(space, context.seed, context.trial_number)
        rng = np.random.default_rng([context.seed, context.trial_number, 2])
        rank, crowd = rank_and_crowding(losses)
        order = sorted(range(len(done)), key=lambda i: (rank[i], -crowd[i]))
        parents = order[: self.population_size]

        def tournament() -> Trial:
            a, b = rng.choice(parents, size=2, replace=len(parents) < 2)
            better = a if (rank[a], -crowd[a]) <= (rank[b], -crowd[b]) else b
            return done[int(better)]

        first, second = tournament(), tournament()
        child = dict(first.params)
        if rng.random() < self.crossover_prob:
            for name in space:
                if name in second.params and rng.random() < 0.5:
                    child[name] = second.params[name]
        rate = 1.0 / max(len(space), 1)
        for name, p in space.items():
            if name in child and rng.random() < rate:
                child[name] = p.mutate(child[name], rng)
        child = space.repair(child, rng) if space.is_conditional else child
        return unseen_point(child, {}, space, history, pending, rng)
