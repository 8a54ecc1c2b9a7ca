"""`fixed`: first come, first served; each job runs on its requested replicas and batch until
it finishes (no preemption). The queue is strict: a job that does not fit waits, and so do all
jobs behind it. With ``batch="goodput"`` a job keeps its replicas but trains with the
goodput-best batch for them, re-chosen every round (a single-job adaptive controller such as
AdaptDL's on a scheduler that knows nothing of goodput)."""

from __future__ import annotations

from collections.abc import Sequence

from metatune.goodput.sim.allocators.base import (
    Allocation,
    Allocator,
    JobView,
    PlanCache,
    check_batch_mode,
)
from metatune.goodput.sim.cluster import Cluster

__all__ = ["FixedAllocator"]


class FixedAllocator(Allocator):
    """Args:
    batch: "requested" (the job's own batch) or "goodput" (the best for its replicas).
    """

    def __init__(self, batch: str = "requested") -> None:
        self.batch = check_batch_mode(batch)
        self._plans = PlanCache()

    def allocate(
        self, jobs: Sequence[JobView], cluster: Cluster, now: float
    ) -> dict[int, Allocation]:
        out: dict[int, Allocation] = {}
        free = cluster.gpus
        for j in jobs:
            if j.replicas > 0:  # running jobs keep their replicas
                out[j.id] = Allocation(
                    j.replicas, self._plans.plan(j, j.replicas, cluster, self.batch)
                )
                free -= j.replicas
        for j in sorted((j for j in jobs if j.replicas == 0), key=lambda j: (j.arrival, j.id)):
            if j.requested_replicas > free:
                break
            plan = self._plans.plan(j, j.requested_replicas, cluster, self.batch)
            out[j.id] = Allocation(j.requested_replicas, plan)
            free -= j.requested_replicas
        return out
