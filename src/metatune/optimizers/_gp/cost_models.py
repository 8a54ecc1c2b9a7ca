"""Cost models: GPs on log cost, fitted to the cost records of finished trials.

Either one GP on the log total cost of trials that ran from scratch, or one GP per stage on the
log cost of the stage's fresh runs (a cache hit says nothing about what the stage costs). A
stage with too few records gets a constant model from the records there are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.models import SingleTaskGP

from metatune.optimizers._gp.fit import GPSpec, WarmStartFitter
from metatune.optimizers._gp.history import stage_records, trial_cost
from metatune.pipeline.context import PipelineContext
from metatune.space import Space
from metatune.trial import Trial

__all__ = [
    "COST_INPUTS",
    "LogCostModel",
    "cache_epsilon",
    "fit_cost_model",
    "stage_cost_models",
    "total_cost_model",
]

COST_INPUTS = ("own", "prefix")
_COST_GP = GPSpec(kernel="rbf", retry_keeps_kernel=True)  # BoTorch's default kernel and likelihood
_MIN_RECORDS = 3  # fewer fresh records than this: no GP


class LogCostModel:
    """Predicts mean and standard deviation of log cost on some columns of the model encoding.

    The acquisition search asks for thousands of predictions per suggestion, one small batch at
    a time, and BoTorch's general posterior path costs milliseconds per call. An exact GP with a
    constant mean, a Gaussian likelihood and fixed training data has a closed-form posterior, so
    its Cholesky factor and weights are computed once here and a prediction is one kernel
    evaluation and one triangular solve (the same numbers as ``model.posterior``).

    Args:
        cols: (k,) columns of the model encoding the GP sees.
        model: the GP on standardized log cost, or None for a constant model.
        y_mean, y_std: undo the standardization (the constant model's mean and spread).
    """

    def __init__(
        self,
        cols: np.ndarray,
        model: SingleTaskGP | None,
        y_mean: float,
        y_std: float,
    ) -> None:
        self.cols = torch.as_tensor(cols, dtype=torch.long)
        self.model = model
        self.y_mean = y_mean
        self.y_std = y_std
        self._closed_form: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None
        self._closed_form = self._factorize(model) if model is not None else None

    @staticmethod
    def _factorize(
        model: SingleTaskGP,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(train X, Cholesky factor of K + noise, weights, constant mean), or None when the
        model is not the plain kind this shortcut is exact for (then `posterior` is used)."""
        if (
            getattr(model, "input_transform", None) is not None
            or getattr(model, "outcome_transform", None) is not None
            or not isinstance(model.mean_module, gpytorch.means.ConstantMean)
            or not isinstance(model.likelihood, gpytorch.likelihoods.GaussianLikelihood)
        ):
            return None
        with torch.no_grad():
            X = model.train_inputs[0]
            y = model.train_targets
            c = model.mean_module.constant.reshape(())
            K = model.covar_module(X).to_dense()
            K = K + model.likelihood.noise.reshape(()) * torch.eye(K.shape[-1], dtype=K.dtype)
            L, info = torch.linalg.cholesky_ex(K)
            if int(info) != 0:
                return None
            alpha = torch.cholesky_solve((y - c).unsqueeze(-1), L)
        return X, L, alpha, c

    def predict(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of log cost, each (n,), at the encoded points X (n, d)."""
        n = X.shape[0]
        if self.model is None:
            return (
                torch.full((n,), self.y_mean, dtype=X.dtype),
                torch.full((n,), self.y_std, dtype=X.dtype),
            )
        Xq = X[:, self.cols]
        if self._closed_form is not None:
            X_train, L, alpha, c = self._closed_form
            # differentiable in Xq: the acquisition's L-BFGS polish takes gradients through it
            K_qx = self.model.covar_module(Xq, X_train).to_dense()  # (n, m)
            prior = self.model.covar_module(Xq, diag=True)  # (n,)
            mean = c + (K_qx @ alpha).reshape(n)
            v = torch.linalg.solve_triangular(L, K_qx.T, upper=False)  # (m, n)
            std = (prior - (v * v).sum(0)).clamp_min(0.0).sqrt()
        else:
            post = self.model.posterior(Xq.unsqueeze(1))
            mean = post.mean.reshape(n)
            std = post.variance.clamp_min(0.0).sqrt().reshape(n)
        return self.y_mean + self.y_std * mean, self.y_std * std


def fit_cost_model(
    fitter: WarmStartFitter,
    key: Any,
    X_full: np.ndarray,
    y: np.ndarray,
    cols: np.ndarray,
    fit_iters: int,
    refit_growth: float = 0.0,
) -> LogCostModel:
    """A GP on standardized log cost `y` (n,) over columns `cols` of `X_full` (n, d), warm-started
    (`fit_iters` L-BFGS steps) from the previous fit under `key` and the number of columns, or
    with that fit's hyperparameters while the data has grown by less than `refit_growth`
    since (see `WarmStartFitter.fit`); a constant model when y is constant."""
    y_mean, y_std = float(y.mean()), float(y.std())
    if y_std < 1e-9:
        return LogCostModel(cols, None, y_mean, 0.0)
    X = torch.tensor(X_full[:, cols], dtype=torch.float64)
    Y = torch.tensor((y - y_mean) / y_std, dtype=torch.float64).unsqueeze(-1)
    model = fitter.fit(
        _COST_GP,
        X,
        Y,
        key=(key, X.shape[-1]),
        warm_iters=fit_iters,
        min_growth=refit_growth,
    )
    return LogCostModel(cols, model, y_mean, y_std)


def total_cost_model(
    fitter: WarmStartFitter,
    space: Space,
    done: Sequence[Trial],
    fit_iters: int,
    refit_growth: float = 0.0,
) -> list[LogCostModel] | None:
    """One GP on log total cost over every parameter, from trials that ran from scratch; None
    with fewer than 3 such trials."""
    rows, ys = [], []
    for t in done:
        c = trial_cost(t)
        if c is None or c <= 0 or any(r.get("cache_hit") for r in stage_records(t)):
            continue  # a partly cached run does not say what a fresh run costs
        rows.append(space.encode(t.params))
        ys.append(math.log(c))
    if len(ys) < _MIN_RECORDS:
        return None
    cols = np.arange(space.dim)
    X = np.stack(rows)
    return [fit_cost_model(fitter, ("total",), X, np.array(ys), cols, fit_iters, refit_growth)]


def stage_cost_models(
    fitter: WarmStartFitter,
    space: Space,
    done: Sequence[Trial],
    pipe: PipelineContext,
    fit_iters: int,
    inputs: str = "own",
    refit_growth: float = 0.0,
) -> list[LogCostModel] | None:
    """One model of log cost per stage of `pipe`, or None when no trial recorded a stage cost.

    Args:
        inputs: what stage k's GP sees: "own" (stage k's parameters) or "prefix" (those of
            stages 1..k: a training phase costs more on a data set an earlier stage enlarged).
        refit_growth: see `fit_cost_model`.
    """
    data: list[tuple[list[np.ndarray], list[float]]] = [([], []) for _ in pipe.stages]
    any_cost = False
    for t in done:
        recs = stage_records(t)
        if not recs:
            continue
        enc = space.encode(t.params)
        for k, r in enumerate(recs[: pipe.n_stages]):
            c = r.get("cost")
            if r.get("cache_hit") or not isinstance(c, (int, float)) or not c > 0:
                continue  # cache hits do not measure what the stage costs
            if not math.isfinite(c):
                continue
            data[k][0].append(enc)
            data[k][1].append(math.log(c))
            any_cost = True
    if not any_cost:
        return None
    all_y = [y for _, ys in data for y in ys]
    models = []
    for k in range(pipe.n_stages):
        upto = pipe.stages[: k + 1] if inputs == "prefix" else pipe.stages[k : k + 1]
        params = [p for st in upto for p in st.params]
        cols = (
            np.concatenate(
                [np.arange(space.slice_of(p).start, space.slice_of(p).stop) for p in params]
            )
            if params
            else np.zeros(0, dtype=int)
        )
        rows, ys = data[k]
        if len(ys) < _MIN_RECORDS or len(cols) == 0:
            ref = ys if ys else all_y
            mean = float(np.mean(ref))
            spread = float(np.std(ref)) if len(ref) > 1 else 0.0
            models.append(LogCostModel(cols, None, mean, spread))
        else:
            X, y = np.stack(rows), np.array(ys)
            models.append(fit_cost_model(fitter, ("stage", k), X, y, cols, fit_iters, refit_growth))
    return models


def cache_epsilon(done: Sequence[Trial]) -> float:
    """The cost of a cached stage: the median recorded cost of cache hits, or 1% of the
    cheapest stage's median fresh cost before any hit (1e-3 without records)."""
    hits, fresh = [], []
    for t in done:
        for k, r in enumerate(stage_records(t)):
            c = r.get("cost")
            if isinstance(c, (int, float)) and math.isfinite(c) and c > 0:
                (hits if r.get("cache_hit") else fresh).append((k, float(c)))
    if hits:
        return float(np.median([c for _, c in hits]))
    if fresh:
        per_stage: dict[int, list[float]] = {}
        for k, c in fresh:
            per_stage.setdefault(k, []).append(c)
        return 0.01 * min(float(np.median(v)) for v in per_stage.values())
    return 1e-3
