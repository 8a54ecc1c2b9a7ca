"""Pareto dominance for multi-objective studies (every objective as a loss, lower is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metatune.direction import Direction
from metatune.trial import Trial, TrialState

__all__ = ["dominates", "pareto_front", "pareto_ranks", "trial_losses"]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when loss vector `a` is no worse than `b` everywhere and better somewhere."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_front(losses: Sequence[Sequence[float]]) -> list[int]:
    """Indices, in order, of the loss vectors no other one dominates (duplicates all kept)."""
    Y = np.asarray(losses, dtype=float)
    if Y.size == 0:
        return []
    Y = Y.reshape(len(Y), -1)
    # i is dominated when some j is <= everywhere and < somewhere
    le = np.all(Y[:, None, :] <= Y[None, :, :], axis=2)  # le[j, i]: j <= i everywhere
    lt = np.any(Y[:, None, :] < Y[None, :, :], axis=2)
    dominated = np.any(le & lt, axis=0)
    return [int(i) for i in np.flatnonzero(~dominated)]


def pareto_ranks(losses: Sequence[Sequence[float]]) -> list[int]:
    """Each loss vector's non-dominated rank: 0 on the front, 1 on the front of the rest, ..."""
    Y = np.asarray(losses, dtype=float)
    ranks = [-1] * len(Y)
    left = list(range(len(Y)))
    level = 0
    while left:
        front = [left[i] for i in pareto_front(Y[left])]
        for i in front:
            ranks[i] = level
        chosen = set(front)
        left = [i for i in left if i not in chosen]
        level += 1
    return ranks


def trial_losses(
    trials: Sequence[Trial], directions: Sequence[str]
) -> tuple[list[Trial], list[list[float]]]:
    """The completed trials with one value per direction, and those values as losses."""
    signs = [Direction.parse(d).sign for d in directions]
    done = [
        t
        for t in trials
        if t.state is TrialState.COMPLETE and t.values is not None and len(t.values) == len(signs)
    ]
    return done, [[s * v for s, v in zip(signs, t.values, strict=True)] for t in done]  # type: ignore[arg-type]
