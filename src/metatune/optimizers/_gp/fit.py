"""Model fitting: the output transform, and one warm-started GP fit for every model.

The objective GP and every cost GP are BoTorch SingleTaskGPs on already standardized outputs,
fitted by marginal likelihood. Each fit starts from the hyperparameters of the previous fit under
the same key and takes only a few L-BFGS steps, so successive trials continue one optimization
instead of restarting (a cold fit runs to convergence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

__all__ = ["KERNELS", "GPSpec", "WarmStartFitter", "transform_outputs", "yeo_johnson"]

KERNELS = ("matern52", "rbf")
COLD_FIT_ITERS = 200  # L-BFGS iterations of a fit without a warm start

_YJ_LAMBDAS = np.linspace(-2.0, 2.0, 81)


def yeo_johnson(z: np.ndarray) -> np.ndarray:
    """Yeo-Johnson transform with the maximum-likelihood lambda from a grid (vectorized)."""
    lam = _YJ_LAMBDAS[:, None]
    pos = z >= 0
    with np.errstate(all="ignore"):
        safe = np.where(np.abs(lam) < 1e-8, 1.0, lam)
        safe2 = np.where(np.abs(lam - 2) < 1e-8, 1.0, 2 - lam)
        t_pos = np.where(np.abs(lam) < 1e-8, np.log1p(z), ((1 + z) ** lam - 1) / safe)
        t_neg = np.where(np.abs(lam - 2) < 1e-8, -np.log1p(-z), -((1 - z) ** (2 - lam) - 1) / safe2)
        T = np.where(pos, t_pos, t_neg)
        var = T.var(axis=1)
        llf = -0.5 * len(z) * np.log(var) + (lam[:, 0] - 1) * np.sum(
            np.sign(z) * np.log1p(np.abs(z))
        )
    llf[~np.isfinite(llf)] = -np.inf
    best = int(np.argmax(llf))
    return T[best] if np.isfinite(llf[best]) else z


def transform_outputs(y: np.ndarray, power: bool = True) -> np.ndarray:
    """Standardize, Yeo-Johnson, standardize: a monotone map that tames heavy tails.

    Args:
        y: (n,) raw outputs.
        power: apply the Yeo-Johnson step (needs at least 4 distinct-enough values).
    Returns:
        (n,) transformed outputs with mean 0 and standard deviation 1 (or all 0).
    """
    z = (y - y.mean()) / (y.std() or 1.0)
    if power and len(z) >= 4 and np.ptp(z) > 0:
        z = yeo_johnson(z)
    std = z.std()
    return (z - z.mean()) / (std if std > 0 else 1.0)


@dataclass(frozen=True)
class GPSpec:
    """How to build a SingleTaskGP on standardized outputs (no outcome transform to undo).

    Args:
        kernel: "matern52" or "rbf", both with BoTorch's dimension-scaled priors.
        min_noise: lower bound on the noise variance, with a LogNormal(-9, 2) noise prior (the
            objective GP: objectives are usually deterministic up to small noise); None keeps
            BoTorch's default likelihood (the cost GPs).
        retry_keeps_kernel: when a warm-started fit fails, retry on the kernel it left behind
            (the cost GPs) instead of a fresh one with default hyperparameters (the objective).
    """

    kernel: str = "matern52"
    min_noise: float | None = None
    retry_keeps_kernel: bool = False

    def build(self, X: torch.Tensor, Y: torch.Tensor, covar: Any = None) -> SingleTaskGP:
        """A model on X (n, d) and Y (n, 1) with default hyperparameters, or kernel `covar`."""
        likelihood = None  # BoTorch's default
        if self.min_noise is not None:
            likelihood = GaussianLikelihood(
                noise_prior=LogNormalPrior(loc=-9.0, scale=2.0),
                noise_constraint=GreaterThan(self.min_noise),
            )
        if covar is None:
            covar = get_covar_module_with_dim_scaled_prior(
                ard_num_dims=X.shape[-1], use_rbf_kernel=self.kernel == "rbf"
            )
        return SingleTaskGP(X, Y, likelihood=likelihood, covar_module=covar, outcome_transform=None)


class WarmStartFitter:
    """Fits GPs by marginal likelihood, each from the state of the previous fit under its key.

    Args:
        one_key: keep only the latest key's state (the objective GP: a fit under another key
            starts cold, and a later fit under the first key does too); else one per key.
    """

    def __init__(self, one_key: bool = False) -> None:
        self.one_key = one_key
        self._states: dict[Any, dict[str, torch.Tensor]] = {}
        self._fitted_rows: dict[Any, int] = {}  # rows of the last optimized fit, per key

    def clear(self) -> None:
        """Forget every warm start (after a numerical failure)."""
        self._states.clear()
        self._fitted_rows.clear()

    def reuse(
        self, spec: GPSpec, X: torch.Tensor, Y: torch.Tensor, key: Any
    ) -> SingleTaskGP | None:
        """A model on X, Y with the hyperparameters of the last fit under `key`, not refitted
        (None when there is none): the cheap update between refits."""
        state = self._states.get(key)
        if state is None:
            return None
        model = spec.build(X, Y)
        model.load_state_dict(state, strict=False)
        return model.eval()

    def fit(
        self,
        spec: GPSpec,
        X: torch.Tensor,
        Y: torch.Tensor,
        key: Any,
        warm_iters: int,
        min_growth: float = 0.0,
    ) -> SingleTaskGP:
        """The fitted model on X (n, d) and Y (n, 1), in eval mode; its state is kept for `key`.

        A warm-started fit takes `warm_iters` L-BFGS iterations, a cold one up to 200.
        A fit that fails from the warm start is retried cold; a failing retry raises.
        With `min_growth` > 0, a model whose data grew by less than that fraction since the
        last optimized fit under `key` keeps that fit's hyperparameters on the new data (no
        optimization): for models whose hyperparameters settle early, such as smooth costs.
        """
        fitted = self._fitted_rows.get(key)
        if (
            min_growth > 0
            and fitted is not None
            and fitted <= X.shape[0] < fitted * (1.0 + min_growth)
        ):
            reused = self.reuse(spec, X, Y, key)
            if reused is not None:
                return reused
        model = spec.build(X, Y)
        warm = self._states.get(key)
        if warm is not None:
            model.load_state_dict(warm, strict=False)
        with gpytorch.settings.lazily_evaluate_kernels(False):  # ~35% less overhead per step
            try:
                fit_gpytorch_mll(
                    ExactMarginalLogLikelihood(model.likelihood, model),
                    optimizer_kwargs={
                        "options": {"maxiter": warm_iters if warm else COLD_FIT_ITERS}
                    },
                )
            except Exception:  # a failed fit from the warm start: retry from the defaults
                kept = model.covar_module if spec.retry_keeps_kernel else None
                model = spec.build(X, Y, covar=kept)
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        if self.one_key:
            self._states.clear()
            self._fitted_rows.clear()
        self._states[key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._fitted_rows[key] = int(X.shape[0])
        return model.eval()
