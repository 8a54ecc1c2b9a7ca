"""Learned hyperparameter control (LHOPT-style): a small recurrent policy, meta-trained with PPO
over a distribution of training tasks, that adjusts a torch Adam/AdamW optimizer while it trains.

`features` builds the policy's unitless observations, `actions` applies its bounded relative
moves (learning rate, betas, eps, weight decay, a gradient-clipping quantile), `policy` is the
actor-critic, `controller` the drop-in `Controller` (with a shipped pretrained policy, and a
divergence guard outside the policy), `tasks` the task families and `training` the PPO loop
behind `metatune lhopt train`.
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
