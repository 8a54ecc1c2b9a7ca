"""Gradient noise: unbiased estimates of |G|^2 and tr(Sigma), their smoothing and uncertainty.

A gradient averaged over `b` examples has E|g_b|^2 = |G|^2 + tr(Sigma) / b, where G is the true
gradient and Sigma the per-example gradient covariance. Two averages over different batch sizes
therefore give both quantities without bias; this module holds that algebra (pure functions on
scalars), the three ways of getting the two averages from a training step, and a debiased EMA
that turns the noisy per-step estimates into the gradient noise scale tr(Sigma) / |G|^2
(McCandlish et al. 2018; Pollux's phi for M0 when its variance is taken at batch M0).

Sources of the two averages (chosen by the controller):

- micro-batches (`from_pieces`): the gradients of the accumulation micro-batches of one step
  (batch sizes b_i) and their weighted mean over B = sum b_i examples;
- ranks (`from_pieces` as well): each rank's local gradient before the all-reduce and the
  all-reduced one; only the per-rank squared norms travel (one scalar each, inside the
  gradient all-reduce);
- consecutive steps (`from_consecutive`): the fallback when one step has one gradient. It is
  biased: the true gradient moves between the two steps, so |g_t - g_{t-1}|^2 carries
  |G_t - G_{t-1}|^2 on top of the noise and tr(Sigma) is overestimated (and |G|^2
  underestimated) by an amount that grows with the learning rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "NoiseEstimate",
    "NoiseTracker",
    "from_consecutive",
    "from_means",
    "from_pieces",
]

_TINY = 1e-30


@dataclass(frozen=True)
class NoiseEstimate:
    """One step's unbiased (or, for the fallback, approximately unbiased) estimates."""

    grad_sqr: float  # |G|^2
    grad_var: float  # tr(Sigma), the per-example gradient variance summed over coordinates


def from_pieces(
    piece_sqnorms: Sequence[float], piece_sizes: Sequence[float], mean_sqnorm: float
) -> NoiseEstimate:
    """Estimates from gradients g_i over b_i examples each and their size-weighted mean.

    E[mean_i |g_i|^2] = |G|^2 + tr(Sigma) * mean_i(1 / b_i) and E|g|^2 = |G|^2 + tr(Sigma) / B,
    with B = sum_i b_i; solving the two equations gives unbiased estimates. The estimate of
    |G|^2 may come out negative on one step (it is unbiased, not positive); the EMA keeps it.
    """
    n = len(piece_sqnorms)
    if n < 2 or len(piece_sizes) != n:
        raise ValueError(f"need at least two pieces with one size each, got {n} norms")
    if any(b <= 0 for b in piece_sizes):
        raise ValueError(f"piece sizes must be positive, got {list(piece_sizes)}")
    return from_means(
        sum(piece_sqnorms) / n,
        sum(1.0 / b for b in piece_sizes) / n,
        float(sum(piece_sizes)),
        mean_sqnorm,
    )


def from_means(
    mean_piece_sqnorm: float,
    mean_inv_size: float,
    total: float,
    mean_sqnorm: float,
    population: float = math.inf,
) -> NoiseEstimate:
    """`from_pieces` from its sufficient statistics: mean_i |g_i|^2, mean_i 1 / b_i, B and
    |g|^2 (under DDP the ranks' mean squared norm comes out of the gradient all-reduce).

    `population`: the number of examples the batches are drawn from without replacement (the
    training set within an epoch). Then E|g_b|^2 = |G|^2 + tr(S) (1/b - 1/N) with S the
    sample covariance (ddof 1) of the N per-example gradients; the 1/N terms cancel in the
    variance and correct |G|^2, so both are unbiased for the training set itself.
    """
    inv_big = 1.0 / total
    denom = mean_inv_size - inv_big
    if denom <= 0:
        raise ValueError("the pieces must be smaller than their total")
    var = (mean_piece_sqnorm - mean_sqnorm) / denom
    sqr = mean_sqnorm - var * (inv_big - 1.0 / population)
    return NoiseEstimate(grad_sqr=sqr, grad_var=var)


def from_consecutive(
    diff_sqnorm: float,
    sum_sqnorm: float,
    size: float,
    prev_size: float,
    population: float = math.inf,
) -> NoiseEstimate:
    """Estimates from two consecutive steps' gradients g_t (over `size` examples) and g_{t-1}.

    `diff_sqnorm` = |g_t - g_{t-1}|^2 and `sum_sqnorm` = |(g_t + g_{t-1}) / 2|^2. If both were
    drawn at the same parameters, E|g_t - g_{t-1}|^2 = tr(Sigma) (1/b_t + 1/b_{t-1}) and
    E|mean|^2 = |G|^2 + tr(Sigma) (1/b_t + 1/b_{t-1}) / 4. They are not (the step between them
    moves G), hence the upward bias of tr(Sigma) described in the module docstring.

    `population`: as in `from_means`. Two disjoint batches drawn without replacement from N
    examples are negatively correlated (covariance -S / N), which leaves the difference
    unbiased but lowers E|mean|^2 by S / N; adding it back keeps |G|^2 unbiased.
    """
    if size <= 0 or prev_size <= 0:
        raise ValueError(f"sizes must be positive, got {size} and {prev_size}")
    inv = 1.0 / size + 1.0 / prev_size
    var = diff_sqnorm / inv
    sqr = sum_sqnorm - var * inv / 4.0 + var / population
    return NoiseEstimate(grad_sqr=sqr, grad_var=var)


class NoiseTracker:
    """Debiased exponential moving averages of |G|^2 and tr(Sigma), and the noise scale.

    The EMAs start at zero and are divided by (1 - decay^t), Adam-style, so the first steps
    are not pulled towards zero. Alongside the means it keeps EMAs of the squares and the cross
    product of the raw estimates and of the weights, which give a standard error of the smoothed
    values (effective sample size (sum w)^2 / sum w^2) and, by the delta method, of the noise
    scale.

    Args:
        decay: EMA decay per observation, in [0, 1).
    """

    def __init__(self, decay: float = 0.95) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.count = 0
        self._m = {"sqr": 0.0, "var": 0.0, "sqr2": 0.0, "var2": 0.0, "cross": 0.0}
        self._w = 0.0  # sum of weights (1 - decay^t after normalisation)
        self._w2 = 0.0  # sum of squared weights

    def update(self, est: NoiseEstimate, elapsed: float = 1.0, weight: float = 1.0) -> None:
        """Fold one step's estimate into the averages (non-finite estimates are skipped).
        `elapsed`: how many observations' worth of time passed since the last one; the
        estimate counts as that many observations of itself (the older averages decay by
        ``decay ** elapsed``), so that sparse measurements forget at the same pace in
        training time as dense ones; the standard errors count it once. `weight`: how much
        this estimate counts against the others (the controller gives an estimate from a
        larger batch more weight: it saw more examples, and at a small batch the |G|^2
        estimate is mostly noise)."""
        if not (math.isfinite(est.grad_sqr) and math.isfinite(est.grad_var)):
            return
        if not weight > 0:
            raise ValueError(f"weight must be positive, got {weight!r}")
        d = self.decay ** max(float(elapsed), 0.0)
        a = (1.0 - d) * float(weight)
        raw = {
            "sqr": est.grad_sqr,
            "var": est.grad_var,
            "sqr2": est.grad_sqr**2,
            "var2": est.grad_var**2,
            "cross": est.grad_sqr * est.grad_var,
        }
        for k, v in raw.items():
            self._m[k] = d * self._m[k] + a * v
        self._w = d * self._w + a
        self._w2 = d * d * self._w2 + a**2
        self.count += 1

    def _mean(self, key: str) -> float:
        return self._m[key] / self._w if self._w > 0 else float("nan")

    @property
    def grad_sqr(self) -> float:
        """Smoothed |G|^2 (NaN before the first update)."""
        return self._mean("sqr")

    @property
    def grad_var(self) -> float:
        """Smoothed tr(Sigma) (NaN before the first update)."""
        return self._mean("var")

    @property
    def noise_scale(self) -> float:
        """tr(Sigma) / |G|^2: the batch size at which noise and signal are equal (NaN before
        the first update; +inf while the smoothed |G|^2 is not positive)."""
        sqr, var = self.grad_sqr, self.grad_var
        if not (math.isfinite(sqr) and math.isfinite(var)):
            return float("nan")
        if sqr <= _TINY:
            return float("inf")
        return max(var, 0.0) / sqr

    def noise_scale_bound(self, z: float) -> float:
        """A noise scale the estimate supports at `z` standard errors: tr(Sigma) over an upper
        bound of |G|^2 (its average plus z standard errors, the average taken as 0 while it is
        not positive). It is at most the point estimate, so a plan made on it errs towards
        the smaller batch, and it is finite while the average |G|^2 is not yet positive (the
        signal is below the noise: large batches are efficient, by how much the estimate cannot
        say yet), where the point estimate is +inf and says nothing usable. The point estimate
        when z is 0 or there is no spread yet."""
        phi = self.noise_scale
        if not z > 0 or phi != phi:
            return phi
        se_sqr = self.standard_errors()[0]
        upper = max(self.grad_sqr, 0.0) + z * se_sqr
        if not (math.isfinite(upper) and upper > _TINY):
            return phi
        return max(self.grad_var, 0.0) / upper

    @property
    def effective_samples(self) -> float:
        """How many independent estimates the EMA is worth: (sum w)^2 / sum w^2."""
        return self._w**2 / self._w2 if self._w2 > 0 else 0.0

    def standard_errors(self) -> tuple[float, float, float]:
        """Standard errors of the smoothed |G|^2, tr(Sigma) and noise scale.

        From the EMA'd spread of the raw estimates divided by the effective sample size;
        assumes the estimates are independent across steps (parameters drift slowly), so it
        says how noisy the average is, not how far drift has moved the truth. NaN with fewer
        than two observations.
        """
        n = self.effective_samples
        if self.count < 2 or n <= 1.0:
            return (float("nan"),) * 3
        sqr, var = self.grad_sqr, self.grad_var
        v_sqr = max(self._mean("sqr2") - sqr**2, 0.0) * n / (n - 1.0) / n
        v_var = max(self._mean("var2") - var**2, 0.0) * n / (n - 1.0) / n
        cov = (self._mean("cross") - sqr * var) * n / (n - 1.0) / n
        se_sqr, se_var = math.sqrt(v_sqr), math.sqrt(v_var)
        if sqr <= _TINY or var <= 0:
            return se_sqr, se_var, float("inf")
        phi = var / sqr
        rel2 = v_var / var**2 + v_sqr / sqr**2 - 2.0 * cov / (var * sqr)
        return se_sqr, se_var, phi * math.sqrt(max(rel2, 0.0))

    def state_dict(self) -> dict:
        return {
            "decay": self.decay,
            "count": self.count,
            "m": dict(self._m),
            "w": self._w,
            "w2": self._w2,
        }

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.count = int(state["count"])
        self._m = {k: float(v) for k, v in state["m"].items()}
        self._w = float(state["w"])
        self._w2 = float(state["w2"])
