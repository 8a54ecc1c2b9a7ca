"""The cross term of implicit differentiation by central finite differences (DARTS).

Implicit differentiation ends with ``-d2 L / (d upper d w) @ x`` for the solver's ``x``. With
autograd that product needs the lower gradient's graph; the finite-difference estimate needs
two gradients of the lower loss w.r.t. the upper parameters at ``w +- eps x`` and no second-order
graph at all, which is why DARTS uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from metatune.mlo.linear_solve.base import ScaledVector
from metatune.mlo.protocol import ProblemLike
from metatune.mlo.tensors import grad

__all__ = ["OPTIONS", "finite_difference_cross_term"]

OPTIONS = {"alpha": (float, 0.0, None)}


def finite_difference_cross_term(
    x: Sequence[Tensor],
    lower: ProblemLike,
    upper_params: Sequence[Tensor],
    options: Mapping[str, Any],
) -> list[Tensor]:
    """``-d2 L_lower / (d upper d w) @ x ~= (g(w - eps x) - g(w + eps x)) / (2 eps)``.

    ``g`` is the gradient of the lower loss (on its last batch) w.r.t. ``upper_params`` and
    ``eps = alpha / ||x||`` (``alpha``, the perturbation radius, defaults to 0.01): the error is
    O(alpha^2) whatever the size of ``x``. For ``x = scale * base`` (a :class:`ScaledVector`)
    the step is along ``base`` and the quotient is multiplied by ``scale``. The lower parameters
    are moved in place and restored.
    """
    alpha = float(options.get("alpha", 0.01))
    direction, factor = (x.base, x.scale) if isinstance(x, ScaledVector) else (list(x), 1.0)
    params = lower.trainable_parameters()
    flat = [v.detach().float() for v in direction]
    norm = float(torch.sqrt(sum((w * w).sum() for w in flat)))  # w * w: the bits of w ** 2
    if norm == 0.0:
        return [torch.zeros_like(p) for p in upper_params]
    eps = alpha / norm
    batch = lower.last_batch
    step = [v.detach().to(p.dtype) for p, v in zip(params, direction, strict=True)]
    grads = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, v in zip(params, step, strict=True):
                p.add_(v, alpha=sign * eps)
        try:
            grads.append(grad(lower.loss(batch), upper_params))
        finally:
            with torch.no_grad():
                for p, v in zip(params, step, strict=True):
                    p.add_(v, alpha=-sign * eps)
    plus, minus = grads
    return [factor * (m - q) / (2 * eps) for q, m in zip(plus, minus, strict=True)]
