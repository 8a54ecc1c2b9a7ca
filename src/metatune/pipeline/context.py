"""What a study tells an optimizer about a pipeline, as one typed record.

Optimizers are pure decision makers: they never touch the cache or run a stage. What they need
to know about the pipeline (its stages, the budget, which stage prefixes are cached now, the
fixed charge per trial) comes in a `PipelineContext` on `SuggestContext.pipeline`. A real
`Pipeline` and the simulated pipelines of the benchmarks produce the same type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["StageInfo", "CachedPrefix", "PipelineContext"]


@dataclass(frozen=True)
class StageInfo:
    """One stage: its name and the full names (``stage.param``) of its parameters."""

    name: str
    params: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(str(p) for p in self.params))


@dataclass(frozen=True)
class CachedPrefix:
    """The outputs of stages 1..`depth` for these exact parameter values are in the cache."""

    depth: int
    params: Mapping[str, Any]

    def __post_init__(self) -> None:
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"CachedPrefix.depth must be an integer >= 1, got {self.depth!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True)
class PipelineContext:
    """The pipeline's structure and state at one ask.

    Args:
        stages: the stages in order.
        budget_total: the cost budget of the run, or None (then there is no cost cooling).
        budget_spent: cost spent by finished trials so far.
        cached_prefixes: stage prefixes whose outputs the cache holds now.
        trial_cost: a fixed cost every trial is charged on top of its stages.
    """

    stages: tuple[StageInfo, ...] = ()
    budget_total: float | None = None
    budget_spent: float = 0.0
    cached_prefixes: tuple[CachedPrefix, ...] = field(default_factory=tuple)
    trial_cost: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "cached_prefixes", tuple(self.cached_prefixes))
        for st in self.stages:
            if not isinstance(st, StageInfo):
                raise TypeError(f"PipelineContext.stages must hold StageInfo, got {st!r}")
        for c in self.cached_prefixes:
            if not isinstance(c, CachedPrefix):
                raise TypeError(
                    f"PipelineContext.cached_prefixes must hold CachedPrefix, got {c!r}"
                )
        if self.budget_total is not None:
            object.__setattr__(self, "budget_total", float(self.budget_total))
        spent = float(self.budget_spent)
        if not (math.isfinite(spent) and spent >= 0):
            raise ValueError(
                f"budget_spent must be a finite number >= 0, got {self.budget_spent!r}"
            )
        object.__setattr__(self, "budget_spent", spent)
        cost = float(self.trial_cost)
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"trial_cost must be a finite number >= 0, got {self.trial_cost!r}")
        object.__setattr__(self, "trial_cost", cost)

    @classmethod
    def build(
        cls,
        stages: Iterable[tuple[str, Sequence[str]]],
        budget_total: float | None = None,
        budget_spent: float = 0.0,
        cached_prefixes: Iterable[tuple[int, Mapping[str, Any]]] = (),
        trial_cost: float = 0.0,
    ) -> PipelineContext:
        """From plain ``(name, params)`` and ``(depth, params)`` pairs."""
        return cls(
            stages=tuple(StageInfo(name, tuple(params)) for name, params in stages),
            budget_total=budget_total,
            budget_spent=budget_spent,
            cached_prefixes=tuple(CachedPrefix(int(d), p) for d, p in cached_prefixes),
            trial_cost=trial_cost,
        )

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def check_space(self, names: Iterable[str]) -> None:
        """ValueError naming the stage if a stage names a parameter outside `names`."""
        known = set(names)
        for st in self.stages:
            unknown = [p for p in st.params if p not in known]
            if unknown:
                raise ValueError(f"stage {st.name!r} names unknown parameters {unknown}")

    def prefix_names(self, depth: int) -> list[str]:
        """The parameter names of stages 1..`depth`."""
        return [p for st in self.stages[:depth] for p in st.params]
