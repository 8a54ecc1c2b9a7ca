"""EEIPU: memoization- and cost-aware BO for multi-stage pipelines, and simplified multi-stage BO.

EEIPU (arXiv 2411.03731) scores a candidate x that reuses the cached stages 1..d of an earlier run
by ``EI(x) * E[1/C(x; d)]^eta``: per-stage cost GPs (each on its own stage's parameters, fitted to
the log cost of stages that actually ran) give the cost of stages d+1..K, cached stages cost a
small epsilon, and eta cools from 1 to 0 as the budget is spent. Candidates come from a prefix
pool: the free search, plus every cached prefix of the top-5 trials with its dimensions fixed to
the exact stored values (so the cache key matches bit for bit).

`eeipu-memo` is a variant that departs from the paper in two ways (both are options of `eeipu`):
* eta cools only the cost of running x from scratch; the saving from the cache enters at full
  weight, ``log EI + eta * log E[1/C(x; 0)] + log(E[1/C(x; d)] / E[1/C(x; 0)])``
  (``memo_cooling=False``), so late in the budget it keeps re-using cached prefixes;
* a stage's cost GP sees the parameters of that stage and every earlier one
  (``cost_inputs="prefix"``): a training phase costs more on the larger data set an earlier
  stage chose, which a GP on the phase's own parameters cannot see.
In docs/benchmarks/pipelines.md it evaluates more candidates than `eeipu` on four pipelines (on
the fifth, stacking, both stop at the trial cap) and finds better optima on the synthetic ones,
but worse final models on the real vision and language pipelines (it spends the budget
re-tuning late stages of the best runs), so the published form stays the default.

A per-trial overhead (``trial_overhead``; "auto" measures the tuner's own time) can be added to
every candidate's cost, for budgets in wall time where re-running a nearly free last stage is not
a nearly free trial. It is 0 by default: the budget counts stage costs, as in the paper.
"""

from __future__ import annotations

from typing import Any

from metatune.optimizers.base import register_optimizer
from metatune.optimizers.cost_aware import (
    CostAwareOptimizer,
    _PipelineInfo,
    _prefix_key,
)
from metatune.space import Space
from metatune.trial import Trial

__all__ = ["EEIPUOptimizer", "EEIPUMemoOptimizer", "MSBOOptimizer"]


def _stage_prefix(t: Trial, info: _PipelineInfo, depth: int) -> dict[str, Any]:
    return {n: t.params[n] for _, names in info.stages[:depth] for n in names}


@register_optimizer("eeipu")
class EEIPUOptimizer(CostAwareOptimizer):
    """EI x E[1/C]^eta with per-stage cost GPs, eta cooling and cached-prefix reuse."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "stages")
        options.setdefault("cooling", True)
        options.setdefault("memoize", True)
        super().__init__(**options)

    def _prefix_pool(
        self, space: Space, info: _PipelineInfo, done: list[Trial], sign: float
    ) -> list[tuple[int, dict[str, Any]]]:
        pool: list[tuple[int, dict[str, Any]]] = [(0, {})]
        if not (self.memoize and info.n_stages > 1 and info.cached):
            return pool
        cached: set[tuple[int, tuple[Any, ...]]] = set()
        for depth, params in info.cached:
            names = [n for _, ns in info.stages[:depth] for n in ns]
            if 0 < depth < info.n_stages and all(n in params for n in names):
                cached.add((depth, _prefix_key(params, names)))
        top = sorted(done, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
        seen: set[tuple[int, tuple[Any, ...]]] = set()
        for t in top[: self.n_top]:
            for depth in range(1, info.n_stages):
                prefix = _stage_prefix(t, info, depth)
                key = (depth, _prefix_key(prefix, list(prefix)))
                if key in cached and key not in seen:
                    seen.add(key)
                    pool.append((depth, prefix))
        return pool


@register_optimizer("eeipu-memo")
class EEIPUMemoOptimizer(EEIPUOptimizer):
    """EEIPU whose cache saving is not cooled and whose stage cost GPs see the whole prefix:
    more candidates per budget, at some cost in final quality on real pipelines."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("memo_cooling", False)
        options.setdefault("cost_inputs", "prefix")
        super().__init__(**options)


@register_optimizer("ms-bo")
class MSBOOptimizer(CostAwareOptimizer):
    """Simplified multi-stage BO: LogEI over the last stage only, on top of the best trial's
    earlier-stage parameters (exact values, so a memoizing pipeline reuses them). Cost-blind.
    Without a stage structure it is plain LogEI."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "stages")
        options.setdefault("cooling", False)
        super().__init__(**options)

    def _cost_term(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _prefix_pool(
        self, space: Space, info: _PipelineInfo, done: list[Trial], sign: float
    ) -> list[tuple[int, dict[str, Any]]]:
        if info.n_stages < 2:
            return [(0, {})]
        best = min(done, key=lambda t: (sign * float(t.value), t.number))  # type: ignore[arg-type]
        depth = info.n_stages - 1
        return [(depth, _stage_prefix(best, info, depth))]
