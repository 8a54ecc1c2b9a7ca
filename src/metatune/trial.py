"""Trials: one evaluation of the objective at one point of the space, and its outcome."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = ["Trial", "TrialState", "SystemAttr"]


class TrialState(str, enum.Enum):
    """Lifecycle of a trial: RUNNING until told, then COMPLETE (with a value) or FAILED."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self is not TrialState.RUNNING


class SystemAttr:
    """Keys metatune writes into `Trial.system_attrs` (its own records, next to the user's)."""

    STAGES = "stages"  # per-stage records of a pipeline trial: name, cost, cache_hit, seconds
    COST = "cost"  # total cost charged to the trial (stages plus the pipeline's trial_cost)
    BUDGET = "budget"  # the cost budget of the optimize() call that ran the trial
    ASK_SECONDS = "ask_seconds"  # the optimizer's time to suggest the trial
    CACHE_DEPTH = "cache_depth"  # leading stages served from the cache
    SECONDS_SAVED = "seconds_saved"  # wall seconds the cache saved
    COST_SAVED = "cost_saved"  # cost the cache saved
    TRIAL_COST = "trial_cost"  # the pipeline's fixed charge per trial


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
