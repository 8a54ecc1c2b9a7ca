"""Parallel trials from one study: ``study.optimize(objective, n_workers=N, executor=...)``.

Executors are registered by name in `EXECUTORS`: "process" (local worker processes, the
default) and "ray" (Ray tasks on a local Ray or a cluster; needs ``metatune[ray]``). An
`Executor` instance may be passed instead of a name.
"""

from __future__ import annotations

from metatune.executors.base import Executor, Outcome
from metatune.executors.registry import EXECUTORS
from metatune.executors.runner import make_executor, run_parallel

__all__ = ["EXECUTORS", "Executor", "Outcome", "make_executor", "run_parallel"]
