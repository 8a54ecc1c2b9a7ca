"""Goodput-optimized training: adaptive batch size and learning rate from the gradient noise
scale and a fitted step-time model (after Pollux, OSDI 2021).

`GoodputController` wraps a model and optimizer in a plain torch loop (one process or
torchrun); `AdaptiveDataLoader` yields the micro-batches of the plan it chooses.
"""

from metatune.goodput._gradients import adam_preconditioner
from metatune.goodput.choice import BatchPlan, candidate_plans, choose_plan, plan_for_total
from metatune.goodput.controller import GoodputController
from metatune.goodput.efficiency import efficiency, gain
from metatune.goodput.loader import AdaptiveDataLoader, MicroBatchInfo
from metatune.goodput.lr_rules import LR_RULES, ScaleContext
from metatune.goodput.noise import (
    NoiseEstimate,
    NoiseTracker,
    from_consecutive,
    from_means,
    from_pieces,
)
from metatune.goodput.throughput import StepTimeParams, ThroughputModel, predict_step_time

__all__ = [
    "LR_RULES",
    "AdaptiveDataLoader",
    "BatchPlan",
    "GoodputController",
    "MicroBatchInfo",
    "NoiseEstimate",
    "NoiseTracker",
    "ScaleContext",
    "StepTimeParams",
    "ThroughputModel",
    "adam_preconditioner",
    "candidate_plans",
    "choose_plan",
    "efficiency",
    "from_consecutive",
    "from_means",
    "from_pieces",
    "gain",
    "plan_for_total",
    "predict_step_time",
]
