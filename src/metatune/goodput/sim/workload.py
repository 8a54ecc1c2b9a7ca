"""Workloads for the cluster simulator: Poisson arrivals at a given load over a job mix.

Each job gets a type (from the mix), a requested replica count, a requested total batch (the
type's M0 per requested replica, as a user scaling a one-GPU recipe would set it, capped at the
type's maximum) and a size: the wall time it would run on its requested configuration, drawn
log-uniformly, turned into the M0-equivalent steps it must make (its work) through the type's
goodput model. The load is the offered GPU demand at the requested configurations over the
cluster's capacity: at load 1 the jobs ask, on average, for exactly the cluster's GPU-seconds.
Every random choice flows from the seed (numpy Generator).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from metatune.goodput.sim.cluster import Cluster
from metatune.goodput.sim.job_types import JobType

__all__ = ["JobSpec", "generate_workload", "requested_duration"]


@dataclass(frozen=True)
class JobSpec:
    """One submitted job. `work`: M0-equivalent steps it must make to finish."""

    id: int
    arrival: float
    job_type: str
    replicas: int
    batch: int
    work: float


def requested_duration(
    jt: JobType, replicas: int, batch: int, work: float, gpus_per_node: int
) -> float:
    """Seconds the job runs on its requested configuration (without restarts): the integral
    of 1 / rate over its progress, the rate changing with the noise scale."""
    return work * _mean_inverse_rate(jt, replicas, batch, gpus_per_node)


def _mean_inverse_rate(jt: JobType, replicas: int, batch: int, gpus_per_node: int) -> float:
    plan = jt.fixed_plan(replicas, batch)
    grid = (np.arange(200) + 0.5) / 200
    return float(np.mean([1.0 / jt.rate(plan, f, gpus_per_node) for f in grid]))


def generate_workload(
    job_types: Mapping[str, JobType],
    *,
    load: float,
    num_jobs: int = 160,
    seed: int = 0,
    cluster: Cluster | None = None,
    mix: Mapping[str, float] | None = None,
    replica_choices: Sequence[int] = (1, 2, 4, 8, 16),
    replica_probs: Sequence[float] = (0.4, 0.25, 0.2, 0.1, 0.05),
    duration_range: tuple[float, float] = (300.0, 18000.0),
) -> list[JobSpec]:
    """`num_jobs` jobs arriving as a Poisson process whose rate gives `load`.

    Args:
        job_types: the types by name (e.g. `load_job_types()`).
        load: offered GPU-seconds (at the requested configurations) per GPU-second of the
            cluster; > 0.
        mix: relative frequency of each type; default uniform over `job_types`.
        replica_choices, replica_probs: requested replica counts and their probabilities.
        duration_range: a job's run time on its requested configuration is log-uniform here.
    """
    cluster = cluster or Cluster()
    if not (
        isinstance(load, numbers.Real)
        and not isinstance(load, bool)
        and math.isfinite(load)
        and load > 0
    ):
        raise ValueError(f"load must be a positive finite number, got {load!r}")
    if not (isinstance(num_jobs, int) and num_jobs >= 1):
        raise ValueError(f"num_jobs must be a positive integer, got {num_jobs!r}")
    if not job_types:
        raise ValueError("job_types is empty")
    mix = dict(mix) if mix is not None else {name: 1.0 for name in job_types}
    unknown = sorted(set(mix) - set(job_types))
    if unknown:
        raise ValueError(f"mix names unknown job types {unknown}; known: {sorted(job_types)}")
    if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"mix weights must be >= 0 with a positive sum, got {mix}")
    if len(replica_choices) != len(replica_probs) or not replica_choices:
        raise ValueError("replica_choices and replica_probs must have the same, nonzero length")
    for k in replica_choices:
        cluster.check_replicas(k, "replica_choices entries")
    probs = np.asarray(replica_probs, dtype=float)
    if np.any(probs < 0) or not math.isclose(probs.sum(), 1.0, rel_tol=1e-6):
        raise ValueError(f"replica_probs must be >= 0 and sum to 1, got {list(replica_probs)}")
    lo, hi = duration_range
    if not 0 < lo <= hi:
        raise ValueError(f"duration_range must be 0 < low <= high, got {duration_range!r}")

    mean_duration = (hi - lo) / math.log(hi / lo) if hi > lo else lo
    mean_gpus = float(np.dot(probs, replica_choices))
    rate = load * cluster.gpus / (mean_duration * mean_gpus)  # arrivals per second

    rng = np.random.default_rng(seed)
    names = list(mix)
    weights = np.array([mix[n] for n in names], dtype=float)
    weights /= weights.sum()
    arrivals = np.cumsum(rng.exponential(1.0 / rate, num_jobs))
    types = rng.choice(len(names), size=num_jobs, p=weights)
    replicas = rng.choice(np.asarray(replica_choices), size=num_jobs, p=probs)
    durations = np.exp(rng.uniform(math.log(lo), math.log(hi), num_jobs))
    cache: dict[tuple[str, int], float] = {}
    jobs = []
    for i in range(num_jobs):
        jt = job_types[names[int(types[i])]]
        k = int(replicas[i])
        batch = min(jt.base_batch * k, jt.max_batch)
        key = (jt.name, k)
        if key not in cache:
            cache[key] = _mean_inverse_rate(jt, k, batch, cluster.gpus_per_node)
        jobs.append(
            JobSpec(
                id=i,
                arrival=float(arrivals[i]),
                job_type=jt.name,
                replicas=k,
                batch=batch,
                work=float(durations[i] / cache[key]),
            )
        )
    return jobs
