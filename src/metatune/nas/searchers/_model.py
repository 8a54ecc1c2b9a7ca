"""The GP of `nas-bo`: BoTorch's SingleTaskGP with one length scale, fitted warm."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from botorch.models import SingleTaskGP
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.priors import LogNormalPrior

from metatune.optimizers._gp.acquisition import kriging_believer, objective_acquisition
from metatune.optimizers._gp.fit import GPSpec, WarmStartFitter, transform_outputs

__all__ = ["IsotropicGPSpec", "fit_isotropic_gp", "log_ei"]

_WARM_ITERS = 20


class IsotropicGPSpec(GPSpec):
    """A Matern-5/2 kernel with one length scale, its prior scaled with the dimension as
    BoTorch's default is (so a wide binary encoding starts from a sensible distance scale)."""

    def build(self, X: torch.Tensor, Y: torch.Tensor, covar: Any = None) -> SingleTaskGP:
        if covar is None:
            d = X.shape[-1]
            covar = ScaleKernel(
                MaternKernel(
                    nu=2.5,
                    lengthscale_prior=LogNormalPrior(
                        math.sqrt(2) + 0.5 * math.log(d), math.sqrt(3)
                    ),
                )
            )
        return super().build(X, Y, covar=covar)


_SPECS = {"one": IsotropicGPSpec(min_noise=1e-6), "per-column": GPSpec(min_noise=1e-6)}


def fit_isotropic_gp(
    X: np.ndarray,
    y: np.ndarray,
    X_running: np.ndarray,
    fitter: WarmStartFitter | None,
    refit: bool = True,
    lengthscales: str = "one",
    key: object = "nas-bo",
) -> tuple[SingleTaskGP, torch.Tensor, WarmStartFitter]:
    """The GP on (X, transformed y), conditioned on its own mean at the running points, and
    the best transformed value (LogEI's incumbent). Without `refit`, the last fit's
    hyperparameters are kept (when there was one)."""
    fitter = fitter or WarmStartFitter(one_key=True)
    spec = _SPECS[lengthscales]
    Xt = torch.from_numpy(X).double()
    Yt = torch.from_numpy(transform_outputs(y)).double().unsqueeze(-1)
    model = None if refit else fitter.reuse(spec, Xt, Yt, key=key)
    if model is None:
        try:
            model = fitter.fit(spec, Xt, Yt, key=key, warm_iters=_WARM_ITERS)
        except Exception:  # a numerical failure: start the next fit cold
            fitter.clear()
            model = fitter.fit(spec, Xt, Yt, key=key, warm_iters=_WARM_ITERS)
    if len(X_running):
        model = kriging_believer(model, spec, Xt, Yt, torch.from_numpy(X_running).double())
    return model, Yt.max(), fitter


def log_ei(model: SingleTaskGP, best_f: torch.Tensor, X: np.ndarray) -> np.ndarray:
    """LogEI over `best_f` at the points X (n, d), scored in chunks."""
    acq = objective_acquisition(model, best_f)
    with torch.no_grad():
        out = []
        Xt = torch.from_numpy(X).double().unsqueeze(1)
        for chunk in torch.split(Xt, 1024):
            out.append(acq(chunk))
    return torch.cat(out).numpy()
