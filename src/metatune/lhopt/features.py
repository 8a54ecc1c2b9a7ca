"""Unitless features of a training run, for a hyperparameter-control policy (LHOPT-style).

Every feature is a ratio, a cosine, a probability or a log-ratio, so multiplying the loss by a
constant (which scales gradients and Adam's first moment by it and the second moment by its
square) leaves them unchanged, up to Adam's epsilon. That is what lets one policy serve tasks of
any scale. Statistics are read from the user's own `torch.optim.Adam`/`AdamW` state every few
steps and averaged between policy steps (see `GradientStats` and `RunFeatures`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["EMACDF", "GradientStats", "LossFeatures", "RunFeatures", "normal_cdf"]

_TINY = 1e-30


def normal_cdf(x: float) -> float:
    """Standard normal CDF; maps any real to (0, 1)."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _log_ratio(a: float, b: float) -> float:
    return math.log(max(a, _TINY)) - math.log(max(b, _TINY))


class EMACDF:
    """Where the current value of a signal sits in its own recent history, at several time scales.

    Keeps an exponential moving mean and variance per time scale (in observations) and returns
    Phi((x - mean) / std) for each: near 0.5 on a plateau, near 0 while the signal keeps falling
    below its recent values. Invariant to any positive affine change of units of the signal.
    """

    def __init__(self, timescales: Sequence[float] = (3.0, 10.0, 30.0)) -> None:
        if not timescales or any(t < 1 for t in timescales):
            raise ValueError(f"timescales must be numbers >= 1, got {list(timescales)!r}")
        self.timescales = tuple(float(t) for t in timescales)
        self._mean = [math.nan] * len(self.timescales)
        self._var = [0.0] * len(self.timescales)

    def update(self, x: float) -> list[float]:
        """Add an observation; returns one CDF value per time scale (0.5 before any history)."""
        out = []
        if not math.isfinite(x):
            return [0.5] * len(self.timescales)
        for i, tau in enumerate(self.timescales):
            mean, var = self._mean[i], self._var[i]
            if math.isnan(mean):
                out.append(0.5)
                self._mean[i], self._var[i] = x, 0.0
                continue
            std = math.sqrt(var)
            z = (x - mean) / std if std > 1e-12 * max(abs(mean), 1.0) else 0.0
            out.append(normal_cdf(max(min(z, 8.0), -8.0)))
            a = 1.0 / tau
            delta = x - mean
            self._mean[i] = mean + a * delta
            self._var[i] = (1 - a) * (var + a * delta * delta)
        return out

    def state_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self._mean), "var": list(self._var)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self._mean, self._var = list(state["mean"]), list(state["var"])


@dataclass
class GradientStats:
    """Per-tensor Adam statistics, averaged over the tensors of an optimizer and over samples.

    `sample(optimizer)` reads grads, parameters and Adam's `exp_avg`/`exp_avg_sq` after
    `optimizer.step()`; `features()` returns the averages since the last `reset()`.
    """

    names: tuple[str, ...] = (
        "log_m_over_g",  # log ||m_hat|| - log ||g||: how much momentum averages out
        "log_m_over_m_minus_g",  # log ||m_hat|| - log ||m_hat - g||: a gradient-noise proxy
        "log_step_over_param",  # log(lr ||u||) - log ||p||: relative size of the update
        "cos_g_m",
        "cos_g_p",
        "cos_g_u",
        "cdf_cos_g_m",  # Phi(cos * sqrt(d)): significance of the alignment given the size
        "cdf_cos_g_p",
        "frac_v_above_eps",  # fraction of entries where sqrt(v_hat) > eps
    )
    _sums: list[float] = field(default_factory=list)
    _count: int = 0

    def reset(self) -> None:
        self._sums, self._count = [], 0

    @torch.no_grad()
    def sample(self, optimizer: torch.optim.Optimizer) -> None:
        """Accumulate one observation of every feature from the optimizer's current state."""
        rows = []
        for group in optimizer.param_groups:
            beta1, beta2 = group.get("betas", (0.9, 0.999))
            eps, lr = float(group.get("eps", 1e-8)), float(group["lr"])
            for p in group["params"]:
                state = optimizer.state.get(p, {})
                if p.grad is None or "exp_avg" not in state:
                    continue
                step = float(state.get("step", 1))
                g = p.grad.detach().double().flatten()
                m = state["exp_avg"].detach().double().flatten() / (1 - beta1**step)
                v = state["exp_avg_sq"].detach().double().flatten() / (1 - beta2**step)
                pv = p.detach().double().flatten()
                u = m / (v.sqrt() + eps)
                d = g.numel()
                gn, mn, un, pn = g.norm().item(), m.norm().item(), u.norm().item(), pv.norm().item()

                def cos(a: torch.Tensor, an: float, b: torch.Tensor, bn: float) -> float:
                    return float(a @ b) / (an * bn) if an > _TINY and bn > _TINY else 0.0

                c_gm, c_gp, c_gu = cos(g, gn, m, mn), cos(g, gn, pv, pn), cos(g, gn, u, un)
                rows.append(
                    [
                        _log_ratio(mn, gn),
                        # floor relative to |m|: at the first step m_hat == g exactly
                        _log_ratio(mn, max((m - g).norm().item(), 1e-6 * mn)),
                        _log_ratio(lr * un, pn),
                        c_gm,
                        c_gp,
                        c_gu,
                        normal_cdf(c_gm * math.sqrt(d)),
                        normal_cdf(c_gp * math.sqrt(d)),
                        float((v.sqrt() > eps).double().mean()),
                    ]
                )
        if not rows:
            return
        means = [sum(col) / len(rows) for col in zip(*rows, strict=True)]
        self._sums = (
            [a + b for a, b in zip(self._sums, means, strict=True)] if self._sums else means
        )
        self._count += 1

    def features(self) -> list[float]:
        if not self._count:
            return [0.0] * len(self.names)
        return [s / self._count for s in self._sums]


class LossFeatures:
    """Loss signals without units: log-ratios across policy steps (through tanh), CDF positions
    of the log loss at several time scales, and non-finite flags."""

    names = (
        "tanh_log_train_ratio",
        "tanh_log_val_ratio",
        "train_nonfinite",
        "val_nonfinite",
        "val_seen",
    )

    def __init__(self, timescales: Sequence[float] = (3.0, 10.0, 30.0)) -> None:
        self._train_cdf = EMACDF(timescales)
        self._val_cdf = EMACDF(timescales)
        self._last_train: float | None = None
        self._last_val: float | None = None
        self._last_val_cdf = [0.5] * len(timescales)
        self.n_cdf = len(timescales)

    @staticmethod
    def _ratio(new: float, old: float | None) -> float:
        if old is None or not (math.isfinite(new) and math.isfinite(old)) or new <= 0 or old <= 0:
            return 0.0
        return math.tanh(math.log(new / old))

    def update(self, train_loss: float, val_loss: float | None) -> list[float]:
        """Features for one policy step from the mean train loss since the last one."""
        feats = [self._ratio(train_loss, self._last_train)]
        if val_loss is not None:
            feats.append(self._ratio(val_loss, self._last_val))
        else:
            feats.append(0.0)
        feats += [
            float(not math.isfinite(train_loss)),
            float(val_loss is not None and not math.isfinite(val_loss)),
            float(val_loss is not None),
        ]
        log_train = (
            math.log(train_loss) if math.isfinite(train_loss) and train_loss > 0 else math.nan
        )
        train_cdf = self._train_cdf.update(log_train)
        if val_loss is not None:
            log_val = math.log(val_loss) if math.isfinite(val_loss) and val_loss > 0 else math.nan
            self._last_val_cdf = self._val_cdf.update(log_val)
            if math.isfinite(val_loss):
                self._last_val = val_loss
        if math.isfinite(train_loss):
            self._last_train = train_loss
        return feats + train_cdf + self._last_val_cdf


class RunFeatures:
    """The policy's observation: gradient statistics, loss features, progress and the relative
    position of every hyperparameter (log of its value over its starting value)."""

    def __init__(self, timescales: Sequence[float] = (3.0, 10.0, 30.0)) -> None:
        self.gradients = GradientStats()
        self.losses = LossFeatures(timescales)

    @property
    def size_without_hparams(self) -> int:
        return len(self.gradients.names) + len(LossFeatures.names) + 2 * self.losses.n_cdf + 1

    def observe(
        self,
        train_loss: float,
        val_loss: float | None,
        progress: float,
        relative_hparams: Sequence[float],
    ) -> list[float]:
        """Close one policy step: the observation vector, then reset the gradient averages."""
        obs = (
            self.gradients.features()
            + self.losses.update(train_loss, val_loss)
            + [float(progress)]
            + [float(x) for x in relative_hparams]
        )
        self.gradients.reset()
        return [x if math.isfinite(x) else 0.0 for x in obs]
