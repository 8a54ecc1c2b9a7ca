"""The scaled identity: ``x = scale * b``, i.e. ``A^-1 ~= scale * I`` (no matrix products).

Finite-difference (DARTS) hypergradients use it: the inverse Hessian of the lower problem is
replaced by a multiple of the identity, DARTS's second-order rule taking the lower learning rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from metatune.mlo.linear_solve.base import MatVec, ScaledVector

OPTIONS = {"scale": (float, None, None)}


def solve_identity(matvec: MatVec, b: list[Tensor], options: Mapping[str, Any]) -> ScaledVector:
    """``scale * b`` (``scale`` defaults to 1.0), kept as ``b`` and ``scale`` (see
    :class:`ScaledVector`); ``matvec`` is never called."""
    return ScaledVector(b, float(options.get("scale", 1.0)))
