"""The contract between `run_parallel` (the driver) and an executor (where trials run).

The driver asks and tells; an executor only carries `(params, system_attrs)` to a worker, runs
the objective there and brings back an `Outcome`. Storage is never touched on a worker, so a
worker may live on a machine that cannot reach the study's database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from metatune.objective import TrialObjective

# The metatune.study.Study that drives an executor. Typed loosely on purpose: the study imports
# the executors (lazily), so the executors do not import the study module back.
DrivenStudy = Any

__all__ = ["Executor", "Outcome", "describe_objective"]


@dataclass
class Outcome:
    """What came back for one trial: the objective's result, or `error` (a formatted exception
    or the reason its worker died), or `pruned` (it raised TrialPruned), and the system_attrs
    the objective wrote as it ran."""

    result: Any = None
    error: str | None = None
    system_attrs: dict[str, Any] = field(default_factory=dict)
    pruned: bool = False


class Executor(ABC):
    """Runs trials on `n_workers` workers, at most one trial per worker at a time.

    `start` loads the objective on a worker before any trial exists, so an objective that
    cannot travel is refused up front. `submit` returns a ticket; `wait` returns the tickets
    that finished (as they finish, no barrier). A worker that dies yields an Outcome with the
    reason as `error` and is replaced. `cancel` stops every running trial at once (Ctrl-C).
    """

    name: str = ""
    report_host: str = "127.0.0.1"  # where the driver listens for its workers' reports

    @abstractmethod
    def start(self, target: TrialObjective, n_workers: int) -> None:
        """Get workers ready to run `target`; raise TypeError if it cannot be sent to them."""

    @abstractmethod
    def submit(
        self, params: dict[str, Any], system_attrs: dict[str, Any], reporter: Any = None
    ) -> Hashable:
        """Start one trial on a free worker; returns a ticket for `wait`. `reporter` (picklable)
        becomes the trial's current reporter there (`metatune.report_intermediate`)."""

    @abstractmethod
    def wait(self, timeout: float | None) -> list[tuple[Hashable, Outcome]]:
        """The trials that finished, waiting up to `timeout` seconds for the first one."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop every running trial now; their tickets are never returned by `wait`."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_objective(target: TrialObjective) -> str:
    """The user's name for an objective: a wrapped function's qualified name, else the repr."""
    fn = getattr(target, "fn", target)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", None)
    if name:
        return f"{module}.{name}" if module and module != "builtins" else name
    return repr(fn)
