"""Simplified multi-stage BO, a baseline for EEIPU: LogEI over the last stage only.

It keeps the best trial's earlier-stage parameters (their exact stored values, so a memoizing
pipeline reuses those stages) and searches the last stage's. Cost-blind; without a stage
structure it is plain LogEI.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metatune.direction import Direction
from metatune.optimizers._gp.acquisition import CostTerm
from metatune.optimizers._gp.history import stage_prefix
from metatune.optimizers.base import register_optimizer
from metatune.optimizers.cost_aware import CostAwareOptimizer
from metatune.pipeline.context import PipelineContext
from metatune.space import Space
from metatune.trial import Trial

__all__ = ["MSBOOptimizer"]


@register_optimizer("ms-bo")
class MSBOOptimizer(CostAwareOptimizer):
    """Simplified multi-stage BO: LogEI over the last stage only, on top of the best trial's
    earlier-stage parameters (exact values, so a memoizing pipeline reuses them). Cost-blind.
    Without a stage structure it is plain LogEI."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "stages")
        options.setdefault("cooling", False)
        super().__init__(**options)

    def _cost_term(
        self, space: Space, done: list[Trial], history: Sequence[Trial], pipe: PipelineContext
    ) -> CostTerm | None:
        return None

    def _prefix_pool(
        self, space: Space, pipe: PipelineContext, done: list[Trial], direction: Direction
    ) -> list[tuple[int, dict[str, Any]]]:
        if pipe.n_stages < 2:
            return [(0, {})]
        depth = pipe.n_stages - 1
        return [(depth, stage_prefix(direction.best_first(done)[0], pipe, depth))]
