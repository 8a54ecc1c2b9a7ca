"""`StackedGradientStats`: `lhopt.features.GradientStats` for every replica at once.

Same features, same order (`GradientStats.names`), computed in double from the stacked gradients,
parameters and Adam moments; per replica they are averaged over its tensors, then over samples
since the replica's last policy step.
"""

from __future__ import annotations

import math

import torch

from metatune.lhopt.features import GradientStats
from metatune.lhopt.vectorized.optim import HParams, Params, StackedAdamW

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
        params: Params,
        grads: Params,
        optimizer: StackedAdamW,
        hp: HParams,
        mask: torch.Tensor,
    ) -> None:
        """Add one observation for the replicas in `mask` (those with a gradient this step)."""
        mask = mask & (optimizer.step_count >= 1)
        if not bool(mask.any()):
            return
        steps = optimizer.step_count.clamp(min=1)
        bc1 = (1 - hp.beta1**steps)[:, None]
        bc2 = (1 - hp.beta2**steps)[:, None]
        eps = hp.eps[:, None]
        rows = []
        for name, p in params.items():
            g = grads[name].double().flatten(1)
            m = optimizer.exp_avg[name].double().flatten(1) / bc1
            v = optimizer.exp_avg_sq[name].double().flatten(1) / bc2
            pv = p.double().flatten(1)
            u = m / (v.sqrt() + eps)
            d = g.shape[1]
            gn, mn, un, pn = (torch.linalg.vector_norm(x, dim=1) for x in (g, m, u, pv))
            c_gm = _cos((g * m).sum(1), gn, mn)
            c_gp = _cos((g * pv).sum(1), gn, pn)
            c_gu = _cos((g * u).sum(1), gn, un)
            noise = torch.linalg.vector_norm(m - g, dim=1)
            rows.append(
                torch.stack(
                    [
                        _log_ratio(mn, gn),
                        _log_ratio(mn, torch.maximum(noise, 1e-6 * mn)),
                        _log_ratio(hp.lr * un, pn),
                        c_gm,
                        c_gp,
                        c_gu,
                        _cdf(c_gm * math.sqrt(d)),
                        _cdf(c_gp * math.sqrt(d)),
                        (v.sqrt() > eps).double().mean(1),
                    ],
                    dim=1,
                )
            )
        means = torch.stack(rows).mean(0)  # [R, features]
        self.sums += torch.where(mask[:, None], means, 0.0)
        self.count += mask.long()

    def features(self, replicas: torch.Tensor) -> torch.Tensor:
        """The averages since the last reset for `replicas` ([n, features]); then resets them."""
        count = self.count[replicas].double()[:, None]
        out = torch.where(count > 0, self.sums[replicas] / count.clamp(min=1), 0.0)
        self.sums[replicas] = 0.0
        self.count[replicas] = 0
        return out
