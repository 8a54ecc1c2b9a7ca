"""Parameter importance: how much each parameter explains of the objective across the trials.

A random forest (scikit-learn) is fitted to params -> value on the completed trials, and each
parameter's importance is scikit-learn's permutation importance on that forest: the drop in the
forest's R^2 when the parameter's column is shuffled. Shuffling a column leaves the others as
they are, so a categorical parameter (ordinal-coded) or a conditional one (absent values coded
below the range) counts as one column, and the numbers are comparable across kinds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metatune.report.data import ParamInfo, StudyView, numeric_value

__all__ = ["Importance", "MIN_TRIALS", "encode_params", "param_importance"]

MIN_TRIALS = 5  # fewer completed trials than this say nothing about importance


@dataclass(frozen=True)
class Importance:
    """One parameter's share of the explained variation (`share`, summing to 1 over the
    parameters when any explain something) and the raw permutation importance (mean, std)."""

    name: str
    share: float
    mean: float
    std: float


def encode_params(params: Sequence[ParamInfo], trials: Sequence[Any]) -> np.ndarray:
    """A float matrix, one row per trial and one column per parameter: numbers as they are (log10
    on a log scale), categories as their index among the choices, absent values below the range."""
    x = np.full((len(trials), len(params)), np.nan)
    for j, p in enumerate(params):
        codes = {_key(c): i for i, c in enumerate(p.choices)}
        for i, t in enumerate(trials):
            if p.name not in t.params:
                continue
            v = t.params[p.name]
            if p.categorical:
                key = _key(v)
                if key not in codes:
                    codes[key] = len(codes)
                x[i, j] = codes[key]
                continue
            f = numeric_value(v)
            if f is None:
                continue
            x[i, j] = math.log10(f) if p.log and f > 0 else f
        col = x[:, j]
        missing = np.isnan(col)
        if missing.any():
            present = col[~missing]
            lo, hi = (float(present.min()), float(present.max())) if present.size else (0.0, 0.0)
            col[missing] = lo - max(hi - lo, 1.0)
    return x


def _key(v: Any) -> Any:
    return (type(v).__name__, repr(v))


def param_importance(
    view: StudyView,
    *,
    objective: int = 0,
    max_trials: int = 2000,
    n_estimators: int = 64,
    n_repeats: int = 5,
    seed: int = 0,
) -> list[Importance]:
    """Importance of each parameter that varies, most important first; [] with fewer than
    `MIN_TRIALS` completed trials, when no parameter varies or when the values are all equal.
    At most `max_trials` completed trials are used (a seeded sample) so large studies stay fast.
    `objective` picks which objective of a multi-objective study is explained.
    """
    if not 0 <= objective < view.n_objectives:
        raise ValueError(
            f"objective must be in [0, {view.n_objectives - 1}] for this study, got {objective!r}"
        )
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    trials = view.completed()
    if len(trials) < MIN_TRIALS:
        return []
    rng = np.random.default_rng(seed)
    if len(trials) > max_trials:
        keep = np.sort(rng.choice(len(trials), size=max_trials, replace=False))
        trials = [trials[i] for i in keep]
    params = view.params()
    if not params:
        return []
    x = encode_params(params, trials)
    varying = [j for j in range(x.shape[1]) if np.ptp(x[:, j]) > 0]
    if not varying:
        return []
    x = x[:, varying]
    names = [params[j].name for j in varying]
    y = np.array([view.values_of(t)[objective] for t in trials])  # type: ignore[index]
    if np.ptp(y) == 0:
        return []
    forest = RandomForestRegressor(
        n_estimators=n_estimators, min_samples_leaf=2, random_state=seed, n_jobs=1
    )
    forest.fit(x, y)
    result = permutation_importance(forest, x, y, n_repeats=n_repeats, random_state=seed, n_jobs=1)
    means = np.clip(result.importances_mean, 0.0, None)
    total = float(means.sum())
    out = [
        Importance(
            name=n,
            share=float(m / total) if total > 0 else 0.0,
            mean=float(result.importances_mean[k]),
            std=float(result.importances_std[k]),
        )
        for k, (n, m) in enumerate(zip(names, means, strict=True))
    ]
    return sorted(out, key=lambda i: -i.share)
