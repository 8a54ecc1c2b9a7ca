"""Parallel trials from one study: ``study.optimize(objective, n_workers=N, executor=...)``.

Executors are registered by name in `EXECUTORS`: "process" (local worker processes, the
default) and "ray" (Ray tasks on a local Ray or a cluster; needs ``metatune[ray]``). An
`Executor` instance may be passed instead of a name.
"""

from __future__ import annotations

from metatune._registry import Registry
from metatune.executors.base import Executor, Outcome
from metatune.executors.runner import make_executor, run_parallel


def _check_executor(obj: object) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Executor)):
        raise TypeError(f"an executor must be an Executor subclass, got {obj!r}")


EXECUTORS: Registry[type[Executor]] = Registry("executor", check=_check_executor)
EXECUTORS.register_lazy("process", "metatune.executors.process:ProcessExecutor")
EXECUTORS.register_lazy("ray", "metatune.executors.ray:RayExecutor")

__all__ = ["EXECUTORS", "Executor", "Outcome", "make_executor", "run_parallel"]
