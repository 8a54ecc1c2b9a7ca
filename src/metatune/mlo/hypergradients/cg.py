"""Conjugate-gradient solve of H x = v for implicit differentiation."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from metatune.mlo.hypergradients import register_hypergradient
from metatune.mlo.hypergradients._utils import dot, grad


@register_hypergradient(
    "cg",
    options={
        "iterations": (int, 0, None),
        "tol": (float, 0.0, None),
        "damping": (float, 0.0, None),
    },
)
def cg(vector: list[Tensor], lower: Any, upper: Any, options: dict[str, Any]) -> list[Tensor]:
    """``-d2L/(d upper d w) @ x`` where ``H x = vector`` is solved by conjugate gradient.

    Uses Hessian-vector products only. Options: ``iterations`` (default 10), ``tol`` (relative
    residual at which to stop early, default 1e-10), ``damping`` (added to H, default 0).
    """
    iterations = int(options.get("iterations", 10))
    tol = float(options.get("tol", 1e-10))
    damping = float(options.get("damping", 0.0))
    params = lower.trainable_parameters()
    g = grad(lower._loss(lower._last_batch), params, create_graph=True)

    def hvp(v: list[Tensor]) -> list[Tensor]:
        hv = grad(g, params, v, retain_graph=True)
        if not damping:
            return hv
        return [h + damping * x for h, x in zip(hv, v, strict=True)]

    b = [v.detach() for v in vector]
    x = [torch.zeros_like(v) for v in b]
    r = list(b)
    p = list(b)
    rs = dot(r, r)
    b_norm = float(rs) ** 0.5
    hp: list[Tensor] = []
    for _ in range(iterations):
        if float(rs) ** 0.5 <= tol * max(b_norm, 1e-30):
            break
        hp = hvp(p)
        php = dot(p, hp)
        if float(php) <= 0:  # not positive definite along p: stop with what we have
            break
        a = rs / php
        x = [xi + a * pi for xi, pi in zip(x, p, strict=True)]
        r = [ri - a * hi for ri, hi in zip(r, hp, strict=True)]
        rs_new = dot(r, r)
        p = [ri + (rs_new / rs) * pi for ri, pi in zip(r, p, strict=True)]
        rs = rs_new
    del r, p, b, hp  # not needed by the last product: lower peak memory
    cross = grad(g, upper.trainable_parameters(), x)
    return [-c for c in cross]
