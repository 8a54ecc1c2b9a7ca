"""Define-by-run objectives: ``objective(trial)`` asking for its parameters with
``trial.suggest_float / suggest_int / suggest_categorical`` as it runs, conditionals written as
ordinary Python ``if``.

The study learns the space from the trials: every parameter a trial asked for, with the range it
asked for first, and for a parameter that only some trials asked for, the rule that explains when
(``units_2`` exactly when ``n_layers`` is 3 or 4, ``gamma`` exactly when ``kernel`` is "rbf").
Each ask proposes a point of that learned space from the model; ``suggest_*`` returns the
proposed value when the objective asks for the same name with a range that holds it, and a fresh
random draw otherwise (a parameter seen for the first time, or a changed range).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from metatune.reporting import current_reporter, report, should_prune
from metatune.space import (
    PARAM_TYPES,
    Categorical,
    Float,
    Int,
    Param,
    Space,
    same_value,
)
from metatune.trial import SystemAttr, Trial

__all__ = ["RunTrial", "DefineByRunObjective", "learned_space", "project"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _bare(p: Param) -> dict[str, Any]:
    """A parameter's form without its condition (what two suggest calls must agree on)."""
    d = dict(p.to_dict())
    d.pop("when", None)
    return d


class RunTrial:
    """What a define-by-run objective is handed: the running trial, Optuna's names.

    Args:
        number: the trial's number.
        proposal: the values the optimizer proposed for this trial (a point of the declared or
            learned space).
        declared: the study's declared space, or None for a define-by-run study; with one,
            `suggest_*` returns the declared value and refuses names the space lacks.
        seed: seeds the draws of parameters the proposal does not cover.
    """

    def __init__(
        self,
        number: int,
        proposal: Mapping[str, Any],
        declared: Space | None = None,
        seed: int = 0,
    ) -> None:
        self.number = int(number)
        self._proposal = dict(proposal)
        self._declared = declared
        self._seed = int(seed)
        self._used: dict[str, tuple[Param, Any]] = {}
        self.user_attrs: dict[str, Any] = {}

    @property
    def params(self) -> dict[str, Any]:
        """The values this trial has: the declared ones, or those suggested so far."""
        if self._declared is not None:
            return dict(self._proposal)
        return {name: value for name, (_, value) in self._used.items()}

    # Optuna's names -------------------------------------------------------------------------
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """A real value in [low, high] (log-uniform with `log=True`)."""
        if step is not None:
            raise ValueError(
                f"suggest_float({name!r}, step={step!r}): a step is not supported; "
                "use suggest_int and scale it, or suggest_categorical for a few values"
            )
        return float(self._suggest(name, Float(low, high, log=log)))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """An integer in [low, high], both included (log scale with `log=True`)."""
        if step != 1:
            raise ValueError(
                f"suggest_int({name!r}, step={step!r}): only step=1 is supported; "
                "suggest the multiple (e.g. k in [1, 8]) and multiply it"
            )
        if low == high:
            return int(low)
        return int(self._suggest(name, Int(low, high, log=log)))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """One of `choices` (strings, numbers, booleans or None)."""
        return self._suggest(name, Categorical(choices))

    def report(self, value: float, step: int) -> None:
        """Store an intermediate value (e.g. the validation loss after epoch `step`)."""
        report(value, step)

    def should_prune(self) -> bool:
        """Whether the study's pruner would stop this trial now (then raise TrialPruned)."""
        return should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        """Keep `value` with the trial (stored in `user_attrs` when it finishes)."""
        self.user_attrs[str(key)] = value

    # Bookkeeping ----------------------------------------------------------------------------
    def _suggest(self, name: str, param: Param) -> Any:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"bad parameter name {name!r}: use letters, digits, '_', '.', '-', "
                "starting with a letter or '_'"
            )
        if name in self._used:
            first, value = self._used[name]
            if _bare(first) != _bare(param):
                raise ValueError(
                    f"parameter {name!r} was suggested twice in trial {self.number} with "
                    f"different ranges: {first!r}, then {param!r}"
                )
            return value
        if self._declared is not None:
            value = self._declared_value(name, param)
        elif name in self._proposal and param.contains(self._proposal[name]):
            value = self._proposal[name]
        else:
            value = param.from_uniform(float(self._rng(name).random()))
        self._used[name] = (param, value)
        return value

    def _declared_value(self, name: str, param: Param) -> Any:
        space = self._declared
        assert space is not None
        if name not in space:
            raise ValueError(
                f"parameter {name!r} is not in the study's declared space {list(space)}; "
                "declare it there, or use a study without a space (define-by-run)"
            )
        if _bare(space[name]) != _bare(param):
            raise ValueError(
                f"parameter {name!r} is declared as {space[name]!r} but suggested as {param!r}"
            )
        if name not in self._proposal:
            raise ValueError(
                f"parameter {name!r} is inactive in trial {self.number}: its condition "
                f"{space.condition_of(name)} in the declared space does not hold"
            )
        return self._proposal[name]

    def _rng(self, name: str) -> np.random.Generator:
        digest = hashlib.sha256(f"{self._seed}/{self.number}/{name}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def record(self) -> dict[str, dict[str, Any]]:
        """What the study stores in system_attrs[SUGGESTED]: each parameter's form and value."""
        return {
            name: {"param": param.to_dict(), "value": value}
            for name, (param, value) in self._used.items()
        }


class DefineByRunObjective:
    """An ``objective(trial)`` run as a study's TrialObjective (see metatune.objective)."""

    records_cost = False

    def __init__(
        self, fn: Callable[[RunTrial], Any], declared: Space | None = None, seed: int = 0
    ) -> None:
        self.fn = fn
        self.declared = declared
        self.seed = int(seed)

    def suggest_context(self, trials: Sequence[Trial], direction: str, budget: float | None):
        return None

    def evaluate(self, params: Mapping[str, Any], system_attrs: dict[str, Any]) -> Any:
        number = getattr(current_reporter(), "number", 0)
        trial = RunTrial(number, params, self.declared, self.seed)
        try:
            result = self.fn(trial)
        finally:  # what was suggested before a failure or a prune is kept too
            system_attrs[SystemAttr.SUGGESTED] = trial.record()
            if trial.user_attrs:
                system_attrs[SystemAttr.RUN_USER_ATTRS] = dict(trial.user_attrs)
        return result


# The learned space ------------------------------------------------------------------------------
def _records(trials: Sequence[Trial]) -> list[dict[str, dict[str, Any]]]:
    return [
        t.system_attrs[SystemAttr.SUGGESTED]
        for t in trials
        if t.state.finished and isinstance(t.system_attrs.get(SystemAttr.SUGGESTED), dict)
    ]


def _with_rule(p: Param, parent: str, values: list[Any]) -> Param:
    if isinstance(p, Categorical):
        return Categorical(p.choices, when={parent: values})
    return replace(p, when=(parent, tuple(values)))


def learned_space(trials: Sequence[Trial]) -> Space | None:
    """The space the finished trials of a define-by-run study asked for (None before any):
    each name with the range it was first asked with, conditional on an earlier integer or
    categorical parameter when the trials show such a rule, else optional."""
    records = _records(trials)
    first: dict[str, dict[str, Any]] = {}
    for rec in records:
        for name, entry in rec.items():
            first.setdefault(name, entry["param"])
    if not first:
        return None
    present = {
        name: {i for i, rec in enumerate(records) if name in rec and rec[name]["param"] == form}
        for name, form in first.items()
    }
    everywhere = set(range(len(records)))
    params: dict[str, Param] = {}
    optional: set[str] = set()
    for name, form in first.items():
        p = PARAM_TYPES.get(form["type"])(form)
        rows = present[name]
        if rows == everywhere:
            params[name] = p
            continue
        rule = _explaining_rule(name, rows, params, present, records)
        if rule is None:
            optional.add(name)
            params[name] = p
        else:
            params[name] = _with_rule(p, *rule)
    return Space(params, optional=optional)


def _explaining_rule(
    name: str,
    rows: set[int],
    earlier: Mapping[str, Param],
    present: Mapping[str, set[int]],
    records: list[dict[str, dict[str, Any]]],
) -> tuple[str, list[Any]] | None:
    """An earlier discrete parameter q and values V with: `name` present exactly in the trials
    where q is present and takes a value in V."""
    for q, qp in earlier.items():
        if not isinstance(qp, (Categorical, Int)) or not rows <= present[q]:
            continue
        values: list[Any] = []
        for i in rows:
            v = records[i][q]["value"]
            if not any(same_value(v, w) for w in values):
                values.append(v)
        others = present[q] - rows
        if all(not any(same_value(records[i][q]["value"], w) for w in values) for i in others):
            return q, values
    return None


def project(trials: Sequence[Trial], space: Space) -> list[Trial]:
    """Copies of `trials` whose params are the learned `space`'s: values asked with another
    range are left out, and a trial that is then not a valid point is dropped (the model does
    not see it)."""
    out = []
    for t in trials:
        rec = t.system_attrs.get(SystemAttr.SUGGESTED)
        if isinstance(rec, dict):
            params = {
                n: e["value"]
                for n, e in rec.items()
                if n in space
                and e["param"].get("type")
                and _bare_dict(e["param"]) == _bare(space[n])
            }
        else:  # running: its proposal
            params = {n: v for n, v in t.params.items() if n in space}
        params = space.active(params) if space.is_conditional else params
        try:
            space.validate(params)
        except (TypeError, ValueError):
            continue
        out.append(replace(t, params=params))
    return out


def _bare_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(d)
    out.pop("when", None)
    return out
