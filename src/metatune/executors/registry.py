"""The executors by name: "process" (the embedded default) and "ray"; both imported on first use."""

from __future__ import annotations

from metatune._registry import Registry
from metatune.executors.base import Executor

__all__ = ["EXECUTORS"]


def _check_executor(obj: object) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Executor)):
        raise TypeError(f"an executor must be an Executor subclass, got {obj!r}")


EXECUTORS: Registry[type[Executor]] = Registry("executor", check=_check_executor)
EXECUTORS.register_lazy("process", "metatune.executors.process:ProcessExecutor")
EXECUTORS.register_lazy("ray", "metatune.executors.ray:RayExecutor")
