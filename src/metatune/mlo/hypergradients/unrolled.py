"""Iterative differentiation through the lower problem's last unrolled steps."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from metatune.mlo.hypergradients import register_hypergradient
from metatune.mlo.hypergradients._utils import (
    grad,
    lower_step_batches,
    recorded_step_vjp,
    replay,
    sgd_hyper,
)


@register_hypergradient("unrolled", needs_history=True, options={"lr": (float, 0.0, None)})
def unrolled(vector: list[Tensor], lower: Any, upper: Any, options: dict[str, Any]) -> list[Tensor]:
    """``vector @ d w_K / d upper`` where w_K is reached by the last K (<= unroll_steps) SGD steps.

    The steps are replayed differentiably (create_graph) from the parameters recorded before the
    unroll window, on the same batches, with the optimizer's lr and weight decay. Exact for plain
    SGD; for other optimizers it differentiates the equivalent SGD steps (an approximation).
    A one-step window is not replayed when the engine kept the step's gradient graph (it does
    so when the upper step follows directly): the same numbers without a second forward/backward.
    Options: ``lr`` (override the optimizer's).
    """
    start, steps = lower_step_batches(lower)
    if start is None:
        raise RuntimeError(
            f"unrolled hypergradient: problem {lower.name!r} has no recorded steps yet"
        )
    hyper = sgd_hyper(lower, options)
    uparams = upper.trainable_parameters()
    out = recorded_step_vjp(lower, uparams, vector, hyper)
    if out is None:
        final = replay(lower, start, steps, hyper, create_graph=True)
        out = grad(final, uparams, vector)
    return out


unrolled.reuses_step_graph = True  # type: ignore[attr-defined]  # see Engine._records_step_graph
