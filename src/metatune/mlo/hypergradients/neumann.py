"""Neumann-series approximation of the inverse Hessian in implicit differentiation."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from metatune.mlo.hypergradients import register_hypergradient
from metatune.mlo.hypergradients._utils import grad


@register_hypergradient(
    "neumann", options={"iterations": (int, 0, None), "alpha": (float, 0.0, None)}
)
def neumann(vector: list[Tensor], lower: Any, upper: Any, options: dict[str, Any]) -> list[Tensor]:
    """``-d2L/(d upper d w) @ p`` with ``p = alpha * sum_{j=0..K} (I - alpha H)^j vector``.

    Converges to the implicit-function-theorem hypergradient when alpha < 2 / lambda_max(H) and
    the lower problem is at a minimum. Options: ``iterations`` K (default 10), ``alpha`` (0.1).
    """
    iterations = int(options.get("iterations", 10))
    alpha = float(options.get("alpha", 0.1))
    params = lower.trainable_parameters()
    g = grad(lower._loss(lower._last_batch), params, create_graph=True)
    cur = [v.detach() for v in vector]
    total = list(cur)
    hv: list[Tensor] = []
    for _ in range(iterations):
        hv = grad(g, params, cur, retain_graph=True)
        cur = [c - alpha * h for c, h in zip(cur, hv, strict=True)]
        total = [t + c for t, c in zip(total, cur, strict=True)]
    scaled = [alpha * t for t in total]
    del total, cur, hv  # not needed by the last product: lower peak memory
    cross = grad(g, upper.trainable_parameters(), scaled)
    return [-c for c in cross]
