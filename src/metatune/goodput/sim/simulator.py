"""The discrete-time cluster simulator.

Every `interval` seconds the allocator decides each unfinished job's replicas and plan; the
jobs then train for the interval: a job whose replica count changed first loses
`restart_penalty` seconds (checkpoint, restart, data loader warm-up; its first start too), then
makes M0-equivalent progress at its type's rate (gain of the plan's total batch at the current
noise scale / the plan's step time), re-evaluated `substeps` times in the interval as the noise
scale moves. A job finishes when its progress reaches its work, possibly inside an interval;
GPUs it frees and jobs that arrive meanwhile wait for the next round, as in Pollux's simulator.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metatune.goodput.efficiency import gain
from metatune.goodput.sim.allocators.base import Allocation, Allocator, JobView, make_allocator
from metatune.goodput.sim.cluster import Cluster
from metatune.goodput.sim.job_types import JobType, load_job_types
from metatune.goodput.sim.workload import JobSpec

__all__ = ["JobResult", "SimResult", "simulate"]


@dataclass(frozen=True)
class JobResult:
    """One job's outcome: times in seconds from the workload's start."""

    id: int
    job_type: str
    arrival: float
    start: float
    finish: float
    restarts: int
    gpu_seconds: float

    @property
    def jct(self) -> float:
        """Job completion time: finish - arrival."""
        return self.finish - self.arrival


@dataclass(frozen=True)
class SimResult:
    allocator: str
    jobs: list[JobResult]
    rounds: int
    peak_gpus: int  # most GPUs allocated in any round
    gpu_seconds: float = field(default=0.0)

    @property
    def average_jct(self) -> float:
        return float(np.mean([j.jct for j in self.jobs]))

    @property
    def median_jct(self) -> float:
        return float(np.median([j.jct for j in self.jobs]))

    @property
    def makespan(self) -> float:
        """From the first arrival to the last completion."""
        return max(j.finish for j in self.jobs) - min(j.arrival for j in self.jobs)


@dataclass
class _State:
    spec: JobSpec
    jt: JobType
    progress: float = 0.0
    attained: float = 0.0
    replicas: int = 0
    plan: Any = None
    penalty_left: float = 0.0
    start: float = math.nan
    finish: float = math.nan
    restarts: int = 0

    def view(self) -> JobView:
        s = self.spec
        return JobView(
            id=s.id,
            job_type=self.jt,
            arrival=s.arrival,
            requested_replicas=s.replicas,
            requested_batch=s.batch,
            replicas=self.replicas,
            plan=self.plan,
            progress=self.progress,
            work=s.work,
            attained=self.attained,
        )


def _check_inputs(
    workload: Sequence[JobSpec],
    cluster: Cluster,
    job_types: Mapping[str, JobType],
    interval: float,
    restart_penalty: float,
    substeps: int,
) -> None:
    if not (math.isfinite(interval) and interval > 0):
        raise ValueError(f"interval must be positive seconds, got {interval!r}")
    if not (math.isfinite(restart_penalty) and restart_penalty >= 0):
        raise ValueError(f"restart_penalty must be >= 0 seconds, got {restart_penalty!r}")
    if not (isinstance(substeps, int) and substeps >= 1):
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    if not workload:
        raise ValueError("workload is empty")
    ids = [j.id for j in workload]
    if len(set(ids)) != len(ids):
        raise ValueError("workload has repeated job ids")
    for j in workload:
        if j.job_type not in job_types:
            raise ValueError(
                f"workload job {j.id} has unknown job_type {j.job_type!r}; known: {sorted(job_types)}"
            )
        if j.replicas > cluster.gpus:
            raise ValueError(
                f"workload job {j.id} requests {j.replicas} replicas; the cluster has "
                f"{cluster.gpus} GPUs"
            )
        cluster.check_replicas(j.replicas, f"workload job {j.id}'s replicas")
        if not (j.work > 0 and math.isfinite(j.work)):
            raise ValueError(f"workload job {j.id} has work {j.work!r}; it must be positive")
        if not (j.arrival >= 0 and math.isfinite(j.arrival)):
            raise ValueError(f"workload job {j.id} has arrival {j.arrival!r}; it must be >= 0")
        if j.batch < 1:
            raise ValueError(f"workload job {j.id} has batch {j.batch!r}; it must be >= 1")


def _make(
    allocator: str | Allocator, options: Mapping[str, Any] | None, penalty: float
) -> Allocator:
    if isinstance(allocator, Allocator):
        if options:
            raise ValueError("allocator_options apply to an allocator given by name only")
        return allocator
    from metatune.goodput.sim.allocators.base import ALLOCATORS

    opts = dict(options or {})
    cls = ALLOCATORS.get(allocator)
    # An allocator that weighs restarts is told the simulator's penalty unless set.
    if "restart_penalty" in inspect.signature(cls.__init__).parameters:
        opts.setdefault("restart_penalty", penalty)
    return make_allocator(allocator, opts)


def _check_answer(
    answer: Mapping[int, Allocation], active: set[int], cluster: Cluster
) -> dict[int, int]:
    replicas = {}
    for job, a in answer.items():
        if job not in active:
            raise ValueError(f"the allocator allocated job {job}, which is not waiting or running")
        if a.replicas == 0:
            continue
        cluster.check_replicas(a.replicas, f"the allocator's replicas for job {job}")
        if a.plan is None or a.plan.replicas != a.replicas:
            raise ValueError(f"the allocator's plan for job {job} does not match its replicas")
        replicas[job] = a.replicas
    cluster.place(replicas)  # raises if the counts exceed the cluster or do not pack
    return replicas


def _advance(st: _State, t: float, interval: float, substeps: int, gpn: int) -> None:
    """Train `st` for one interval from `t` (its plan fixed, its rate re-evaluated)."""
    pen = min(st.penalty_left, interval)
    st.penalty_left -= pen
    elapsed = pen
    step_time = st.jt.step_time(st.plan, gpn)
    h = (interval - pen) / substeps
    for _ in range(substeps if h > 0 else 0):
        phi = st.jt.phi(st.progress / st.spec.work)
        rate = float(gain(phi, st.jt.base_batch, st.plan.total)) / step_time
        need = st.spec.work - st.progress
        if rate * h >= need:
            elapsed += need / rate
            st.progress = st.spec.work
            st.finish = t + elapsed
            break
        st.progress += rate * h
        elapsed += h
    st.attained += st.replicas * elapsed


def simulate(
    workload: Sequence[JobSpec],
    allocator: str | Allocator = "goodput",
    *,
    cluster: Cluster | None = None,
    job_types: Mapping[str, JobType] | None = None,
    allocator_options: Mapping[str, Any] | None = None,
    interval: float = 60.0,
    restart_penalty: float = 30.0,
    substeps: int = 4,
    max_time: float = 1e8,
) -> SimResult:
    """Run `workload` on `cluster` (default 16 nodes x 4 GPUs) under `allocator` (a name in
    ALLOCATORS, with `allocator_options`, or an instance) until every job finished.

    Everything is checked before the first round: the allocator's name and options, the
    intervals, and every job (known type, replicas the cluster can hold, positive work).
    """
    cluster = cluster or Cluster()
    job_types = job_types if job_types is not None else load_job_types()
    _check_inputs(workload, cluster, job_types, interval, restart_penalty, substeps)
    alloc = _make(allocator, allocator_options, restart_penalty)
    states = [
        _State(spec=j, jt=job_types[j.job_type])
        for j in sorted(workload, key=lambda j: (j.arrival, j.id))
    ]
    unfinished = len(states)
    t, rounds, peak = 0.0, 0, 0
    gpn = cluster.gpus_per_node
    while unfinished:
        if t > max_time:
            raise RuntimeError(
                f"the simulation passed max_time={max_time} s with {unfinished} jobs left"
            )
        active = [s for s in states if s.spec.arrival <= t and math.isnan(s.finish)]
        if not active:  # idle: jump to the round after the next arrival
            nxt = min(s.spec.arrival for s in states if math.isnan(s.finish))
            t = math.ceil(nxt / interval) * interval
            if t < nxt:
                t += interval
            continue
        answer = alloc.allocate([s.view() for s in active], cluster, t)
        granted = _check_answer(answer, {s.spec.id for s in active}, cluster)
        peak = max(peak, sum(granted.values()))
        rounds += 1
        for s in active:
            k = granted.get(s.spec.id, 0)
            if k != s.replicas:
                if s.replicas > 0:  # resized or preempted: it restarts when it runs next
                    s.restarts += 1
                s.penalty_left = restart_penalty if k > 0 else 0.0
                if k > 0 and math.isnan(s.start):
                    s.start = t
            s.replicas = k
            s.plan = answer[s.spec.id].plan if k > 0 else None
            if k > 0:
                _advance(s, t, interval, substeps, gpn)
                if not math.isnan(s.finish):
                    unfinished -= 1
                    s.replicas = 0
        t += interval
    jobs = [
        JobResult(
            id=s.spec.id,
            job_type=s.spec.job_type,
            arrival=s.spec.arrival,
            start=s.start,
            finish=s.finish,
            restarts=s.restarts,
            gpu_seconds=s.attained,
        )
        for s in sorted(states, key=lambda s: s.spec.id)
    ]
    return SimResult(
        allocator=alloc.name,
        jobs=jobs,
        rounds=rounds,
        peak_gpus=peak,
        gpu_seconds=float(sum(j.gpu_seconds for j in jobs)),
    )
