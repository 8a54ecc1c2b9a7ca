"""`fixed`: first come, first served; each job runs on its requested replicas and batch until
it finishes (no preemption). The queue is strict: a job that does not fit waits, and so do all
jobs behind it."""

from __future__ import annotations

from collections.abc import Sequence

from metatune.goodput.sim.allocators.base import Allocation, Allocator, JobView
from metatune.goodput.sim.cluster import Cluster

__all__ = ["FixedAllocator"]


class FixedAllocator(Allocator):
    def allocate(
        self, jobs: Sequence[JobView], cluster: Cluster, now: float
    ) -> dict[int, Allocation]:
        out: dict[int, Allocation] = {}
        free = cluster.gpus
        for j in jobs:
            if j.replicas > 0:  # running jobs keep what they have
                out[j.id] = Allocation(j.replicas, j.plan)
                free -= j.replicas
        for j in sorted((j for j in jobs if j.replicas == 0), key=lambda j: (j.arrival, j.id)):
            if j.requested_replicas > free:
                break
            plan = j.job_type.fixed_plan(j.requested_replicas, j.requested_batch)
            out[j.id] = Allocation(j.requested_replicas, plan)
            free -= j.requested_replicas
        return out
