"""Trials: one evaluation of the objective at one point of the space, and its outcome."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from metatune._text import check_text

__all__ = ["Trial", "TrialState", "SystemAttr", "counted_cost", "json_float", "to_json_attrs"]


class TrialState(str, enum.Enum):
    """Lifecycle of a trial: RUNNING until told, then COMPLETE (with a value), FAILED, or
    PRUNED (stopped early by a pruner; its reports are kept, it is never a best trial)."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    PRUNED = "pruned"

    @property
    def finished(self) -> bool:
        return self is not TrialState.RUNNING


class SystemAttr:
    """Keys metatune writes into `Trial.system_attrs` (its own records, next to the user's)."""

    STAGES = "stages"  # per-stage records of a pipeline trial: name, cost, cache_hit, seconds
    COST = "cost"  # total cost charged to the trial (stages, the pipeline's trial_cost, tuner)
    BUDGET = "budget"  # the cost budget of the optimize() call that ran the trial
    ASK_SECONDS = "ask_seconds"  # the optimizer's time to suggest the trial
    # the study's own time since the previous trial's evaluation ended (its tell, callbacks,
    # the pipeline's context and this ask); optimize() records it, executors do not
    TUNER_SECONDS = "tuner_seconds"
    TUNER_COST = "tuner_cost"  # the tuner's seconds a pipeline charged to the trial's cost
    CACHE_DEPTH = "cache_depth"  # leading stages served from the cache
    SECONDS_SAVED = "seconds_saved"  # wall seconds the cache saved
    COST_SAVED = "cost_saved"  # cost the cache saved
    TRIAL_COST = "trial_cost"  # the pipeline's fixed charge per trial
    SUGGESTED = "suggested"  # define-by-run: each parameter's form and value, as suggested
    RUN_USER_ATTRS = "run_user_attrs"  # define-by-run: trial.set_user_attr values (moved)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class Trial:
    """A snapshot of a trial as stored; `number` is unique and dense within its study."""

    number: int
    params: dict[str, Any]
    state: TrialState = TrialState.RUNNING
    value: float | None = None
    error: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)
    values: list[float] | None = None  # every objective's value, for a multi-objective study

    @property
    def last_step(self) -> int | None:
        """The latest step reported with `report`, or None."""
        return max(self.intermediate_values) if self.intermediate_values else None

    @property
    def duration(self) -> float | None:
        """Wall seconds from start to finish, or None while running."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def cost(self) -> float | None:
        """The trial's recorded total cost (a pipeline's summed stage costs), or None."""
        c = self.system_attrs.get(SystemAttr.COST)
        return None if c is None else float(c)

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Per-stage records of a pipeline trial, in stage order: name, cost, cache_hit, seconds."""
        return list(self.system_attrs.get(SystemAttr.STAGES, []))

    def __repr__(self) -> str:
        value = "" if self.value is None else f", value={self.value:.6g}"
        return f"Trial(number={self.number}, state={self.state.value}{value}, params={self.params})"


def counted_cost(trial: Trial) -> float:
    """The cost a budget counts for `trial`: its recorded cost when that is a finite number,
    else 0 (a trial told by hand may carry anything)."""
    c = trial.system_attrs.get(SystemAttr.COST) if trial.system_attrs else None
    if isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c):
        return float(c)
    return 0.0


def json_float(value: float) -> float | str:
    """`value`, or "nan", "inf" or "-inf" for what JSON has no number for."""
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _to_json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return check_text(value, where)
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} has a key {k!r} that is not a string")
            out[k] = _to_json(v, f"{where}[{k!r}]")
        return out
    tolist = getattr(value, "tolist", None)  # NumPy scalars and arrays, torch tensors
    if callable(tolist) and hasattr(value, "dtype"):
        return _to_json(tolist(), where)
    raise ValueError(
        f"{where} is a {type(value).__name__}, which has no JSON form; "
        "store a number, a string, or a list or dict of them"
    )


def to_json_attrs(attrs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """`attrs` with NumPy and torch values as the plain JSON data they hold, and non-finite
    floats as "nan"/"inf"/"-inf", so every storage keeps the same readable values. An attribute
    with no faithful JSON form is left out and named in the returned message (else None)."""
    out: dict[str, Any] = {}
    problems = []
    for key, value in attrs.items():
        try:
            out[str(key)] = _to_json(value, f"metric {key!r}")
        except ValueError as exc:
            problems.append(str(exc))
    return out, ("; ".join(problems) or None)
