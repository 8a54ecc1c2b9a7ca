"""Adam/AdamW, global-norm clipping at a running quantile and checkpoints, on stacked tensors.

Each replica (the leading axis of every tensor) has its own learning rate, betas, epsilon and
weight decay, its own step count and its own clipping history. The arithmetic follows
`torch.optim.AdamW`'s single-tensor CPU path and `lhopt.actions.GradientClipper` operation by
operation (scalars computed in double, then used in float32), so a replica follows the same
trajectory as the unbatched engine up to the rounding of batched reductions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["HParams", "Layout", "StackedAdamW", "StackedClipper", "StackedCheckpoints"]

Params = dict[str, torch.Tensor]


class Layout:
    """Where each parameter tensor lives in one flat [R, D] tensor of all of a replica's weights.

    Keeping the weights flat makes the optimizer, the clipper and the gradient statistics a few
    operations on one tensor instead of a few per parameter tensor; per-tensor quantities
    (norms, dot products) are segment sums over it.
    """

    def __init__(self, params: Params) -> None:
        self.names = list(params)
        self.shapes = [tuple(p.shape[1:]) for p in params.values()]
        self.sizes = [int(p[0].numel()) for p in params.values()]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.total = sum(self.sizes)
        self._slices = [slice(o, o + k) for o, k in zip(self.offsets, self.sizes, strict=True)]

    def flatten(self, params: Params) -> torch.Tensor:
        """name -> [R, ...] to one [R, D] tensor (a copy)."""
        return torch.cat([params[n].reshape(params[n].shape[0], -1) for n in self.names], dim=1)

    def unflatten(self, flat: torch.Tensor) -> Params:
        """Views of a [R, D] (or [D]) tensor as name -> [R, ...] (or the unstacked shapes)."""
        lead = flat.shape[:-1]
        return {
            n: flat[..., o : o + k].view(*lead, *shape)
            for n, shape, o, k in zip(
                self.names, self.shapes, self.offsets, self.sizes, strict=True
            )
        }

    def segment_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Per replica and parameter tensor, the sum of `x` ([R, D]) over that tensor: [R, T]."""
        # contiguous row slices: faster on a CPU than index_add_ along dim 1 or a product with a
        # [D, T] indicator matrix (both measured)
        return torch.stack([x[:, sl].sum(1) for sl in self._slices], dim=1)


def _per_replica(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[R] -> [R, 1, 1, ...] broadcastable against `like` ([R, ...])."""
    return x.view(-1, *([1] * (like.dim() - 1)))


def _where(mask: torch.Tensor | None, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return new if mask is None else torch.where(_per_replica(mask, new), new, old)


@dataclass
class HParams:
    """Per-replica optimizer hyperparameters, float64 tensors of shape [R]."""

    lr: torch.Tensor
    beta1: torch.Tensor
    beta2: torch.Tensor
    eps: torch.Tensor
    weight_decay: torch.Tensor

    @classmethod
    def from_groups(cls, groups: Sequence[dict[str, object]]) -> HParams:
        """From one torch-style param_group dict per replica (lr, betas, eps, weight_decay)."""

        def col(fn: object) -> torch.Tensor:
            return torch.tensor([fn(g) for g in groups], dtype=torch.float64)  # type: ignore[operator]

        return cls(
            col(lambda g: g["lr"]),
            col(lambda g: g["betas"][0]),
            col(lambda g: g["betas"][1]),
            col(lambda g: g["eps"]),
            col(lambda g: g["weight_decay"]),
        )


class StackedAdamW:
    """Adam (decoupled=False: L2 added to the gradient) or AdamW over stacked parameters."""

    def __init__(self, params: Params, decoupled: bool = True) -> None:
        self.decoupled = decoupled
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        r = next(iter(params.values())).shape[0]
        self.step_count = torch.zeros(r, dtype=torch.float64)

    @torch.no_grad()
    def step(
        self, params: Params, grads: Params, hp: HParams, mask: torch.Tensor | None = None
    ) -> Params:
        """One update of the replicas where `mask` is True (all when None); returns new params."""
        steps = self.step_count + (1 if mask is None else mask.double())
        self.step_count = steps
        if mask is not None and bool(mask.all()):
            mask = None  # every replica steps: no masking needed
        f32 = torch.float32
        wd_factor = (1 - hp.lr * hp.weight_decay).to(f32)
        w1 = (1 - hp.beta1).to(f32)
        b2 = hp.beta2.to(f32)
        w2 = (1 - hp.beta2).to(f32)
        safe = steps.clamp(min=1)
        neg_step = (-(hp.lr / (1 - hp.beta1**safe))).to(f32)
        bc2_sqrt = ((1 - hp.beta2**safe) ** 0.5).to(f32)
        eps = hp.eps.to(f32)
        has_wd = bool((hp.weight_decay != 0).any())
        out = {}
        for name, p in params.items():
            g = grads[name]
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            if mask is None:  # every replica steps: in place, as torch does
                if has_wd and self.decoupled:
                    p.mul_(_per_replica(wd_factor, p))
                elif has_wd:
                    g = g + p * _per_replica(hp.weight_decay.to(f32), p)
                m.lerp_(g, _per_replica(w1, m))
                v.mul_(_per_replica(b2, v)).add_(_per_replica(w2, v) * g * g)
                denom = v.sqrt().div_(_per_replica(bc2_sqrt, v)).add_(_per_replica(eps, v))
                p.add_((_per_replica(neg_step, p) * m).div_(denom))
                out[name] = p
                continue
            new_p = p
            if has_wd:
                if self.decoupled:
                    new_p = p * _per_replica(wd_factor, p)
                else:
                    g = g + p * _per_replica(hp.weight_decay.to(f32), p)
            m_new = torch.lerp(m, g, _per_replica(w1, m))
            v_new = v * _per_replica(b2, v) + _per_replica(w2, v) * g * g
            denom = v_new.sqrt() / _per_replica(bc2_sqrt, v) + _per_replica(eps, v)
            new_p = new_p + _per_replica(neg_step, p) * m_new / denom
            self.exp_avg[name] = _where(mask, m_new, m)
            self.exp_avg_sq[name] = _where(mask, v_new, v)
            out[name] = _where(mask, new_p, p)
        return out


class StackedClipper:
    """Per replica: clip the global gradient norm at a quantile of its last `window` norms (as
    `GradientClipper`, which starts clipping once it has seen 10 norms)."""

    def __init__(self, replicas: int, quantile: Sequence[float], window: int = 200) -> None:
        self.window = window
        self.norms = torch.full((replicas, window), math.inf, dtype=torch.float64)
        self.count = torch.zeros(replicas, dtype=torch.long)  # norms appended so far
        self.clipped = torch.zeros(replicas, dtype=torch.long)
        self.seen = torch.zeros(replicas, dtype=torch.long)
        self.quantile = torch.tensor(list(quantile), dtype=torch.float64)

    @torch.no_grad()
    def clip(
        self, grads: torch.Tensor, layout: Layout, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Clip the flat gradients [R, D] of the replicas where `mask` is True (those that take
        an optimizer step)."""
        r = self.count.shape[0]
        active = torch.ones(r, dtype=torch.bool) if mask is None else mask
        per_tensor = layout.segment_sum(grads * grads).sqrt()
        total = torch.linalg.vector_norm(per_tensor, dim=1)  # [R] float32
        n = self.count.clamp(max=self.window)
        ready = (n >= 10) & active
        out = grads
        if bool(ready.any()):
            ordered = self.norms.sort(dim=1).values
            k = torch.minimum((self.quantile * n.double()).floor().long(), n - 1).clamp(min=0)
            level = ordered.gather(1, k[:, None])[:, 0].to(torch.float32)
            coef = (level / (total + 1e-6)).clamp(max=1.0)
            coef = torch.where(ready, coef, torch.ones_like(coef))
            out = grads * coef[:, None]
            self.clipped += (ready & (total.double() > level.double())).long()
        finite = active & torch.isfinite(total)
        rows = finite.nonzero(as_tuple=True)[0]
        if len(rows):
            pos = self.count[rows] % self.window
            self.norms[rows, pos] = total[rows].double()
            self.count[rows] += 1
        self.seen += active.long()
        return out

    def clipped_fraction(self, replicas: torch.Tensor) -> list[float]:
        """The clipped share of steps since the last call, for `replicas`; resets their counts."""
        out = []
        for i in replicas.tolist():
            seen, clipped = int(self.seen[i]), int(self.clipped[i])
            out.append(clipped / seen if seen else 0.0)
        self.clipped[replicas] = 0
        self.seen[replicas] = 0
        return out


class StackedCheckpoints:
    """Per-replica in-memory copies of parameters and optimizer state (`Checkpoints`)."""

    def __init__(self, params: Params, optimizer: StackedAdamW) -> None:
        self.params = {n: p.clone() for n, p in params.items()}
        self.exp_avg = {n: t.clone() for n, t in optimizer.exp_avg.items()}
        self.exp_avg_sq = {n: t.clone() for n, t in optimizer.exp_avg_sq.items()}
        self.step_count = optimizer.step_count.clone()
        self.has = torch.zeros(len(optimizer.step_count), dtype=torch.bool)

    def save(self, mask: torch.Tensor, params: Params, optimizer: StackedAdamW) -> None:
        for store, live in (
            (self.params, params),
            (self.exp_avg, optimizer.exp_avg),
            (self.exp_avg_sq, optimizer.exp_avg_sq),
        ):
            for n in store:
                store[n] = _where(mask, live[n], store[n])
        self.step_count = torch.where(mask, optimizer.step_count, self.step_count)
        self.has |= mask

    def restore(self, mask: torch.Tensor, params: Params, optimizer: StackedAdamW) -> Params:
        """Load the saved state where `mask` and a checkpoint exist; hyperparameters stay."""
        mask = mask & self.has
        for n in optimizer.exp_avg:
            optimizer.exp_avg[n] = _where(mask, self.exp_avg[n], optimizer.exp_avg[n])
            optimizer.exp_avg_sq[n] = _where(mask, self.exp_avg_sq[n], optimizer.exp_avg_sq[n])
        optimizer.step_count = torch.where(mask, self.step_count, optimizer.step_count)
        return {n: _where(mask, self.params[n], p) for n, p in params.items()}
