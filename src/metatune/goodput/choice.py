"""Choosing (micro-batch, accumulation steps): goodput = throughput x statistical efficiency over
geometrically spaced total batch sizes between M0 and the maximum, within the per-replica
memory bound, with a switching threshold against thrashing between near-equal sizes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from metatune.goodput.efficiency import efficiency
from metatune.goodput.throughput import ThroughputModel

__all__ = ["BatchPlan", "candidate_plans", "choose_plan", "plan_for_total"]


@dataclass(frozen=True)
class BatchPlan:
    """A configuration: micro-batch per replica, extra accumulation steps, replicas."""

    micro_batch: int
    accum_steps: int = 0
    replicas: int = 1

    @property
    def total(self) -> int:
        """Total batch M = K * m * (s + 1)."""
        return self.replicas * self.micro_batch * (self.accum_steps + 1)


def plan_for_total(total: int, max_micro_batch: int, replicas: int = 1) -> BatchPlan:
    """The fewest accumulation steps that keep m within `max_micro_batch`; m rounded down."""
    per_replica = max(total // replicas, 1)
    steps = max(math.ceil(per_replica / max_micro_batch), 1)
    micro = max(per_replica // steps, 1)
    return BatchPlan(micro_batch=micro, accum_steps=steps - 1, replicas=replicas)


def candidate_plans(
    base_batch: int,
    max_batch: int,
    max_micro_batch: int,
    replicas: int = 1,
    count: int = 50,
) -> list[BatchPlan]:
    """Plans for `count` geometric totals in [M0, max] (duplicates after rounding removed)."""
    return list(_candidates(int(base_batch), int(max_batch), int(max_micro_batch), replicas, count))


@functools.lru_cache(maxsize=64)
def _candidates(
    base_batch: int, max_batch: int, max_micro_batch: int, replicas: int, count: int
) -> tuple[BatchPlan, ...]:
    # The same few settings every re-plan: built once (a re-plan is then mostly numpy).
    totals = np.round(np.geomspace(base_batch, max_batch, count)).astype(int)
    # Also the totals that fill the memory bound exactly (1, 2, 4, ... full micro-batches per
    # replica), which the geometric grid rounds past.
    full = replicas * max_micro_batch * 2 ** np.arange(0, 32)
    totals = np.unique(np.concatenate([totals, full[(full >= base_batch) & (full <= max_batch)]]))
    seen: dict[int, BatchPlan] = {}
    for m in totals:
        plan = plan_for_total(int(m), max_micro_batch, replicas)
        if base_batch <= plan.total <= max_batch or plan.total == base_batch:
            seen.setdefault(plan.total, plan)
    return tuple(seen[k] for k in sorted(seen))


def goodput(
    plans: list[BatchPlan],
    model: ThroughputModel,
    noise_scale: float,
    base_batch: int,
    nodes: int = 1,
) -> np.ndarray:
    """Predicted M0-equivalent examples per second of each plan."""
    m = np.array([p.micro_batch for p in plans], dtype=float)
    s = np.array([p.accum_steps for p in plans], dtype=float)
    k = np.array([p.replicas for p in plans], dtype=float)
    total = np.array([p.total for p in plans], dtype=float)
    t = model.predict(m, s, k, nodes)
    return total / t * efficiency(noise_scale, base_batch, total)


def choose_plan(
    current: BatchPlan,
    model: ThroughputModel,
    noise_scale: float,
    base_batch: int,
    max_batch: int,
    max_micro_batch: int,
    *,
    nodes: int = 1,
    threshold: float = 0.05,
    count: int = 50,
) -> tuple[BatchPlan, float]:
    """The best candidate and its predicted speedup over `current`; `current` itself (speedup
    1) unless the best beats it by more than `threshold`."""
    plans = candidate_plans(base_batch, max_batch, max_micro_batch, current.replicas, count)
    if current not in plans:
        plans.append(current)
    values = goodput(plans, model, noise_scale, base_batch, nodes)
    best = int(np.argmax(values))
    here = values[plans.index(current)]
    speedup = float(values[best] / here) if here > 0 else float("inf")
    if plans[best] != current and speedup > 1.0 + threshold:
        return plans[best], speedup
    return current, 1.0
