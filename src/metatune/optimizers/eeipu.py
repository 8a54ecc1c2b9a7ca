"""EEIPU: memoization- and cost-aware BO for multi-stage pipelines (arXiv 2411.03731).

EEIPU scores a candidate x that reuses the cached stages 1..d of an earlier run by
``EI(x) * E[1/C(x; d)]^eta``: per-stage cost GPs (each on its own stage's parameters, fitted to
the log cost of stages that actually ran) give the cost of stages d+1..K, cached stages cost a
small epsilon, and eta cools from 1 to 0 as the budget is spent. Candidates come from a prefix
pool: the free search, plus every cached prefix of the top-5 trials with its dimensions fixed to
the exact stored values (so the cache key matches bit for bit).

`eeipu-memo` departs from the paper in two ways (both are options of `eeipu`):
* eta cools only the cost of running x from scratch; the saving from the cache enters at full
  weight, ``log EI + eta * log E[1/C(x; 0)] + log(E[1/C(x; d)] / E[1/C(x; 0)])``
  (``memo_cooling=False``), so late in the budget it keeps re-using cached prefixes;
* a stage's cost GP sees the parameters of that stage and every earlier one
  (``cost_inputs="prefix"``): a training phase costs more on the larger data set an earlier
  stage chose, which a GP on the phase's own parameters cannot see.
The published form stays the default.

Every candidate's cost includes a per-trial overhead (``trial_overhead``): by default what the
budget charges each trial for the tuner's own time (a Pipeline with wall-second costs charges it,
see ``Pipeline(count_tuner_time=...)``; on a simulated clock it is 0, as in the paper), so
re-running a nearly free last stage on a cached prefix is not taken for a free trial.

``hedge=rho`` (an option of every cost-aware optimizer, off by default) keeps a cost-aware
candidate only while its EI is at least rho times the best EI of a cost-blind search run next to
it: where memoization cannot help (a cheap stage that does not matter) cheap trials then do not
crowd out promising ones.
"""

from __future__ import annotations

from typing import Any

from metatune.direction import Direction
from metatune.optimizers._gp.history import prefix_key, stage_prefix
from metatune.optimizers.base import register_optimizer
from metatune.optimizers.cost_aware import CostAwareOptimizer
from metatune.pipeline.context import PipelineContext
from metatune.space import Space
from metatune.trial import Trial

__all__ = ["EEIPUOptimizer", "EEIPUMemoOptimizer"]


@register_optimizer("eeipu")
class EEIPUOptimizer(CostAwareOptimizer):
    """EI x E[1/C]^eta with per-stage cost GPs, eta cooling and cached-prefix reuse."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "stages")
        options.setdefault("cooling", True)
        options.setdefault("memoize", True)
        super().__init__(**options)

    def _prefix_pool(
        self, space: Space, pipe: PipelineContext, done: list[Trial], direction: Direction
    ) -> list[tuple[int, dict[str, Any]]]:
        """The free search, then each cached stage prefix of the `n_top` best trials once."""
        pool: list[tuple[int, dict[str, Any]]] = [(0, {})]
        if not (self.memoize and pipe.n_stages > 1 and pipe.cached_prefixes):
            return pool
        cached: set[tuple[int, tuple[Any, ...]]] = set()
        for c in pipe.cached_prefixes:
            names = pipe.prefix_names(c.depth)
            if 0 < c.depth < pipe.n_stages and all(n in c.params for n in names):
                cached.add((c.depth, prefix_key(c.params, names)))
        seen: set[tuple[int, tuple[Any, ...]]] = set()
        for t in direction.best_first(done)[: self.n_top]:
            for depth in range(1, pipe.n_stages):
                prefix = stage_prefix(t, pipe, depth)
                key = (depth, prefix_key(prefix, list(prefix)))
                if key in cached and key not in seen:
                    seen.add(key)
                    pool.append((depth, prefix))
        return pool


@register_optimizer("eeipu-memo")
class EEIPUMemoOptimizer(EEIPUOptimizer):
    """EEIPU whose cache saving is not cooled and whose stage cost GPs see the whole prefix."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("memo_cooling", False)
        options.setdefault("cost_inputs", "prefix")
        super().__init__(**options)
