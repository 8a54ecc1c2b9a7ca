"""What `Study.optimize` runs: one protocol for every kind of objective, so the study has no
special case per kind.

A plain function ``objective(params)`` is wrapped as it is; a define-by-run ``objective(trial)``
by `metatune.define_by_run`. An object that knows more about
itself, such as a `Pipeline`, implements the protocol: it tells the optimizer its structure at
each ask (`suggest_context`) and writes its own records (per-stage costs, cache hits) into the
trial's system_attrs as it runs, so that what ran before a failure or a Ctrl-C is kept.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from metatune.pipeline.context import PipelineContext
from metatune.space import Space
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


def _positional(fn: Any) -> list[inspect.Parameter] | None:
    """The parameters `fn` can take positionally, or None when its signature is unknown."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in sig.parameters.values() if p.kind in kinds or p.kind is p.VAR_POSITIONAL]


def objective_form(objective: Any) -> str:
    """ "trial" for an ``objective(trial)`` (it calls ``trial.suggest_*`` or names its argument
    ``trial``), "params" for an ``objective(params)``; TypeError, before any trial, for a
    callable that cannot take exactly one argument."""
    name = getattr(objective, "__name__", type(objective).__name__)
    params = _positional(objective)
    if params is not None:
        required = [p for p in params if p.default is p.empty and p.kind is not p.VAR_POSITIONAL]
        takes_one = len(required) == 1 or (not required and params)
        if not takes_one:
            raise TypeError(
                f"objective {name!r} must take one argument: a dict of parameter values "
                "(def objective(params)) or a trial (def objective(trial), calling "
                f"trial.suggest_*); its signature is {inspect.signature(objective)}"
            )
    if _suggest_calls(objective):
        return "trial"
    if params and params[0].name == "trial":
        return "trial"
    return "params"


def as_trial_objective(
    objective: Any, declared: Space | None = None, seed: int = 0
) -> TrialObjective:
    """`objective` itself if it implements the protocol, else a plain callable wrapped by its
    form (see `objective_form`), decided before the first trial.

    `declared` is the study's space (None for a define-by-run study, which needs an
    ``objective(trial)``); `seed` seeds a define-by-run objective's own draws.
    """
    if isinstance(objective, TrialObjective):
        return objective
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {objective!r}")
    form = objective_form(objective)
    if form == "trial":
        from metatune.define_by_run import DefineByRunObjective

        return DefineByRunObjective(objective, declared, seed)
    if declared is None:
        raise TypeError(
            f"objective {getattr(objective, '__name__', objective)!r} takes a dict of "
            "parameter values, but the study declares no space: pass one "
            "(Study({'lr': Float(1e-4, 1, log=True)})), or write def objective(trial) "
            "calling trial.suggest_float('lr', 1e-4, 1, log=True)"
        )
    return FunctionObjective(objective)
