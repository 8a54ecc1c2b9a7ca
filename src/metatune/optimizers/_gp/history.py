"""What the optimizers read from stored trials: repeats, costs, stage records, stage prefixes.

Only the records a study writes (`metatune.trial.SystemAttr`) are read, and every malformed
record is skipped rather than trusted: a trial told by hand may carry anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metatune.pipeline.context import PipelineContext
from metatune.trial import SystemAttr, Trial

__all__ = [
    "unseen_point",
    "charged_tuner_cost",
    "measured_overhead",
    "prefix_key",
    "spent_at_warmup",
    "stage_prefix",
    "stage_records",
    "trial_cost",
]


def unseen_point(
    params: dict[str, Any],
    fixed: Mapping[str, Any],
    space: Any,
    history: Sequence[Trial],
    pending: Sequence[Trial],
    rng: np.random.Generator,
    tries: int = 64,
) -> dict[str, Any]:
    """`params` if no finished or running trial has them; else a random point that keeps the
    `fixed` values (a cached prefix) and is new, else a new random point of the whole space.
    Only a space whose every configuration was tried gets a repeat back."""
    seen = {repr(sorted(t.params.items())) for t in (*history, *pending) if t.params}
    if repr(sorted(params.items())) not in seen:
        return params
    candidate = params
    for keep in (True, False) if fixed else (False,):
        for _ in range(tries):
            candidate = {**space.sample(rng), **(fixed if keep else {})}
            if repr(sorted(candidate.items())) not in seen:
                return candidate
    return candidate


def trial_cost(t: Trial) -> float | None:
    """The trial's recorded total cost, or None when missing or not a finite number."""
    c = t.system_attrs.get(SystemAttr.COST) if t.system_attrs else None
    try:
        c = float(c)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return c if math.isfinite(c) else None


def stage_records(t: Trial) -> list[Mapping[str, Any]]:
    """The trial's per-stage records (cost, cache_hit, seconds), in stage order."""
    recs = t.system_attrs.get(SystemAttr.STAGES) if t.system_attrs else None
    return [r for r in recs if isinstance(r, Mapping)] if isinstance(recs, list) else []


def spent_at_warmup(history: Sequence[Trial], done: Sequence[Trial], n_warmup: int) -> float:
    """Cost spent by all trials up to the last warm-up trial (by trial number)."""
    ordered = sorted(done, key=lambda t: t.number)[:n_warmup]
    if not ordered:
        return 0.0
    last = ordered[-1].number
    return float(sum(trial_cost(t) or 0.0 for t in history if t.number <= last))


def _latest(trials: Sequence[Trial], window: int) -> list[Trial]:
    return sorted(trials, key=lambda t: t.number)[-window:]


def _recorded_number(t: Trial, key: str) -> float | None:
    """A finite number the study recorded under `key` in the trial's system_attrs, else None."""
    v = t.system_attrs.get(key) if t.system_attrs else None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def measured_overhead(trials: Sequence[Trial], window: int = 20) -> float:
    """Median optimizer time per trial over the latest `window` trials that recorded it, when
    the stage costs are wall seconds (every fresh stage's cost equals its seconds); else 0."""
    asks = []
    for t in _latest(trials, window):
        for r in stage_records(t):
            if r.get("cache_hit"):
                continue
            c, s = r.get("cost"), r.get("seconds")
            if not isinstance(c, (int, float)) or not isinstance(s, (int, float)):
                return 0.0
            if abs(float(c) - float(s)) > 1e-9 * max(1.0, abs(float(s))):
                return 0.0  # a stage reports its own cost units: seconds do not compare
        a = _recorded_number(t, SystemAttr.ASK_SECONDS)
        if a is not None:
            asks.append(a)
    return float(np.median(asks)) if asks else 0.0


def charged_tuner_cost(trials: Sequence[Trial], window: int = 20) -> float | None:
    """Median tuner's cost a pipeline charged the latest `window` trials that recorded it
    (``SystemAttr.TUNER_COST``: 0 where it does not count the tuner's time); None if none did."""
    costs = [_recorded_number(t, SystemAttr.TUNER_COST) for t in _latest(trials, window)]
    found = [max(c, 0.0) for c in costs if c is not None]
    return float(np.median(found)) if found else None


def stage_prefix(t: Trial, pipe: PipelineContext, depth: int) -> dict[str, Any]:
    """The trial's exact values of the parameters of stages 1..`depth`."""
    return {n: t.params[n] for n in pipe.prefix_names(depth) if n in t.params}


def prefix_key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    """A hashable key of exact parameter values that tells 1 from 1.0 and True, as a cache does."""
    return tuple(
        (n, type(params[n]).__name__, params[n]) if n in params else (n, "inactive", None)
        for n in names
    )
