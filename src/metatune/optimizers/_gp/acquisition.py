"""Acquisition terms, each a small callable on encoded candidates X of shape (n, 1, d).

* the objective term: LogEI or UCB on the fitted GP, with running and failed trials entered as
  "kriging believer" fantasies (the model's own mean there), so concurrent asks spread out and a
  failing region is not proposed again;
* the cost term ``eta * log E[1/C(x; d)]`` (EI x E[1/C]^eta without overflow), with E[1/C]
  estimated by quasi-Monte-Carlo over Sobol normal samples of the log costs, stages 1..d served
  from the cache at a small epsilon, and eta cooled as the budget is spent;
* `FixedFeatures` (BoTorch's FixedFeatureAcquisitionFunction, on full-width X) to search with
  some columns held at given values, and `CostAwareAcquisition`, the sum of the two terms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from botorch.acquisition import (
    AcquisitionFunction,
    LogExpectedImprovement,
    UpperConfidenceBound,
)
from botorch.models import SingleTaskGP

from metatune.optimizers._gp.cost_models import LogCostModel
from metatune.optimizers._gp.fit import GPSpec
from metatune.space import Space

__all__ = [
    "ACQUISITIONS",
    "Acquisition",
    "BatchScore",
    "CostAwareAcquisition",
    "CostTerm",
    "FixedFeatures",
    "cooling_eta",
    "kriging_believer",
    "log_expected_inverse_cost",
    "objective_acquisition",
    "score_together",
]

ACQUISITIONS = ("logei", "ucb")

Acquisition = Callable[[torch.Tensor], torch.Tensor]
"""Scores encoded candidates X (n, 1, d) as (n,): higher is better."""


# The objective term ------------------------------------------------------------------------------
def kriging_believer(
    model: SingleTaskGP, spec: GPSpec, X: torch.Tensor, Y: torch.Tensor, X_others: torch.Tensor
) -> SingleTaskGP:
    """`model` (fitted on X (n, d), Y (n, 1)) conditioned on its own mean at X_others (m, d),
    with the same hyperparameters."""
    with torch.no_grad():
        Y_others = model.posterior(X_others).mean
    fantasy = spec.build(torch.cat([X, X_others]), torch.cat([Y, Y_others]))
    fantasy.load_state_dict(model.state_dict(), strict=False)
    return fantasy.eval()


def objective_acquisition(
    model: SingleTaskGP, best_f: torch.Tensor, kind: str = "logei", ucb_beta: float = 2.0
) -> AcquisitionFunction:
    """LogEI over `best_f` or UCB with exploration weight `ucb_beta`, on a model to maximize."""
    if kind == "ucb":
        return UpperConfidenceBound(model, beta=ucb_beta)
    return LogExpectedImprovement(model, best_f=best_f)


# The cost term -----------------------------------------------------------------------------------
def cooling_eta(total: float | None, spent: float, spent_at_warmup: float) -> float:
    """CArBO/EEIPU cost cooling: (B - spent) / (B - B0), clipped to [0, 1]; 1 without a budget."""
    if total is None or not math.isfinite(float(total)):
        return 1.0
    denom = float(total) - float(spent_at_warmup)
    if denom <= 0:
        return 0.0
    return float(min(max((float(total) - float(spent)) / denom, 0.0), 1.0))


def log_expected_inverse_cost(
    mu: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor, overhead: float = 0.0
) -> torch.Tensor:
    """log E[1 / (overhead + sum_k c_k)] for independent log-normal stage costs, by quasi-MC.

    mu, sigma: (n, K) mean and standard deviation of log c_k (sigma 0 for a known cost, e.g. the
    epsilon of a cached stage); z: (N, K) standard normal samples shared by all n candidates;
    overhead: a known cost every trial pays on top of its stages. Returns (n,). Stable in log
    space without a logsumexp over the stages (the costliest step of an EEIPU ask): each row is
    scaled by m >= its largest sampled log cost, so C = e^m S with S = sum_k e^(log c_k - m) in
    (0, K + 1], and log E[1/C] = logsumexp_s(-log S_s) - log N - m.
    """
    zmax = z.abs().amax(0)  # (K,)
    m = (mu + sigma * zmax).amax(-1, keepdim=True)  # (n, 1)
    if overhead > 0:
        m = torch.clamp_min(m, math.log(overhead))
    shifted = (mu - m).unsqueeze(1) + sigma.unsqueeze(1) * z.unsqueeze(0)  # (n, N, K), <= 0
    S = torch.exp(shifted).sum(-1)  # (n, N)
    if overhead > 0:
        S = S + torch.exp(math.log(overhead) - m)
    log_S = torch.log(S.clamp_min(1e-300))
    return torch.logsumexp(-log_S, dim=-1) - math.log(z.shape[0]) - m[:, 0]


@dataclass
class CostTerm:
    """eta * log E[1/C(x; d)], with stages 1..d served from the cache at cost epsilon.

    With ``memo_cooling`` False only the cost of running x from scratch is cooled; the saving from
    the cache, log E[1/C(x; d)] - log E[1/C(x; 0)], is added at full weight.

    Args:
        models: one log-cost model per stage (or one for the whole trial).
        eta: the cooling weight in [0, 1].
        log_eps: log of the cost charged to a cached stage.
        z: (N, K) standard normal samples, K = len(models).
        overhead: a known cost every trial pays on top of its stages.
    """

    models: list[LogCostModel]
    eta: float
    log_eps: float
    z: torch.Tensor
    overhead: float = 0.0
    memo_cooling: bool = True

    def _log_inverse(self, X: torch.Tensor, depth: int | torch.Tensor) -> torch.Tensor:
        n, K = X.shape[0], len(self.models)
        mu = torch.full((n, K), self.log_eps, dtype=X.dtype)
        sigma = torch.zeros((n, K), dtype=X.dtype)
        if isinstance(depth, int):
            for k in range(min(depth, K), K):
                mu[:, k], sigma[:, k] = self.models[k].predict(X)
        else:  # a depth per row: stage k runs (is predicted) where the row's depth <= k
            for k in range(min(int(depth.min()), K), K):
                runs = depth <= k
                m, s = self.models[k].predict(X)
                mu[:, k] = torch.where(runs, m, mu[:, k])
                sigma[:, k] = torch.where(runs, s, sigma[:, k])
        return log_expected_inverse_cost(mu, sigma, self.z.to(X.dtype), self.overhead)

    def __call__(self, X: torch.Tensor, depth: int | torch.Tensor = 0) -> torch.Tensor:
        """(n,) at encoded points X (n, d) that reuse the first `depth` stages from the cache
        (an int, or a (n,) tensor of depths, one per row)."""
        v = self._log_inverse(X, depth)
        if self.memo_cooling or (isinstance(depth, int) and depth == 0):
            return self.eta * v
        fresh = self._log_inverse(X, 0)
        return self.eta * fresh + (v - fresh)


# Wrappers ----------------------------------------------------------------------------------------
class CostAwareAcquisition:
    """log EI(x) + weight * cost(x; depth): the objective term plus the cost term (when there is
    one); weight 0 is the cost-blind objective term, searched next to the others."""

    def __init__(
        self, objective: Acquisition, cost: CostTerm | None, depth: int = 0, weight: float = 1.0
    ) -> None:
        self.objective = objective
        self.cost = cost
        self.depth = depth
        self.weight = float(weight)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        v = self.objective(X)
        if self.cost is not None and self.weight:
            v = v + self.weight * self.cost(X[:, 0, :], self.depth)
        return v


class FixedFeatures:
    """`acquisition` with some columns of every candidate overwritten by fixed values.

    Unlike BoTorch's FixedFeatureAcquisitionFunction it takes full-width X (n, 1, d), so the
    search runs unchanged and simply cannot move the fixed columns.
    """

    def __init__(self, acquisition: Acquisition, columns: torch.Tensor, values: torch.Tensor):
        self.acquisition = acquisition
        self.columns = columns
        self.values = values

    @classmethod
    def at(cls, acquisition: Acquisition, space: Space, params: Mapping[str, Any]) -> FixedFeatures:
        """Hold the encoding of the parameter values `params` fixed."""
        idx: list[int] = []
        val: list[float] = []
        for name, value in params.items():
            sl = space.slice_of(name)
            idx.extend(range(sl.start, sl.stop))
            val.extend(space[name].encode(value))
        return cls(
            acquisition,
            torch.tensor(idx, dtype=torch.long),
            torch.tensor(val, dtype=torch.float64),
        )

    def fix(self, X: torch.Tensor) -> torch.Tensor:
        """X with the fixed columns overwritten (a copy; X itself when none are fixed)."""
        if len(self.columns):
            X = X.clone()
            X[..., self.columns] = self.values
        return X

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return self.acquisition(self.fix(X))


BatchScore = Callable[[Sequence[torch.Tensor]], list[torch.Tensor]]
"""Scores one batch of candidates (n_i, 1, d) per search, returning (n_i,) for each."""


def score_together(acquisitions: Sequence[Acquisition]) -> BatchScore:
    """One scoring function for the batches of several searches.

    When every acquisition is the same objective and cost term (`CostAwareAcquisition`, maybe
    under `FixedFeatures`) at its own fixed values and cached depth, as in EEIPU's prefix pool,
    all rows are scored in one call: the objective's posterior is computed once for all of
    them and the cost term once with a depth per row, instead of once per search (most of the
    time of a small batch is the call, not the rows). Otherwise each batch is scored by its own
    acquisition.
    """
    parts = [_unwrap(a) for a in acquisitions]
    costed = [a for _, a in parts if isinstance(a, CostAwareAcquisition)]
    shared = (
        len(parts) > 1
        and len(costed) == len(parts)
        and all(a.objective is costed[0].objective and a.cost is costed[0].cost for a in costed)
    )
    if not shared:
        return lambda Xs: [
            a(X) if len(X) else X.new_empty(0) for a, X in zip(acquisitions, Xs, strict=True)
        ]
    first = costed[0]
    depths = [a.depth for a in costed]
    weights = [a.weight for a in costed]

    def score(Xs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        fixed = [f.fix(X) if f is not None else X for (f, _), X in zip(parts, Xs, strict=True)]
        sizes = [X.shape[0] for X in fixed]
        X_all = torch.cat(fixed)
        v = first.objective(X_all)
        if first.cost is not None and any(weights):
            n = torch.tensor(sizes)
            depth = torch.repeat_interleave(torch.tensor(depths), n)
            weight = torch.repeat_interleave(torch.tensor(weights, dtype=v.dtype), n)
            v = v + weight * first.cost(X_all[:, 0, :], depth)
        return list(torch.split(v, sizes))

    return score


def _unwrap(a: Acquisition) -> tuple[FixedFeatures | None, Acquisition]:
    return (a, a.acquisition) if isinstance(a, FixedFeatures) else (None, a)
