"""A TuRBO-style trust region (Eriksson et al., 2019) for the GP optimizer in 20-60 dimensions.

A global GP in many dimensions spreads its few trials thinly and its acquisition favours the
corners; a trust region keeps the search in a box around the incumbent, shaped by the GP's
lengthscales, that grows after a run of successes, shrinks after a run of failures and restarts
from a fresh Sobol design once it has shrunk below a minimum side.

The state is a pure function of the completed trials in trial-number order (`TrustRegion.replay`),
so it needs no storage of its own: a resumed study, or another worker on the same storage, sees the
same region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["RegionState", "TrustRegion"]

_OPTIONS = (
    "length_init",
    "length_min",
    "length_max",
    "success_tolerance",
    "failure_tolerance",
    "min_improvement",
)


@dataclass(frozen=True)
class RegionState:
    """Where the trust region stands after some trials.

    Args:
        start: index (into the completed trials in number order) of the region's first trial.
        restarts: how many times the region has restarted.
        count: trials observed in this region.
        length: the side length of the box (before the lengthscale weighting), in the unit cube.
        successes, failures: consecutive improving / non-improving trials after the initial design.
        best: the lowest loss observed in this region (inf before the first).
    """

    start: int = 0
    restarts: int = 0
    count: int = 0
    length: float = 0.8
    successes: int = 0
    failures: int = 0
    best: float = math.inf


class TrustRegion:
    """The success/failure rule of TuRBO-1 over losses (lower is better), one trial at a time.

    Args:
        n_init: trials of a region's initial (Sobol) design, not counted as successes or failures.
        dim: the number of continuous dimensions (sets the default failure tolerance).
        length_init, length_min, length_max: the box side at the start, the side below which the
            region restarts, and the largest side (0.8, 2**-7, 1.6 as in the paper).
        success_tolerance: consecutive successes that double the side (3).
        failure_tolerance: consecutive failures that halve it (default max(4, dim), the paper's
            rule for one trial per batch).
        min_improvement: a trial is a success when it improves the region's best by more than
            this fraction of |best| (1e-3).
    """

    def __init__(
        self,
        n_init: int,
        dim: int,
        length_init: float = 0.8,
        length_min: float = 0.5**7,
        length_max: float = 1.6,
        success_tolerance: int = 3,
        failure_tolerance: int | None = None,
        min_improvement: float = 1e-3,
    ) -> None:
        if not (isinstance(n_init, int) and n_init >= 1):
            raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not 0 < length_min < length_init <= length_max:
            raise ValueError(
                "trust region lengths must satisfy 0 < length_min < length_init <= length_max, "
                f"got length_min={length_min!r}, length_init={length_init!r}, "
                f"length_max={length_max!r}"
            )
        if not (isinstance(success_tolerance, int) and success_tolerance >= 1):
            raise ValueError(
                f"success_tolerance must be a positive integer, got {success_tolerance!r}"
            )
        if failure_tolerance is not None and not (
            isinstance(failure_tolerance, int) and failure_tolerance >= 1
        ):
            raise ValueError(
                f"failure_tolerance must be a positive integer or None, got {failure_tolerance!r}"
            )
        if not min_improvement >= 0:
            raise ValueError(f"min_improvement must be >= 0, got {min_improvement!r}")
        self.n_init = n_init
        self.length_init = float(length_init)
        self.length_min = float(length_min)
        self.length_max = float(length_max)
        self.success_tolerance = success_tolerance
        self.failure_tolerance = failure_tolerance if failure_tolerance is not None else max(4, dim)
        self.min_improvement = float(min_improvement)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], n_init: int, dim: int) -> TrustRegion:
        """A region from the user's `trust_region` mapping, refusing unknown keys by name."""
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown trust_region option(s) {unknown}; allowed: {', '.join(_OPTIONS)}"
            )
        return cls(n_init, dim, **dict(options))

    @staticmethod
    def check_options(options: Mapping[str, Any]) -> None:
        """Validate a `trust_region` mapping before any trial (dimension-free checks)."""
        TrustRegion.from_options(options, n_init=1, dim=1)

    def initial(self) -> RegionState:
        return RegionState(length=self.length_init)

    def step(self, state: RegionState, index: int, loss: float) -> RegionState:
        """The state after completed trial number `index` (its position in number order)."""
        if not math.isfinite(loss):  # a failed value counts as a failure, never as the best
            loss = math.inf
        count = state.count + 1
        if state.count < self.n_init:
            return replace(state, count=count, best=min(state.best, loss))
        improved = loss < state.best - self.min_improvement * abs(state.best)
        successes = state.successes + 1 if improved else 0
        failures = 0 if improved else state.failures + 1
        length = state.length
        if successes >= self.success_tolerance:
            length, successes = min(2.0 * length, self.length_max), 0
        if failures >= self.failure_tolerance:
            length, failures = length / 2.0, 0
        if length < self.length_min:  # restart: a fresh region from the next trial on
            return RegionState(
                start=index + 1, restarts=state.restarts + 1, length=self.length_init
            )
        return RegionState(
            start=state.start,
            restarts=state.restarts,
            count=count,
            length=length,
            successes=successes,
            failures=failures,
            best=min(state.best, loss),
        )

    def replay(self, losses: Sequence[float]) -> RegionState:
        """The state after the completed trials' losses, in trial-number order."""
        state = self.initial()
        for i, loss in enumerate(losses):
            state = self.step(state, i, float(loss))
        return state

    @staticmethod
    def box(
        center: np.ndarray, lengthscales: np.ndarray, length: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """The box around `center` (d,) in the unit cube: side length * w_i with
        w = lengthscales / their geometric mean, clipped to [0, 1]."""
        ls = np.asarray(lengthscales, dtype=float)
        w = ls / math.exp(float(np.mean(np.log(ls))))
        half = 0.5 * length * w
        return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)
