"""Pareto dominance for multi-objective studies (every objective as a loss, lower is better)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from metatune.constraints import OutcomeConstraint, feasible_trials
from metatune.direction import Direction
from metatune.trial import Trial, TrialState

__all__ = ["dominates", "front_trials", "pareto_front", "pareto_ranks", "trial_losses"]


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when loss vector `a` is no worse than `b` everywhere and better somewhere."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_front(losses: Sequence[Sequence[float]]) -> list[int]:
    """Sorted indices of the loss vectors no other one dominates (equal vectors all kept).

    A scan in lexicographic order checks each vector against the front found so far only, so
    memory stays linear in the number of trials (a 10,000-trial study).
    """
    Y = np.asarray(losses, dtype=float)
    if Y.size == 0:
        return []
    Y = Y.reshape(len(Y), -1)
    order = np.lexsort(Y.T[::-1])
    front: list[int] = []
    if Y.shape[1] == 2:  # in this order a row is dominated iff an earlier one is below it
        low, low_first = math.inf, math.inf  # the lowest second loss, the first loss it came with
        for i in order:
            a, b = float(Y[i, 0]), float(Y[i, 1])
            if b < low:
                low, low_first = b, a
            elif not (b == low and a == low_first):
                continue
            front.append(int(i))
        return sorted(front)
    kept = np.empty_like(Y)
    for i in order:
        y = Y[i]
        seen = kept[: len(front)]
        if len(front) and np.any(np.all(seen <= y, axis=1) & np.any(seen < y, axis=1)):
            continue
        kept[len(front)] = y
        front.append(int(i))
    return sorted(front)


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


def front_trials(
    trials: Iterable[Trial],
    directions: Sequence[str],
    constraints: Sequence[OutcomeConstraint] = (),
) -> list[Trial]:
    """A multi-objective study's Pareto front among `trials` that meet `constraints`, by
    number."""
    done, losses = trial_losses(feasible_trials(trials, constraints), directions)
    return [done[i] for i in pareto_front(losses)]
