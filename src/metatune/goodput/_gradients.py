"""Torch-side gradient measurements for the noise estimate: Adam preconditioning, squared norms,
and flat copies of the gradients.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "adam_preconditioner",
    "dot",
    "flatten",
    "grads_of",
    "is_adam_type",
    "sqnorm",
]


def is_adam_type(optimizer: torch.optim.Optimizer) -> bool:
    """Adam-family optimizers (Adam, AdamW, NAdam, RAdam, Adamax, ...): `betas` and a name
    with "adam" in it; they keep a second moment the noise can be preconditioned by."""
    return "betas" in optimizer.defaults and "adam" in type(optimizer).__name__.lower()


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], floor: float = 0.1
) -> list[torch.Tensor | None] | None:
    """1 / (sqrt(v_hat) + eps) per parameter from Adam's bias-corrected second moment, or None
    while the optimizer has not taken a step (no v yet): the noise is then measured raw.

    sqrt(v_hat) is floored at `floor` times its mean over the model: early in training a few
    coordinates with a near-zero second moment get weights up to 1/eps and their noise swamps
    every other coordinate's (the smoothed |G|^2 stays negative and the noise scale infinite).
    The noise scale is a ratio, so a common scale of the weights does not matter; the floor
    only bounds their spread."""
    group_of = {}
    for g in optimizer.param_groups:
        for p in g["params"]:
            group_of[id(p)] = g
    roots: list[torch.Tensor | None] = []
    eps: list[float] = []
    total, count = 0.0, 0
    for p in params:
        st = optimizer.state.get(p, {})
        v = st.get("exp_avg_sq")
        if v is None:
            roots.append(None)
            eps.append(0.0)
            continue
        g = group_of[id(p)]
        step = st.get("step", 1)
        step = float(step.item() if torch.is_tensor(step) else step)
        beta2 = g["betas"][1]
        root = (v / (1.0 - beta2 ** max(step, 1.0))).sqrt()
        roots.append(root)
        eps.append(float(g.get("eps", 1e-8)))
        total += float(root.sum())
        count += root.numel()
    if not count:
        return None
    low = floor * total / count
    return [
        None if r is None else 1.0 / (r.clamp(min=low) + e) for r, e in zip(roots, eps, strict=True)
    ]


def grads_of(params: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    return [p.grad for p in params]


def flatten(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The gradients as one new flat tensor (zeros for a parameter without one): a handful of
    whole-vector products then replace several small ones per parameter, whose dispatch, not
    arithmetic, is what a small model's measurement costs."""
    parts = [
        torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None else g.reshape(-1)
        for g, p in zip(grads, params, strict=True)
    ]
    return torch.cat(parts) if parts else torch.zeros(0)


def sqnorm(
    tensors: Sequence[torch.Tensor | None],
    weights: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """sum_i |w_i * t_i|^2 as a 0-d tensor (no host sync); None tensors count as zero."""
    total: torch.Tensor | None = None
    for i, t in enumerate(tensors):
        if t is None:
            continue
        w = weights[i] if weights is not None else None
        x = t if w is None else t * w
        s = torch.dot(x.reshape(-1), x.reshape(-1)) if x.numel() else x.sum()
        total = s if total is None else total + s
    if total is None:
        return torch.zeros(())
    return total.detach().double()


def dot(a: Sequence[torch.Tensor | None], b: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """sum_i <a_i, b_i> as a 0-d float64 tensor; pairs with a None count as zero."""
    total: torch.Tensor | None = None
    for x, y in zip(a, b, strict=True):
        if x is None or y is None or not x.numel():
            continue
        d = torch.dot(x.reshape(-1), y.reshape(-1))
        total = d if total is None else total + d
    if total is None:
        return torch.zeros((), dtype=torch.float64)
    return total.detach().double()
