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
    "BATCH_MODES",
    "Allocation",
    "Allocator",
    "JobView",
    "PlanCache",
    "check_batch_mode",
    "make_allocator",
    "register_allocator",
]

BATCH_MODES = ("requested", "goodput")
"""How `fixed` and `las` pick a job's batch: the user's, or the goodput-best for its replicas."""


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


class PlanCache:
    """Goodput-best plans by (job type, replicas, point of training rounded to 1 / resolution):
    the choice over ~50 candidate batches is made once per key, not once per job and round."""

    def __init__(self, resolution: int = 200) -> None:
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution!r}")
        self.resolution = int(resolution)
        self._cache: dict[tuple[str, int, int, int], tuple[BatchPlan, float]] = {}

    def best(self, job: JobView, replicas: int, cluster: Cluster) -> tuple[BatchPlan, float]:
        """The best plan for `replicas` and its rate (M0-equivalent steps per second)."""
        bucket = round(job.fraction * self.resolution)
        key = (job.job_type.name, replicas, bucket, cluster.gpus_per_node)
        if key not in self._cache:
            f = bucket / self.resolution
            jt = job.job_type
            plan = jt.best_plan(replicas, f, cluster.gpus_per_node)
            self._cache[key] = (plan, jt.rate(plan, f, cluster.gpus_per_node))
        return self._cache[key]

    def plan(self, job: JobView, replicas: int, cluster: Cluster, mode: str) -> BatchPlan:
        """The job's plan on `replicas`: its requested batch, or (mode "goodput") the best."""
        if mode == "goodput":
            return self.best(job, replicas, cluster)[0]
        return job.job_type.fixed_plan(replicas, job.requested_batch)


def check_batch_mode(batch: str) -> str:
    if batch not in BATCH_MODES:
        raise ValueError(f"batch must be one of {list(BATCH_MODES)}, got {batch!r}")
    return batch


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
