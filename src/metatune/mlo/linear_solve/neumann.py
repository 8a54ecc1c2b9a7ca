"""Neumann series: ``x = alpha * sum_{j=0..K} (I - alpha A)^j b``, a truncated ``A^-1 b``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from metatune.mlo.linear_solve.base import MatVec

OPTIONS = {"iterations": (int, 0, None), "alpha": (float, 0.0, None)}


def solve_neumann(matvec: MatVec, b: list[Tensor], options: Mapping[str, Any]) -> list[Tensor]:
    """K = ``iterations`` (default 10) terms after the first, step ``alpha`` (default 0.1).

    Converges to ``A^-1 b`` when 0 < alpha < 2 / lambda_max(A) and A is positive definite; K
    terms equal K + 1 unrolled gradient-descent steps with learning rate alpha from a minimum.
    """
    iterations = int(options.get("iterations", 10))
    alpha = float(options.get("alpha", 0.1))
    cur = list(b)
    total = list(cur)
    for _ in range(iterations):
        av = matvec(cur)
        cur = [c - alpha * h for c, h in zip(cur, av, strict=True)]
        total = [t + c for t, c in zip(total, cur, strict=True)]
    return [alpha * t for t in total]
