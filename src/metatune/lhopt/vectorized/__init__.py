"""Vectorized episodes: many small tasks of one architecture trained in lockstep as one batched
computation (`torch.func.functional_call` + `vmap` over stacked parameters), each replica with its
own data, initial weights, minibatches and hyperparameters, and, under a control policy, its own
`Controller`-equivalent features, moves and checkpoints.

`group` holds the replicas (`TaskGroup`), `optim` the stacked Adam/AdamW, clipper and checkpoints,
`stats` the batched gradient features, `engine` the lockstep loop (`run_lockstep`).
"""

from metatune.lhopt.vectorized.engine import SCHEDULES, LockstepResult, ReplicaStart, run_lockstep
from metatune.lhopt.vectorized.group import LOSSES, TaskGroup
from metatune.lhopt.vectorized.optim import (
    HParams,
    StackedAdamW,
    StackedCheckpoints,
    StackedClipper,
)
from metatune.lhopt.vectorized.stats import StackedGradientStats

__all__ = [
    "HParams",
    "LOSSES",
    "LockstepResult",
    "ReplicaStart",
    "SCHEDULES",
    "StackedAdamW",
    "StackedCheckpoints",
    "StackedClipper",
    "StackedGradientStats",
    "TaskGroup",
    "run_lockstep",
]
