"""`las`: a Tiresias-like discretized least-attained-service scheduler (Gu et al., NSDI 2019).

Jobs are ranked by the queue their attained service (GPU-seconds held so far) falls in, then by
arrival within a queue; each round, jobs are started in that order on their requested replicas
and batch while they fit (a job that does not fit is skipped, so smaller ones behind it may
run), and running jobs that fall out of the selection are preempted. Tiresias' promotion of
long-waiting jobs is not modelled. With ``batch="goodput"`` jobs train with the goodput-best
batch for their replicas, as under `fixed`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from metatune.goodput.sim.allocators.base import (
    Allocation,
    Allocator,
    JobView,
    PlanCache,
    check_batch_mode,
)
from metatune.goodput.sim.cluster import Cluster

__all__ = ["LASAllocator"]


class LASAllocator(Allocator):
    """Args:
    thresholds: attained GPU-seconds at which a job moves to the next, lower queue
        (increasing); the default is 1 and 8 GPU-hours.
    batch: "requested" (the job's own batch) or "goodput" (the best for its replicas).
    """

    def __init__(
        self, thresholds: Sequence[float] = (3600.0, 28800.0), batch: str = "requested"
    ) -> None:
        self.batch = check_batch_mode(batch)
        self._plans = PlanCache()
        th = [float(t) for t in thresholds]
        if any(t <= 0 for t in th) or any(b <= a for a, b in zip(th, th[1:], strict=False)):
            raise ValueError(f"thresholds must be positive and increasing, got {list(thresholds)}")
        self.thresholds = th

    def queue(self, attained: float) -> int:
        """The queue (0 = highest priority) of a job with `attained` GPU-seconds."""
        return bisect.bisect_right(self.thresholds, attained)

    def allocate(
        self, jobs: Sequence[JobView], cluster: Cluster, now: float
    ) -> dict[int, Allocation]:
        out: dict[int, Allocation] = {}
        free = cluster.gpus
        for j in sorted(jobs, key=lambda j: (self.queue(j.attained), j.arrival, j.id)):
            if j.requested_replicas > free:
                continue
            plan = self._plans.plan(j, j.requested_replicas, cluster, self.batch)
            out[j.id] = Allocation(j.requested_replicas, plan)
            free -= j.requested_replicas
        return out
