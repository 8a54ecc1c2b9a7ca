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
from collections.abc import Callable, Mapping
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
    "CostAwareAcquisition",
    "CostTerm",
    "FixedFeatures",
    "cooling_eta",
    "kriging_believer",
    "log_expected_inverse_cost",
    "objective_acquisition",
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
    overhead: a known cost every trial pays on top of its stages. Returns (n,). Everything stays
    in log space: log C = logsumexp_k(log c_k), and log E[1/C] = logsumexp_s(-log C_s) - log N.
    """
    logc = mu.unsqueeze(1) + sigma.unsqueeze(1) * z.unsqueeze(0)  # (n, N, K)
    if overhead > 0:
        fixed = torch.full((*logc.shape[:-1], 1), math.log(overhead), dtype=logc.dtype)
        logc = torch.cat([logc, fixed], dim=-1)
    log_total = torch.logsumexp(logc, dim=-1)  # (n, N)
    return torch.logsumexp(-log_total, dim=-1) - math.log(z.shape[0])


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

    def _log_inverse(self, X: torch.Tensor, depth: int) -> torch.Tensor:
        n, K = X.shape[0], len(self.models)
        mu = torch.full((n, K), self.log_eps, dtype=X.dtype)
        sigma = torch.zeros((n, K), dtype=X.dtype)
        for k in range(min(depth, K), K):
            mu[:, k], sigma[:, k] = self.models[k].predict(X)
        return log_expected_inverse_cost(mu, sigma, self.z.to(X.dtype), self.overhead)

    def __call__(self, X: torch.Tensor, depth: int = 0) -> torch.Tensor:
        """(n,) at encoded points X (n, d) that reuse the first `depth` stages from the cache."""
        v = self._log_inverse(X, depth)
        if self.memo_cooling or depth == 0:
            return self.eta * v
        fresh = self._log_inverse(X, 0)
        return self.eta * fresh + (v - fresh)


# Wrappers ----------------------------------------------------------------------------------------
class CostAwareAcquisition:
    """log EI(x) + cost(x; depth): the objective term plus the cost term (when there is one)."""

    def __init__(self, objective: Acquisition, cost: CostTerm | None, depth: int = 0) -> None:
        self.objective = objective
        self.cost = cost
        self.depth = depth

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        v = self.objective(X)
        if self.cost is not None:
            v = v + self.cost(X[:, 0, :], self.depth)
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

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        if len(self.columns):
            X = X.clone()
            X[..., self.columns] = self.values
        return self.acquisition(X)
