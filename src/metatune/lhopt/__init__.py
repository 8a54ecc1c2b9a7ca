"""Learned hyperparameter control (LHOPT-style): features, actions, policy and controller.

Built so far: unitless run features (`features`), bounded relative actions with gradient
clipping and checkpoints (`actions`), the recurrent actor-critic (`policy`) and the drop-in
`Controller`. Not built yet: PPO meta-training over a task distribution and the shipped
pretrained policy, so `Controller(..., policy="default")` raises until one is shipped.
"""

from metatune.lhopt.actions import (
    DEFAULT_KNOBS,
    Checkpoints,
    GradientClipper,
    HyperparamActions,
    Knob,
)
from metatune.lhopt.controller import Controller
from metatune.lhopt.features import EMACDF, GradientStats, LossFeatures, RunFeatures
from metatune.lhopt.policy import Policy, PolicyConfig

__all__ = [
    "DEFAULT_KNOBS",
    "EMACDF",
    "Checkpoints",
    "Controller",
    "GradientClipper",
    "GradientStats",
    "HyperparamActions",
    "Knob",
    "LossFeatures",
    "Policy",
    "PolicyConfig",
    "RunFeatures",
]
