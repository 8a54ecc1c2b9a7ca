"""What `Study.optimize` runs: one protocol for every kind of objective, so the study has no
special case per kind.

A plain function ``objective(params)`` is wrapped as it is. An object that knows more about
itself, such as a `Pipeline`, implements the protocol: it tells the optimizer its structure at
each ask (`suggest_context`) and writes its own records (per-stage costs, cache hits) into the
trial's system_attrs as it runs, so that what ran before a failure or a Ctrl-C is kept.
"""

from __future__ import annotations

import inspect
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


_DEFINE_BY_RUN = frozenset(
    {"suggest_float", "suggest_int", "suggest_categorical", "suggest_uniform", "suggest_loguniform"}
)


def _suggest_calls(fn: Any) -> set[str]:
    """The `trial.suggest_*` names the code of `fn` (and the functions nested in it) uses."""
    target = fn if inspect.isroutine(fn) else vars(type(fn)).get("__call__")
    code = getattr(inspect.unwrap(target) if target is not None else None, "__code__", None)
    found: set[str] = set()
    todo = [code] if code is not None else []
    while todo:
        c = todo.pop()
        found.update(n for n in c.co_names if n in _DEFINE_BY_RUN)
        todo += [k for k in c.co_consts if inspect.iscode(k)]
    return found


def as_trial_objective(objective: Any) -> TrialObjective:
    """`objective` itself if it implements the protocol, else a plain callable wrapped.

    Decided before the first trial: an Optuna-style objective that calls `trial.suggest_*` is
    refused with a TypeError saying what to write instead, rather than failing every trial.
    """
    if isinstance(objective, TrialObjective):
        return objective
    calls = _suggest_calls(objective)
    if calls:
        raise TypeError(
            f"objective {getattr(objective, '__name__', objective)!r} calls "
            f"{', '.join(sorted(calls))} on its argument (an Optuna-style define-by-run "
            "objective); metatune objectives take a dict of parameter values: declare the "
            "space (e.g. Study({'lr': Float(1e-4, 1, log=True)})) and read params['lr']"
        )
    return FunctionObjective(objective)
