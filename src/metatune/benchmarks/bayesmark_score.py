"""Bayesmark's normalized scores, from the best-so-far losses of every method's runs on a problem.

Two scores, both relative to the best loss any method found on the problem (``opt``) and to
random search, so they are comparable across problems:

* `normalized_score`: ``100 x (1 - (best - opt) / (random_median - opt))`` per run and
  evaluation, where ``random_median`` is the median over random search's runs of their best so
  far after the same number of evaluations: 100 = found the best any method found, 0 = as good
  as random search's median run.
* `clipped_gap` and `leaderboard_score`: Bayesmark's own aggregate. The gap
  ``(best - opt) / (clip - opt)`` is clipped at 1, ``clip`` being random search's median loss
  after one evaluation; the leaderboard score is ``100 x (1 - mean gap / random's mean gap)``
  with the means taken over runs and problems at the last evaluation.

Curves are arrays of shape (runs, evaluations) of best-so-far losses (lower is better).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "best_so_far",
    "clipped_gap",
    "leaderboard_score",
    "normalized_score",
    "problem_optimum",
]


def best_so_far(values: Sequence[float]) -> np.ndarray:
    """The running minimum of a run's losses."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"values must be a non-empty 1-d sequence, got shape {arr.shape}")
    return np.minimum.accumulate(arr)


def _as_curves(
    curves: Mapping[str, np.ndarray | Sequence[Sequence[float]]],
) -> dict[str, np.ndarray]:
    out = {m: np.asarray(c, dtype=float) for m, c in curves.items()}
    lengths = {c.shape[1] for c in out.values() if c.ndim == 2}
    if any(c.ndim != 2 or c.shape[0] == 0 for c in out.values()) or len(lengths) != 1:
        raise ValueError("curves must be non-empty (runs, evaluations) arrays of one length")
    return out


def problem_optimum(curves: Mapping[str, np.ndarray | Sequence[Sequence[float]]]) -> float:
    """The best loss any method found in any run (Bayesmark's ``opt_p``)."""
    return float(min(np.min(c) for c in _as_curves(curves).values()))


def _reference(curves: dict[str, np.ndarray], reference: str) -> np.ndarray:
    if reference not in curves:
        raise ValueError(f"reference method {reference!r} has no runs; methods: {sorted(curves)}")
    return curves[reference]


def normalized_score(
    curves: Mapping[str, np.ndarray | Sequence[Sequence[float]]], reference: str = "random"
) -> dict[str, np.ndarray]:
    """Method -> (runs, evaluations) scores ``100 x (1 - (best - opt) / (ref_median - opt))``.

    Where the reference's median already equals ``opt`` the ratio is 0 for a run at ``opt`` and
    1 (random's level) for any other, so no score divides by zero.
    """
    c = _as_curves(curves)
    opt = problem_optimum(c)
    denom = np.median(_reference(c, reference), axis=0) - opt
    out = {}
    for m, best in c.items():
        gap = best - opt
        safe = np.where(denom > 0, denom, 1.0)
        ratio = np.where(denom > 0, gap / safe, np.where(gap > 0, 1.0, 0.0))
        out[m] = 100.0 * (1.0 - ratio)
    return out


def clipped_gap(
    curves: Mapping[str, np.ndarray | Sequence[Sequence[float]]], reference: str = "random"
) -> dict[str, np.ndarray]:
    """Method -> (runs, evaluations) gaps ``min((best - opt) / (clip - opt), 1)`` in [0, 1],
    ``clip`` being the reference's median loss after one evaluation (Bayesmark's clip_p)."""
    c = _as_curves(curves)
    opt = problem_optimum(c)
    clip = float(np.median(_reference(c, reference)[:, 0]))
    if clip <= opt:  # random's first point is already the best anyone found
        return {m: np.where(b > opt, 1.0, 0.0) for m, b in c.items()}
    return {m: np.minimum((b - opt) / (clip - opt), 1.0) for m, b in c.items()}


def leaderboard_score(
    gaps: Sequence[Mapping[str, np.ndarray]], method: str, reference: str = "random"
) -> float:
    """Bayesmark's ``100 x (1 - mean gap / reference's mean gap)`` at the last evaluation, the
    means over problems (`gaps`: one `clipped_gap` result per problem) of the mean over runs."""
    if not gaps:
        raise ValueError("gaps must hold at least one problem")
    mine = float(np.mean([np.mean(g[method][:, -1]) for g in gaps]))
    ref = float(np.mean([np.mean(g[reference][:, -1]) for g in gaps]))
    return 100.0 * (1.0 - mine / ref) if ref > 0 else float("nan")
