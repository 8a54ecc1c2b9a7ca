"""What the HTML report and the dashboard show of a study: its trials, direction and space.

Both read a study either from a live `Study` or straight from a storage's record and trials
(the inspection commands open storages read-only and never build a Study).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metatune.constraints import OutcomeConstraint, feasible_trials, stored_constraints
from metatune.direction import Direction
from metatune.pareto import pareto_front
from metatune.trial import SystemAttr, Trial, TrialState

__all__ = ["ParamInfo", "StudyView", "numeric_value"]


@dataclass(frozen=True)
class ParamInfo:
    """How to plot one parameter: its kind ("float", "int", "categorical"), log scale, choices."""

    name: str
    kind: str
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def categorical(self) -> bool:
        """Plotted by category: every kind but numbers (categorical, and structured ones such
        as architecture cells)."""
        return self.kind not in ("float", "int")


def numeric_value(v: Any) -> float | None:
    """`v` as a finite float, or None (booleans, text and non-finite numbers are not numbers)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass
class StudyView:
    """A study as the report and the dashboard see it. `trials` are ordered by number."""

    trials: list[Trial]
    direction: str = "minimize"
    name: str | None = None
    space: dict[str, dict[str, Any]] | None = None
    optimizer: str | None = None
    directions: list[str] | None = None  # every objective's, for a multi-objective study
    # outcome constraints a trial must meet to be on the front (mo-gp's `constraints`)
    constraints: list[OutcomeConstraint] = field(default_factory=list)
    _params: list[ParamInfo] | None = field(default=None, repr=False)
    _front: list[Trial] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.direction = Direction.parse(self.direction).value
        self.trials = sorted(self.trials, key=lambda t: t.number)
        if self.directions is not None:
            self.directions = [Direction.parse(d).value for d in self.directions]
            if len(self.directions) < 2:  # one objective: a plain study
                self.direction = self.directions[0] if self.directions else self.direction
                self.directions = None
            else:
                self.direction = self.directions[0]

    @classmethod
    def from_any(
        cls, study_or_trials: Any, direction: str | None = None, name: str | None = None
    ) -> StudyView:
        """From a `Study` (its trials, direction, name and space), a `StudyView`, or a sequence
        of `Trial` (direction default "minimize")."""
        if isinstance(study_or_trials, StudyView):
            return study_or_trials
        if hasattr(study_or_trials, "trials") and hasattr(study_or_trials, "direction"):
            study = study_or_trials
            space = getattr(study, "space", None)
            opt = getattr(study, "optimizer", None)
            directions = getattr(study, "directions", None)
            return cls(
                trials=list(study.trials),
                direction=direction or study.direction,
                name=name or getattr(study, "name", None),
                space=(space.to_dict() or None) if hasattr(space, "to_dict") else None,
                optimizer=getattr(opt, "name", None),
                directions=list(directions) if directions and len(directions) > 1 else None,
                constraints=list(getattr(opt, "constraints", ())),
            )
        if isinstance(study_or_trials, (str, bytes)) or not isinstance(study_or_trials, Sequence):
            raise TypeError("study_or_trials must be a Study or a sequence of Trial")
        trials = list(study_or_trials)
        if not all(isinstance(t, Trial) for t in trials):
            raise TypeError("study_or_trials must be a Study or a sequence of Trial")
        return cls(trials=trials, direction=direction or "minimize", name=name)

    @classmethod
    def from_record(cls, record: Any, trials: Sequence[Trial]) -> StudyView:
        """From a storage's `StudyRecord` and the study's trials."""
        return cls(
            trials=list(trials),
            direction=record.direction,
            name=record.name,
            space=dict(record.space) if record.space else None,
            optimizer=record.optimizer,
            directions=getattr(record, "directions", None),
            constraints=stored_constraints(getattr(record, "optimizer_options", None)),
        )

    # Derived facts -------------------------------------------------------------------------
    @property
    def sign(self) -> float:
        """+1 to minimize, -1 to maximize: ``sign * value`` is smaller when better."""
        return Direction.parse(self.direction).sign

    @property
    def is_multi_objective(self) -> bool:
        return self.directions is not None

    @property
    def n_objectives(self) -> int:
        return len(self.directions) if self.directions else 1

    def objective_label(self, k: int = 0) -> str:
        """How figures name objective `k`: "objective", or "objective k (direction)"."""
        if not self.directions:
            return "objective"
        return f"objective {k} ({self.directions[k]})"

    def completed(self) -> list[Trial]:
        """Completed trials with a finite value (every objective's, in a multi-objective
        study)."""
        done = [
            t
            for t in self.trials
            if t.state is TrialState.COMPLETE and numeric_value(t.value) is not None
        ]
        if self.directions:
            k = len(self.directions)
            done = [t for t in done if len(self.values_of(t) or ()) == k]
        return done

    def values_of(self, t: Trial) -> list[float] | None:
        """The trial's objective values as finite floats (one for a plain study), or None."""
        raw = t.values if self.directions and t.values is not None else [t.value]
        out = [numeric_value(v) for v in raw]
        return None if any(v is None for v in out) else out  # type: ignore[return-value]

    def best(self) -> Trial | None:
        """The best completed trial; None for a multi-objective study (see `pareto`)."""
        if self.directions:
            return None
        done = self.completed()
        return min(done, key=lambda t: self.sign * float(t.value)) if done else None  # type: ignore[arg-type]

    def pareto(self) -> list[Trial]:
        """The completed trials that meet the constraints and that no other such trial
        dominates (every objective counted as a loss), by number; for a plain study, the best
        trial."""
        if not self.directions:
            best = self.best()
            return [] if best is None else [best]
        if self._front is None:
            done = feasible_trials(self.completed(), self.constraints)
            signs = [Direction.parse(d).sign for d in self.directions]
            losses = np.array(
                [[s * v for s, v in zip(signs, self.values_of(t), strict=True)] for t in done],  # type: ignore[arg-type]
                dtype=float,
            ).reshape(len(done), len(signs))
            self._front = [done[i] for i in pareto_front(losses)]
        return list(self._front)

    def has_intermediate(self) -> bool:
        """Whether any trial reported intermediate values (a learning curve)."""
        return any(t.intermediate_values for t in self.trials)

    def counts(self) -> dict[str, int]:
        """Trials per state (every state, zero included), then any state not in TrialState."""
        out = {s.value: 0 for s in TrialState}
        for t in self.trials:
            out[t.state.value] = out.get(t.state.value, 0) + 1
        return out

    @property
    def is_pipeline(self) -> bool:
        """Whether any trial carries per-stage records (a Pipeline study)."""
        return any(t.system_attrs.get(SystemAttr.STAGES) for t in self.trials)

    def stage_names(self) -> list[str]:
        """Stage names in pipeline order, as the trials recorded them."""
        names: dict[str, None] = {}
        for t in self.trials:
            for r in t.system_attrs.get(SystemAttr.STAGES) or []:
                names.setdefault(str(r.get("name")), None)
        return list(names)

    def params(self) -> list[ParamInfo]:
        """The parameters: from the space when known, else inferred from the trials' values."""
        if self._params is None:
            self._params = self._infer_params()
        return self._params

    def _infer_params(self) -> list[ParamInfo]:
        out = []
        if self.space:
            for name, d in self.space.items():
                kind = str(d.get("type", "float"))
                choices = tuple(d.get("choices", ())) if kind == "categorical" else ()
                out.append(ParamInfo(name, kind, bool(d.get("log", False)), choices))
        known = {p.name for p in out}
        # A define-by-run study has no declared space: each trial recorded the form of what it
        # suggested, which is what the figures need (log scale, choices).
        forms: dict[str, dict[str, Any]] = {}
        for t in self.trials:
            suggested = t.system_attrs.get(SystemAttr.SUGGESTED)
            if isinstance(suggested, dict):
                for k, entry in suggested.items():
                    if k not in known and isinstance(entry, dict):
                        forms.setdefault(k, entry.get("param") or {})
        for name, d in forms.items():
            kind = str(d.get("type", "float"))
            choices = tuple(d.get("choices", ())) if kind == "categorical" else ()
            out.append(ParamInfo(name, kind, bool(d.get("log", False)), choices))
        known |= set(forms)
        extra: dict[str, list[Any]] = {}
        for t in self.trials:
            for k, v in t.params.items():
                if k not in known:
                    extra.setdefault(k, []).append(v)
        for name, values in extra.items():
            if all(numeric_value(v) is not None for v in values if v is not None):
                ints = all(isinstance(v, int) for v in values if v is not None)
                out.append(ParamInfo(name, "int" if ints else "float"))
            else:
                seen: dict[Any, None] = {}
                for v in values:
                    seen.setdefault(_hashable(v), None)
                out.append(ParamInfo(name, "categorical", choices=tuple(seen)))
        return out


def _hashable(v: Any) -> Any:
    try:
        hash(v)
    except TypeError:
        return repr(v)
    return v
