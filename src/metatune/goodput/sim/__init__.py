"""A cluster simulator for goodput-aware scheduling (after Pollux's, OSDI 2021).

Job types carry goodput models measured on real CPU training (`load_job_types`); a workload
is Poisson arrivals over a job mix (`generate_workload`); `simulate` runs it on a `Cluster`
under an allocator from `ALLOCATORS` ("fixed", "las", "goodput") and reports each job's
completion time, the average JCT and the makespan.
"""

from metatune.goodput.sim.allocators import (
    ALLOCATORS,
    Allocation,
    Allocator,
    JobView,
    make_allocator,
    register_allocator,
)
from metatune.goodput.sim.cluster import Cluster
from metatune.goodput.sim.job_types import JobType, load_job_types, nodes_for
from metatune.goodput.sim.simulator import JobResult, SimResult, simulate
from metatune.goodput.sim.workload import JobSpec, generate_workload, requested_duration

__all__ = [
    "ALLOCATORS",
    "Allocation",
    "Allocator",
    "Cluster",
    "JobResult",
    "JobSpec",
    "JobType",
    "JobView",
    "SimResult",
    "generate_workload",
    "load_job_types",
    "make_allocator",
    "nodes_for",
    "register_allocator",
    "requested_duration",
    "simulate",
]
