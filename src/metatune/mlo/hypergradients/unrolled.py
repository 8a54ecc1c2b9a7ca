"""Iterative differentiation through the lower problem's last unrolled steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from metatune.mlo.hypergradients.sgd import recorded_step_vjp, replay, sgd_hyper, unroll_window
from metatune.mlo.protocol import ProblemLike
from metatune.mlo.tensors import grad

__all__ = ["OPTIONS", "unrolled"]

OPTIONS = {"lr": (float, 0.0, None)}


def unrolled(
    vector: Sequence[Tensor], lower: ProblemLike, upper: ProblemLike, options: Mapping[str, Any]
) -> list[Tensor]:
    """``vector @ d w_K / d upper`` where w_K is reached by the last K (<= unroll_steps) SGD steps.

    The steps are replayed differentiably (create_graph) from the parameters recorded before the
    unroll window, on the same batches, with the optimizer's lr and weight decay. Exact for plain
    SGD; for other optimizers it differentiates the equivalent SGD steps (an approximation).
    A one-step window is not replayed when the engine kept the step's gradient graph (it does
    so when the upper step follows directly): the same numbers without a second forward/backward.
    Options: ``lr`` (override the optimizer's).
    """
    start, steps = unroll_window(lower)
    if start is None:
        raise RuntimeError(
            f"unrolled hypergradient: problem {lower.name!r} has no recorded steps yet"
        )
    hyper = sgd_hyper(lower, options)
    uparams = list(upper.trainable_parameters())
    out = recorded_step_vjp(lower, uparams, vector, hyper)
    if out is None:
        final = replay(lower, start, steps, hyper, create_graph=True)
        out = grad(final, uparams, vector)
    return out
