"""Pareto dominance for multi-objective studies (every objective as a loss, lower is better)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pareto_front", "dominates"]


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
