"""Outcome constraints: bounds on metrics a trial reports next to its objective values.

A constraint is written as Ax writes it, ``"latency <= 0.05"`` or ``"accuracy >= 0.9"``: the
name of a metric the objective returns in its result dict (``{"objective": [...], "latency":
0.04}``) or sets with ``trial.set_user_attr``, a comparison, and a bound. Plain strings, so
they are stored with the study's optimizer options and come back on a resume.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metatune.trial import Trial

__all__ = [
    "OutcomeConstraint",
    "feasible",
    "feasible_trials",
    "parse_constraints",
    "stored_constraints",
]

_PATTERN = re.compile(r"^\s*(?P<name>[^\s<>=]+)\s*(?P<op><=|>=)\s*(?P<bound>\S+)\s*$")


@dataclass(frozen=True)
class OutcomeConstraint:
    """`metric` <= `bound` (upper=True) or `metric` >= `bound` (upper=False)."""

    metric: str
    bound: float
    upper: bool

    @classmethod
    def parse(cls, text: Any) -> OutcomeConstraint:
        """The constraint `text` ("name <= bound" or "name >= bound"); ValueError otherwise."""
        m = _PATTERN.match(text) if isinstance(text, str) else None
        bound = _number(m.group("bound")) if m else None
        if m is None or bound is None:
            raise ValueError(
                f"a constraint must read 'metric <= bound' or 'metric >= bound' with a finite "
                f"number as bound, got {text!r}"
            )
        return cls(m.group("name"), bound, m.group("op") == "<=")

    def value(self, trial: Trial) -> float | None:
        """The trial's finite value of the metric, or None when it reported none."""
        v = (trial.user_attrs or {}).get(self.metric)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    def slack(self, value: float) -> float:
        """How far `value` is inside the bound: >= 0 when it satisfies the constraint."""
        return self.bound - value if self.upper else value - self.bound

    def __str__(self) -> str:
        return f"{self.metric} {'<=' if self.upper else '>='} {self.bound:g}"


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_constraints(constraints: Any) -> list[OutcomeConstraint]:
    """The constraints of a list of strings (None: none); ValueError naming the bad entry."""
    if constraints is None:
        return []
    if isinstance(constraints, str) or not isinstance(constraints, Sequence):
        raise ValueError(
            f"constraints must be a list of strings such as 'latency <= 0.05', got {constraints!r}"
        )
    return [OutcomeConstraint.parse(c) for c in constraints]


def feasible(trial: Trial, constraints: Sequence[OutcomeConstraint]) -> bool:
    """Whether the trial reported every constrained metric and satisfies every bound."""
    for c in constraints:
        v = c.value(trial)
        if v is None or c.slack(v) < 0:
            return False
    return True


def feasible_trials(
    trials: Iterable[Trial], constraints: Sequence[OutcomeConstraint]
) -> list[Trial]:
    """The trials that meet every constraint (all of them when there is none)."""
    trials = list(trials)
    return [t for t in trials if feasible(t, constraints)] if constraints else trials


def stored_constraints(optimizer_options: Mapping[str, Any] | None) -> list[OutcomeConstraint]:
    """The outcome constraints a study's stored optimizer options name (mo-gp's
    ``constraints``), so that a report read from storage shows the same result as the study.
    Options that do not parse as constraints (another optimizer's own use of the key) give none.
    """
    raw = (optimizer_options or {}).get("constraints")
    try:
        return parse_constraints(raw)
    except ValueError:
        return []
