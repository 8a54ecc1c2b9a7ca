"""The allocator protocol, what an allocator sees of a job, and the registry of allocators.

Every scheduling interval the simulator hands the allocator the jobs that have arrived and not
finished; the allocator returns each job's replica count and batch plan (0 replicas: the job
waits). Like the study's optimizers, allocators only decide: the simulator checks the answer
(capacity, allowed counts) and runs it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from metatune._registry import Registry, construct
from metatune.goodput.choice import BatchPlan
from metatune.goodput.sim.cluster import Cluster
from metatune.goodput.sim.job_types import JobType

__all__ = [
    "ALLOCATORS",
    "Allocation",
    "Allocator",
    "JobView",
    "make_allocator",
    "register_allocator",
]


@dataclass(frozen=True)
class JobView:
    """A job as the allocator sees it at one scheduling round.

    `replicas`/`plan`: what it holds now (0 / None while waiting). `progress` and `work` are in
    M0-equivalent steps; `attained`: GPU-seconds it has held so far.
    """

    id: int
    job_type: JobType
    arrival: float
    requested_replicas: int
    requested_batch: int
    replicas: int
    plan: BatchPlan | None
    progress: float
    work: float
    attained: float

    @property
    def fraction(self) -> float:
        """Share of its work done, in [0, 1]."""
        return min(self.progress / self.work, 1.0) if self.work > 0 else 1.0


@dataclass(frozen=True)
class Allocation:
    """Replicas for one job and the plan it trains with (None when it gets none)."""

    replicas: int
    plan: BatchPlan | None = None
    lr_factor: float = 1.0  # on the M0 learning rate, from the job type's rule


class Allocator(abc.ABC):
    """Base class: implement `allocate`. Register subclasses with `@register_allocator(name)`."""

    name: str = "custom"

    @abc.abstractmethod
    def allocate(
        self, jobs: Sequence[JobView], cluster: Cluster, now: float
    ) -> dict[int, Allocation]:
        """Job id -> allocation for every job in `jobs` (missing ids get nothing)."""


_A = TypeVar("_A", bound=type[Allocator])


def _check_allocator(obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Allocator)):
        raise TypeError(f"{obj!r} must subclass metatune.goodput.sim.Allocator")


def _stamp_name(name: str, cls: type[Allocator]) -> None:
    cls.name = name


ALLOCATORS: Registry[type[Allocator]] = Registry(
    "allocator", check=_check_allocator, on_register=_stamp_name
)
for _name, _target in {
    "fixed": "metatune.goodput.sim.allocators.fixed:FixedAllocator",
    "las": "metatune.goodput.sim.allocators.las:LASAllocator",
    "goodput": "metatune.goodput.sim.allocators.goodput:GoodputAllocator",
}.items():
    ALLOCATORS.register_lazy(_name, _target)


def register_allocator(name: str, *, overwrite: bool = False) -> Callable[[_A], _A]:
    """Class decorator that makes an allocator available by name to `simulate`."""
    return ALLOCATORS.register(name, overwrite=overwrite)


def make_allocator(name: str, options: dict[str, Any] | None = None) -> Allocator:
    """The registered allocator `name` built with `options` (unknown names and options raise,
    listing what is allowed)."""
    cls = ALLOCATORS.get(name)
    return construct(cls, dict(options or {}), f"allocator {name!r}")
