"""Learning-rate scaling rules: the factor applied to the learning rate written for M0 when the
controller trains at a larger total batch.

A rule is a callable taking a `ScaleContext` and returning the factor; register your own with
``@LR_RULES.register("name")``. Built-ins:

- ``adascale``: the gain (AdaScale, Johnson et al. 2020), between 1 and S; for SGD.
- ``adam-sqrt``: the square root of the gain; the default for Adam-type optimizers, whose
  normalised steps make a linear rule overshoot.
- ``sqrt``: sqrt(S) (Krizhevsky 2014; Hoffer et al. 2017).
- ``linear``: S (Goyal et al. 2017).
- ``legw``: sqrt(S) with a linear warm-up whose length, in M0-equivalent steps of data,
  grows linearly with S (You et al. 2019, "linear-epoch gradual warm-up").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from metatune._registry import Registry

__all__ = ["LR_RULES", "ScaleContext", "default_rule"]


@dataclass(frozen=True)
class ScaleContext:
    """What a rule may look at.

    scale: S = M / M0. gain: M0-equivalent steps one step at M makes (from the noise scale).
    progress: M0-equivalent steps made so far (sum of gains). examples: training examples seen
    so far, divided by M0 (what an epoch-based warm-up counts).
    """

    scale: float
    gain: float
    progress: float
    examples: float


def _check_rule(obj: object) -> None:
    if not callable(obj):
        raise TypeError(f"a learning-rate rule must be callable, got {obj!r}")


LR_RULES: Registry[Callable[[ScaleContext], float]] = Registry(
    "learning-rate rule", check=_check_rule
)


@LR_RULES.register("adascale")
def adascale(ctx: ScaleContext) -> float:
    return ctx.gain


@LR_RULES.register("adam-sqrt")
def adam_sqrt(ctx: ScaleContext) -> float:
    return math.sqrt(ctx.gain)


@LR_RULES.register("sqrt")
def sqrt_rule(ctx: ScaleContext) -> float:
    return math.sqrt(ctx.scale)


@LR_RULES.register("linear")
def linear(ctx: ScaleContext) -> float:
    return ctx.scale


LEGW_WARMUP = 100.0  # M0-equivalent steps of data at S = 1


@LR_RULES.register("legw")
def legw(ctx: ScaleContext) -> float:
    warm = LEGW_WARMUP * ctx.scale
    return math.sqrt(ctx.scale) * min(1.0, (ctx.examples + 1.0) / warm)


def default_rule(adam_type: bool) -> str:
    """``adam-sqrt`` for Adam-type optimizers, ``adascale`` otherwise."""
    return "adam-sqrt" if adam_type else "adascale"
