"""`goodput`: Pollux-like co-adaptive allocation (Qiao et al., OSDI 2021).

Each round, for every job and every replica count it could get, the job type's goodput model
picks the best (micro-batch, accumulation) plan and learning-rate factor for that count at the
job's current point of training (metatune.goodput's choice code); the job's speedup is that
plan's goodput over its best one-replica goodput, discounted by the share of a look-ahead
`horizon` a restart would cost when the count changes. Replica counts then maximize the power
mean (exponent `p`, -1 as in Pollux: the harmonic mean, which favours fairness) of the speedups
within the cluster's GPUs: one binary per (job, count) option, and since each option's term
S^p is a constant the problem is linear, solved by SciPy's MILP (HiGHS).

Every job gets at least one replica while the jobs fit one each; when more jobs wait than there
are GPUs, the oldest run (one replica each) and the others wait, which is what the power mean
with p < 0 prefers too (a job without GPUs has speedup 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from metatune.goodput.choice import BatchPlan
from metatune.goodput.sim.allocators.base import Allocation, Allocator, JobView, PlanCache
from metatune.goodput.sim.cluster import Cluster

__all__ = ["GoodputAllocator"]


class GoodputAllocator(Allocator):
    """Args:
    p: exponent of the power mean of speedups, in [-10, 1] (0: geometric mean).
    restart_penalty: seconds a job loses when its replica count changes (the simulator's).
    horizon: seconds over which that loss is spread when weighing a change (> restart_penalty).
    max_replicas: most replicas one job may get (default: the whole cluster).
    resolution: the point of training is rounded to 1 / resolution when choosing plans
        (cached, so a round costs little).
    time_limit: seconds the MILP solver may take per round.
    """

    def __init__(
        self,
        p: float = -1.0,
        restart_penalty: float = 30.0,
        horizon: float = 600.0,
        max_replicas: int | None = None,
        resolution: int = 200,
        time_limit: float = 10.0,
    ) -> None:
        if not (math.isfinite(p) and -10.0 <= p <= 1.0):
            raise ValueError(f"p must be in [-10, 1], got {p!r}")
        if restart_penalty < 0:
            raise ValueError(f"restart_penalty must be >= 0, got {restart_penalty!r}")
        if not horizon > restart_penalty:
            raise ValueError(
                f"horizon ({horizon!r}) must exceed restart_penalty ({restart_penalty!r})"
            )
        if max_replicas is not None and max_replicas < 1:
            raise ValueError(f"max_replicas must be >= 1 or None, got {max_replicas!r}")
        self.p = float(p)
        self.restart_penalty = float(restart_penalty)
        self.horizon = float(horizon)
        self.max_replicas = max_replicas
        self.time_limit = float(time_limit)
        self._plans = PlanCache(resolution)

    # -- the per-job model ----------------------------------------------------------------
    def _best(self, job: JobView, replicas: int, cluster: Cluster) -> tuple[BatchPlan, float]:
        return self._plans.best(job, replicas, cluster)

    def speedups(self, job: JobView, cluster: Cluster) -> dict[int, tuple[float, BatchPlan]]:
        """Replica count -> (speedup over one replica, restart discount included; its plan)."""
        base = self._best(job, 1, cluster)[1]
        keep = 1.0 - self.restart_penalty / self.horizon
        out = {}
        for k in cluster.sizes(self.max_replicas):
            plan, value = self._best(job, k, cluster)
            s = value / base
            if job.replicas > 0 and k != job.replicas:
                s *= keep
            out[k] = (s, plan)
        return out

    def cost(self, speedup: float) -> float:
        """The option's term in the minimised objective: S^p for p < 0, -S^p for p > 0,
        -log S for p = 0 (each a monotone transform of the power mean)."""
        if self.p == 0:
            return -math.log(speedup)
        return speedup**self.p if self.p < 0 else -(speedup**self.p)

    # -- the round --------------------------------------------------------------------------
    def allocate(
        self, jobs: Sequence[JobView], cluster: Cluster, now: float
    ) -> dict[int, Allocation]:
        if not jobs:
            return {}
        order = sorted(jobs, key=lambda j: (j.arrival, j.id))
        if len(order) >= cluster.gpus:  # one replica each for the oldest, the rest wait
            out = {}
            for j in order[: cluster.gpus]:
                plan = self._best(j, 1, cluster)[0]
                out[j.id] = Allocation(1, plan, j.job_type.lr_factor(plan, j.fraction))
            return out
        options = [self.speedups(j, cluster) for j in order]
        chosen = self.solve(options, cluster.gpus)
        out = {}
        for j, opts, k in zip(order, options, chosen, strict=True):
            plan = opts[k][1]
            out[j.id] = Allocation(k, plan, j.job_type.lr_factor(plan, j.fraction))
        return out

    def solve(self, options: Sequence[dict[int, tuple[float, BatchPlan]]], gpus: int) -> list[int]:
        """One replica count per job minimising the sum of `cost(speedup)` within `gpus`."""
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import coo_matrix

        counts, costs, rows = [], [], []
        for i, opts in enumerate(options):
            for k, (s, _) in opts.items():
                counts.append(k)
                costs.append(self.cost(s))
                rows.append(i)
        n = len(counts)
        cols = np.arange(n)
        one_each = coo_matrix((np.ones(n), (rows, cols)), shape=(len(options), n))
        capacity = np.asarray(counts, dtype=float)[None, :]
        res = milp(
            c=np.asarray(costs),
            constraints=[
                LinearConstraint(one_each, 1.0, 1.0),
                LinearConstraint(capacity, -np.inf, float(gpus)),
            ],
            integrality=np.ones(n),
            bounds=Bounds(0.0, 1.0),
            options={"time_limit": self.time_limit, "mip_rel_gap": 1e-6},
        )
        if res.x is None:
            raise RuntimeError(f"the allocation MILP found no solution: {res.message}")
        picked = res.x > 0.5
        out = [0] * len(options)
        for i, k, on in zip(rows, counts, picked, strict=True):
            if on:
                out[i] = k
        return out
