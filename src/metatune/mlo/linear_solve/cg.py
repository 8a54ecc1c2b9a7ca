"""Conjugate gradient: ``x`` with ``(A + damping I) x = b`` from matrix-vector products only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from metatune.mlo.linear_solve.base import MatVec
from metatune.mlo.tensors import dot

OPTIONS = {
    "iterations": (int, 0, None),
    "tol": (float, 0.0, None),
    "damping": (float, 0.0, None),
}


def solve_cg(matvec: MatVec, b: list[Tensor], options: Mapping[str, Any]) -> list[Tensor]:
    """At most ``iterations`` CG steps (default 10) from x = 0.

    Stops early once the residual is below ``tol`` (default 1e-10) times ``||b||``, or when a
    search direction has non-positive curvature (A is not positive definite along it: the
    iterate so far is kept rather than stepping uphill). ``damping`` (default 0) is added to
    the diagonal, which bounds the solution when A is near singular.
    """
    iterations = int(options.get("iterations", 10))
    tol = float(options.get("tol", 1e-10))
    damping = float(options.get("damping", 0.0))

    def damped(v: list[Tensor]) -> list[Tensor]:
        av = matvec(v)
        if not damping:
            return av
        return [h + damping * x for h, x in zip(av, v, strict=True)]

    x = [torch.zeros_like(v) for v in b]
    r = list(b)
    p = list(b)
    rs = dot(r, r)
    b_norm = float(rs) ** 0.5
    for _ in range(iterations):
        if float(rs) ** 0.5 <= tol * max(b_norm, 1e-30):
            break
        ap = damped(p)
        pap = dot(p, ap)
        if float(pap) <= 0:  # not positive definite along p: stop with what we have
            break
        a = rs / pap
        x = [xi + a * pi for xi, pi in zip(x, p, strict=True)]
        r = [ri - a * hi for ri, hi in zip(r, ap, strict=True)]
        rs_new = dot(r, r)
        p = [ri + (rs_new / rs) * pi for ri, pi in zip(r, p, strict=True)]
        rs = rs_new
    return x
