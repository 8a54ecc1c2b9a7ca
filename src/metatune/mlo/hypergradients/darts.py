"""Finite-difference (DARTS) approximation of the best-response vector-Jacobian product."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metatune.mlo.hypergradients import register_hypergradient
from metatune.mlo.hypergradients._utils import grad


def _finite_difference(
    vector: list[Tensor], lower: Any, upper: Any, options: dict[str, Any]
) -> list[Tensor]:
    """``-scale * d2 L_lower / (d upper d lower) @ vector`` by central differences.

    Implicit differentiation with the inverse Hessian replaced by ``scale * I``; DARTS's
    second-order rule uses scale = the lower learning rate. Options: ``alpha`` (perturbation
    radius, eps = alpha / ||vector||, default 0.01), ``scale`` (default 1.0).
    """
    alpha = float(options.get("alpha", 0.01))
    scale = float(options.get("scale", 1.0))
    params = lower.trainable_parameters()
    uparams = upper.trainable_parameters()
    flat = [v.detach().float() for v in vector]
    norm = float(torch.sqrt(sum((w * w).sum() for w in flat)))  # w * w: the bits of w ** 2
    if norm == 0.0:
        return [torch.zeros_like(p) for p in uparams]
    eps = alpha / norm
    batch = lower._last_batch
    step = [v.detach().to(p.dtype) for p, v in zip(params, vector, strict=True)]
    grads = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, v in zip(params, step, strict=True):
                p.add_(v, alpha=sign * eps)
        try:
            grads.append(grad(lower._loss(batch), uparams))
        finally:
            with torch.no_grad():
                for p, v in zip(params, step, strict=True):
                    p.add_(v, alpha=-sign * eps)
    plus, minus = grads
    return [scale * (m - q) / (2 * eps) for q, m in zip(plus, minus, strict=True)]


def darts(vector: list[Tensor], lower: Any, upper: Any, options: dict[str, Any]) -> list[Tensor]:
    return _finite_difference(vector, lower, upper, options)


def finite_difference(
    vector: list[Tensor], lower: Any, upper: Any, options: dict[str, Any]
) -> list[Tensor]:
    return _finite_difference(vector, lower, upper, options)


_SPEC = {"alpha": (float, 0.0, None), "scale": (float, None, None)}
register_hypergradient("darts", options=_SPEC)(darts)
register_hypergradient("finite_difference", options=_SPEC)(finite_difference)
