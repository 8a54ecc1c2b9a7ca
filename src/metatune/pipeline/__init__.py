"""Stage-wise pipelines with memoized stage outputs and per-stage costs.

``Pipeline([Stage("prep", prep, {...}), Stage("train", train, {...})], cache="runs/cache")`` is an
objective for ``Study.optimize``; the study serves the longest cached prefix of each candidate,
records every stage's cost and cache hit, and stops at ``budget=`` (total cost). A stage reports
its own cost by returning ``StageResult(output, cost=...)``; otherwise its wall seconds count.
Loading a shared cache trusts whoever wrote it (entries are pickled).
"""

from metatune.pipeline.cache import Cache, CacheStats, Serializer
from metatune.pipeline.pipeline import Pipeline, PipelineRun, StageRecord, cost_spent, summarize
from metatune.pipeline.stage import Stage, StageError, StageResult

__all__ = [
    "Cache",
    "CacheStats",
    "Pipeline",
    "PipelineRun",
    "Serializer",
    "Stage",
    "StageError",
    "StageRecord",
    "StageResult",
    "cost_spent",
    "summarize",
]
