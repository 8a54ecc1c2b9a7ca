"""What `Study.optimize` runs: one protocol for every kind of objective, so the study has no
special case per kind.

A plain function ``objective(params)`` is wrapped as it is. An object that knows more about
itself, such as a `Pipeline`, implements the protocol: it tells the optimizer its structure at
each ask (`suggest_context`) and writes its own records (per-stage costs, cache hits) into the
trial's system_attrs as it runs, so that what ran before a failure or a Ctrl-C is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from metatune.pipeline.context import PipelineContext
from metatune.trial import Trial

__all__ = ["TrialObjective", "FunctionObjective", "as_trial_objective"]


@runtime_checkable
class TrialObjective(Protocol):
    """An objective a Study can run with full bookkeeping.

    `records_cost` is True when `evaluate` writes ``system_attrs["cost"]``, so that a cost
    `budget` can be counted.
    """

    records_cost: bool

    def suggest_context(
        self, trials: Sequence[Trial], direction: str, budget: float | None
    ) -> PipelineContext | None:
        """What the optimizer is told at the next ask (None: nothing beyond the trials)."""

    def evaluate(self, params: Mapping[str, Any], system_attrs: dict[str, Any]) -> Any:
        """The objective's value at `params` (a number, or a dict with "objective"); raises
        to fail the trial. Records go into `system_attrs` as they happen."""


class FunctionObjective:
    """A plain ``objective(params)`` callable."""

    records_cost = False

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"objective must be callable, got {fn!r}")
        self.fn = fn

    def suggest_context(
        self, trials: Sequence[Trial], direction: str, budget: float | None
    ) -> PipelineContext | None:
        return None

    def evaluate(self, params: Mapping[str, Any], system_attrs: dict[str, Any]) -> Any:
        return self.fn(dict(params))


def as_trial_objective(objective: Any) -> TrialObjective:
    """`objective` itself if it implements the protocol, else a plain callable wrapped."""
    if isinstance(objective, TrialObjective):
        return objective
    return FunctionObjective(objective)
