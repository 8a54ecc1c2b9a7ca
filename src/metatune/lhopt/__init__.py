"""Learned hyperparameter control (LHOPT-style): features, actions and, later, the policy.

Built so far: unitless run features (`features`) and bounded relative actions with gradient
clipping and checkpoints (`actions`). The recurrent policy, PPO meta-training, the shipped
policy and the `Controller` are not built yet (see the open issue).
"""

from metatune.lhopt.actions import (
    DEFAULT_KNOBS,
    Checkpoints,
    GradientClipper,
    HyperparamActions,
    Knob,
)
from metatune.lhopt.features import EMACDF, GradientStats, LossFeatures, RunFeatures

__all__ = [
    "DEFAULT_KNOBS",
    "EMACDF",
    "Checkpoints",
    "GradientClipper",
    "GradientStats",
    "HyperparamActions",
    "Knob",
    "LossFeatures",
    "RunFeatures",
]
