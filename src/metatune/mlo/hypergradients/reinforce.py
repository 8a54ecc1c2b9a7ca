"""Zero-order (Gaussian smoothing, antithetic) estimate for non-differentiable paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from metatune.mlo.hypergradients.sgd import replay, sgd_hyper, unroll_window
from metatune.mlo.protocol import ProblemLike
from metatune.mlo.tensors import dot

__all__ = ["OPTIONS", "reinforce"]

OPTIONS = {
    "samples": (int, 1, None),
    "sigma": (float, 0.0, None),
    "distribution": (str, None, None),
    "steps": (int, 1, None),
    "lr": (float, 0.0, None),
    "seed": (int, None, None),
}


def reinforce(
    vector: Sequence[Tensor], lower: ProblemLike, upper: ProblemLike, options: Mapping[str, Any]
) -> list[Tensor]:
    """Estimate ``vector @ d w / d upper`` without differentiating through the upper parameters.

    ``f(u) = vector . w(u)`` where ``w(u)`` re-runs the lower problem's SGD steps (first-order
    only) from the start of its unroll window with the upper parameters set to ``u``; the
    gradient of f is estimated as ``mean[(f(u + s z) - f(u - s z)) / (2 s) * z]`` with
    z ~ N(0, I) (Gaussian smoothing) or Rademacher z (SPSA; lower variance). Options: ``samples``
    (antithetic pairs, default 16), ``sigma`` (0.01), ``distribution`` ("gaussian" or
    "rademacher"), ``steps`` (replay steps; default the recorded window, cycling its batches),
    ``lr``, ``seed``.
    """
    samples = int(options.get("samples", 16))
    distribution = options.get("distribution", "gaussian")
    if distribution not in ("gaussian", "rademacher"):
        raise ValueError(
            f"reinforce: distribution must be 'gaussian' or 'rademacher', got {distribution!r}"
        )
    if samples < 1:
        raise ValueError(f"reinforce: samples must be >= 1, got {samples}")
    sigma = float(options.get("sigma", 0.01))
    start, steps = unroll_window(lower)
    if start is None:
        start = [p.detach().clone() for p in lower.trainable_parameters()]
        steps = [[lower.last_batch]]
    n_steps = int(options.get("steps", len(steps)))
    steps = [steps[i % len(steps)] for i in range(n_steps)]
    hyper = sgd_hyper(lower, options)
    uparams = list(upper.trainable_parameters())
    seed = options.get("seed")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(
        int(seed) if seed is not None else 1_000_003 * upper.step_count + lower.step_count
    )
    vec = [v.detach() for v in vector]
    est = [torch.zeros_like(p) for p in uparams]

    def f() -> Tensor:
        with torch.enable_grad():
            w = replay(lower, start, steps, hyper, create_graph=False)
        return dot([x.detach() for x in w], vec)

    original = [p.detach().clone() for p in uparams]
    try:
        for _ in range(samples):
            z = [torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device) for p in uparams]
            if distribution == "rademacher":
                z = [torch.sign(zi) + (zi == 0).to(zi.dtype) for zi in z]
            values = []
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, o, zi in zip(uparams, original, z, strict=True):
                        p.copy_(o + sign * sigma * zi)
                values.append(f())
            coef = (values[0] - values[1]) / (2 * sigma)
            est = [e + coef * zi for e, zi in zip(est, z, strict=True)]
    finally:
        with torch.no_grad():
            for p, o in zip(uparams, original, strict=True):
                p.copy_(o)
    return [e / samples for e in est]
