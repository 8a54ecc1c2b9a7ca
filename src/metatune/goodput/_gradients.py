"""Torch-side gradient measurements for the noise estimate: Adam preconditioning and
reusable flat copies of the gradients with their (weighted) squared norms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "adam_preconditioner",
    "flat_adam_preconditioner",
    "FlatBuffers",
    "is_adam_type",
]


def is_adam_type(optimizer: torch.optim.Optimizer) -> bool:
    """Adam-family optimizers (Adam, AdamW, NAdam, RAdam, Adamax, ...): `betas` and a name
    with "adam" in it; they keep a second moment the noise can be preconditioned by."""
    return "betas" in optimizer.defaults and "adam" in type(optimizer).__name__.lower()


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], floor: float = 0.1
) -> list[torch.Tensor | None] | None:
    """1 / (sqrt(v_hat) + eps) per parameter from Adam's bias-corrected second moment (None for
    a parameter without one), or None while the optimizer has not taken a step (no v yet): the
    noise is then measured raw. Views of `flat_adam_preconditioner`, which says how."""
    flat = flat_adam_preconditioner(optimizer, params, floor)
    if flat is None:
        return None
    out: list[torch.Tensor | None] = []
    offset = 0
    for p in params:
        n = p.numel()
        has = optimizer.state.get(p, {}).get("exp_avg_sq") is not None
        out.append(flat[offset : offset + n].view_as(p) if has else None)
        offset += n
    return out


def flat_adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], floor: float = 0.1
) -> torch.Tensor | None:
    """The preconditioner as one flat tensor over `params` (ones for a parameter without a
    second moment), or None while no parameter has one. Built in place on one copy of the
    second moments: on a model of many parameters the temporaries of a per-tensor formula
    cost more than the arithmetic.

    sqrt(v_hat) is floored at `floor` times its mean over the model: early in training a few
    coordinates with a near-zero second moment get weights up to 1/eps and their noise swamps
    every other coordinate's (the smoothed |G|^2 stays negative and the noise scale infinite).
    The noise scale is a ratio, so a common scale of the weights does not matter; the floor
    only bounds their spread."""
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts: list[torch.Tensor] = []
    found: list[tuple[int, int, float, float]] = []  # offset, size, bias correction, eps
    offset = 0
    for p in params:
        v = optimizer.state.get(p, {}).get("exp_avg_sq")
        n = p.numel()
        if v is None:
            parts.append(torch.ones(n, dtype=p.dtype, device=p.device))
        else:
            g = group_of[id(p)]
            step = optimizer.state[p].get("step", 1)
            step = float(step.item() if torch.is_tensor(step) else step)
            correction = (1.0 - g["betas"][1] ** max(step, 1.0)) ** -0.5
            found.append((offset, n, correction, float(g.get("eps", 1e-8))))
            parts.append(v.detach().reshape(-1))
        offset += n
    if not found:
        return None
    flat = torch.cat(parts)  # a copy: Adam's own state is not touched below
    total, count = 0.0, 0
    for start, n, correction, _ in found:
        seg = flat[start : start + n]
        seg.sqrt_().mul_(correction)
        total += float(seg.sum())
        count += n
    low = floor * total / count
    for start, n, _, eps in found:
        flat[start : start + n].clamp_(min=low).add_(eps).reciprocal_()
    return flat


class FlatBuffers:
    """Reusable flat buffers over a fixed list of parameters. A measured step copies the
    gradients into the same memory every time: a new vector of the model's size per copy
    (and per product) costs fresh pages on every measured step, more than the arithmetic on
    a model of a few hundred thousand parameters; whole-vector products then replace several
    small ones per parameter, whose dispatch is what a small model's measurement costs."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        self.numel = sum(p.numel() for p in self.params)
        self._buffers: dict[str, torch.Tensor] = {}
        self._views: dict[int, list[torch.Tensor]] = {}  # per buffer: views shaped like params

    def buffer(self, name: str, extra: int = 0) -> torch.Tensor:
        """Buffer `name`, of the parameters' total size plus `extra` elements."""
        buf = self._buffers.get(name)
        if buf is None or buf.numel() != self.numel + extra:
            like = self.params[0] if self.params else torch.zeros(0)
            buf = torch.zeros(self.numel + extra, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf

    def _views_of(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """`flat`'s segments shaped like the parameters (cached for the own buffers)."""
        # Keyed by address: a buffer and its slices without the extra elements share views
        # (cached views keep their storage alive, so an address is never reused under them).
        key = flat.data_ptr()
        views = self._views.get(key)
        if views is None:
            views, offset = [], 0
            for p in self.params:
                n = p.numel()
                views.append(flat[offset : offset + n].view_as(p))
                offset += n
            if any(key == b.data_ptr() for b in self._buffers.values()):
                self._views[key] = views
        return views

    @torch.no_grad()
    def grads(self, name: str, extra: int = 0) -> torch.Tensor:
        """The current gradients copied into buffer `name` (zeros for a parameter without
        one); `extra` elements at the end are room for values that travel with them."""
        buf = self.buffer(name, extra)
        views = self._views_of(buf)
        grads = [p.grad for p in self.params]
        if self.params and all(g is not None for g in grads):
            torch._foreach_copy_(views, grads)  # one call instead of one copy per tensor
            return buf
        for v, g in zip(views, grads, strict=True):
            if g is None:
                v.zero_()
            else:
                v.copy_(g)
        return buf

    @torch.no_grad()
    def write_grads(self, flat: torch.Tensor) -> None:
        """Copy `flat` (laid out as `grads` lays it) back into the parameters' gradients; a
        parameter without a gradient keeps none."""
        pairs = [(p.grad, v) for p, v in zip(self.params, self._views_of(flat), strict=True)]
        pairs = [(g, v) for g, v in pairs if g is not None]
        if pairs:
            torch._foreach_copy_([g for g, _ in pairs], [v for _, v in pairs])

    @torch.no_grad()
    def weighted_sqnorm(self, x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
        """|weights * x|^2 as a 0-d tensor (no host sync), through the scratch buffer."""
        if weights is None:
            return torch.dot(x, x)
        scratch = self.buffer("scratch")
        torch.mul(x, weights, out=scratch)
        return torch.dot(scratch, scratch)
