"""`StackedGradientStats`: `lhopt.features.GradientStats` for every replica at once.

Same features, same order (`GradientStats.names`), from the stacked gradients, parameters and Adam
moments; per replica they are averaged over its tensors, then over samples since the replica's
last policy step. Elementwise products and per-tensor sums are in float32 (`GradientStats` works
in double): on a CPU, double elementwise passes over [R, D] cost several times more, and the
features (logs, cosines, CDFs of them) change by about float32 rounding, ~1e-6 relative.
"""

from __future__ import annotations

import math

import torch

from metatune.lhopt.features import GradientStats
from metatune.lhopt.vectorized.optim import HParams, Layout, StackedAdamW

__all__ = ["StackedGradientStats"]

_TINY = 1e-30


def _log_ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.log(a.clamp(min=_TINY)) - torch.log(b.clamp(min=_TINY))


def _cos(dot: torch.Tensor, an: torch.Tensor, bn: torch.Tensor) -> torch.Tensor:
    ok = (an > _TINY) & (bn > _TINY)
    return torch.where(ok, dot / torch.where(ok, an * bn, torch.ones_like(an)), 0.0)


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class StackedGradientStats:
    """Running sums of the gradient features per replica (see `GradientStats`)."""

    names = GradientStats.names

    def __init__(self, replicas: int) -> None:
        self.sums = torch.zeros(replicas, len(self.names), dtype=torch.float64)
        self.count = torch.zeros(replicas, dtype=torch.long)

    @torch.no_grad()
    def sample(
        self,
        flat: torch.Tensor,
        grads: torch.Tensor,
        optimizer: StackedAdamW,
        hp: HParams,
        mask: torch.Tensor,
        layout: Layout,
    ) -> None:
        """Add one observation for the replicas in `mask` (those with a gradient this step),
        from flat [R, D] parameters and gradients and the optimizer's flat moments."""
        mask = mask & (optimizer.step_count >= 1)
        if not bool(mask.any()):
            return
        steps = optimizer.step_count.clamp(min=1)
        f32 = torch.float32
        g = grads
        m = optimizer.exp_avg["flat"] / (1 - hp.beta1**steps).to(f32)[:, None]
        v = optimizer.exp_avg_sq["flat"] / (1 - hp.beta2**steps).to(f32)[:, None]
        eps = hp.eps.to(f32)[:, None]
        root = v.sqrt()
        u = m / (root + eps)
        diff = m - g
        seg = layout.segment_sum

        def norm(x: torch.Tensor) -> torch.Tensor:
            return seg(x * x).double().sqrt()

        gn, mn, un, pn, noise = (norm(x) for x in (g, m, u, flat, diff))  # [R, T]
        c_gm = _cos(seg(g * m).double(), gn, mn)
        c_gp = _cos(seg(g * flat).double(), gn, pn)
        c_gu = _cos(seg(g * u).double(), gn, un)
        d = torch.tensor(layout.sizes, dtype=torch.float64)
        sqrt_d = d.sqrt()
        rows = torch.stack(
            [
                _log_ratio(mn, gn),
                _log_ratio(mn, torch.maximum(noise, 1e-6 * mn)),
                _log_ratio(hp.lr[:, None] * un, pn),
                c_gm,
                c_gp,
                c_gu,
                _cdf(c_gm * sqrt_d),
                _cdf(c_gp * sqrt_d),
                seg((root > eps).to(f32)).double() / d,
            ],
            dim=2,
        )  # [R, T, features]
        means = rows.mean(1)
        self.sums += torch.where(mask[:, None], means, 0.0)
        self.count += mask.long()

    def features(self, replicas: torch.Tensor) -> torch.Tensor:
        """The averages since the last reset for `replicas` ([n, features]); then resets them."""
        count = self.count[replicas].double()[:, None]
        out = torch.where(count > 0, self.sums[replicas] / count.clamp(min=1), 0.0)
        self.sums[replicas] = 0.0
        self.count[replicas] = 0
        return out
