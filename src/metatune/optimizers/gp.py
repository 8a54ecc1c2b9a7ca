"""Bayesian optimization with a BoTorch GP and LogEI (or UCB), tuned for small budgets.

What differs from the plain BoTorch loop, and why:
* outputs are power-transformed (Yeo-Johnson) then standardized, so heavy-tailed objectives
  such as Rosenbrock do not flatten the model around the optimum;
* the noise is constrained low (objectives are usually deterministic up to small noise);
* hyperparameters are warm-started from the previous fit, which makes refitting cheap;
* the acquisition is maximized from the best of many cheap candidates (Sobol points plus local
  perturbations of the best trials), with gradient steps on continuous dimensions only and a
  neighbour search on integers and categoricals, so every suggestion is a valid point;
* running (pending) and failed trials enter as "kriging believer" fantasies, so concurrent
  asks spread out and a failing region is not proposed again.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition import LogExpectedImprovement, UpperConfidenceBound
from botorch.fit import fit_gpytorch_mll
from botorch.generation.gen import gen_candidates_scipy
from botorch.models import SingleTaskGP
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from scipy import stats
from scipy.stats import qmc

from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.optimizers.random import sobol_point
from metatune.space import Categorical, Float, Int, Space
from metatune.trial import Trial, TrialState

_ACQUISITIONS = ("logei", "ucb")


def _transform_outputs(y: np.ndarray) -> np.ndarray:
    """Standardize, Yeo-Johnson, standardize: a monotone map that tames heavy tails."""
    z = (y - y.mean()) / (y.std() or 1.0)
    if len(z) >= 4 and np.ptp(z) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                z, _ = stats.yeojohnson(z)
            except Exception:  # numerical trouble: keep the standardized values
                pass
    std = z.std()
    return (z - z.mean()) / (std if std > 0 else 1.0)


class _Layout:
    """Which model dimensions are continuous, and the discrete moves on the rest."""

    def __init__(self, space: Space) -> None:
        self.space = space
        self.continuous = np.zeros(space.dim, dtype=bool)
        self.int_dims: list[tuple[int, Int]] = []
        self.cat_blocks: list[slice] = []
        for name, p in space.items():
            sl = space.slice_of(name)
            if isinstance(p, Float) or (isinstance(p, Int) and p.n_values > 32):
                self.continuous[sl] = True  # wide integers are searched as reals, then rounded
            elif isinstance(p, Int):
                self.int_dims.append((sl.start, p))
            elif isinstance(p, Categorical):
                self.cat_blocks.append(sl)

    @property
    def has_discrete(self) -> bool:
        return bool(self.int_dims or self.cat_blocks)

    def neighbours(self, x: np.ndarray) -> np.ndarray:
        """Valid points one discrete step away from the valid point `x`."""
        out = []
        for dim, p in self.int_dims:
            k = p.decode([x[dim]])
            for step in (-1, 1):
                if p.low <= k + step <= p.high:
                    y = x.copy()
                    y[dim] = p.encode(k + step)[0]
                    out.append(y)
        for sl in self.cat_blocks:
            cur = int(np.argmax(x[sl]))
            for j in range(sl.stop - sl.start):
                if j != cur:
                    y = x.copy()
                    y[sl] = 0.0
                    y[sl.start + j] = 1.0
                    out.append(y)
        return np.array(out) if out else np.empty((0, len(x)))


@register_optimizer("gp")
class GPOptimizer(Optimizer):
    """GP-based Bayesian optimization (BoTorch SingleTaskGP, LogEI or UCB).

    Args:
        n_startup_trials: Sobol trials before the GP takes over (default: 10, at most
            enough for 2 x dimensions + 2 when the space is small).
        acquisition: "logei" (default) or "ucb".
        ucb_beta: exploration weight of UCB.
        n_candidates: Sobol candidates scored per suggestion.
        n_restarts: candidates refined by gradient steps.
        min_noise: lower bound on the GP noise variance (on standardized outputs).
    """

    def __init__(
        self,
        n_startup_trials: int | None = None,
        acquisition: str = "logei",
        ucb_beta: float = 2.0,
        n_candidates: int = 1024,
        n_restarts: int = 6,
        min_noise: float = 1e-6,
    ) -> None:
        if n_startup_trials is not None and (
            not isinstance(n_startup_trials, int) or n_startup_trials < 1
        ):
            raise ValueError(f"n_startup_trials must be a positive integer, got {n_startup_trials!r}")
        if acquisition not in _ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {_ACQUISITIONS}, got {acquisition!r}")
        if not ucb_beta > 0:
            raise ValueError(f"ucb_beta must be positive, got {ucb_beta!r}")
        if not (isinstance(n_candidates, int) and n_candidates >= 16):
            raise ValueError(f"n_candidates must be an integer >= 16, got {n_candidates!r}")
        if not (isinstance(n_restarts, int) and n_restarts >= 1):
            raise ValueError(f"n_restarts must be a positive integer, got {n_restarts!r}")
        if not min_noise > 0:
            raise ValueError(f"min_noise must be positive, got {min_noise!r}")
        self.n_startup_trials = n_startup_trials
        self.acquisition = acquisition
        self.ucb_beta = float(ucb_beta)
        self.n_candidates = n_candidates
        self.n_restarts = n_restarts
        self.min_noise = float(min_noise)
        self._warm_state: dict[str, torch.Tensor] | None = None
        self._warm_key: Any = None

    # -------------------------------------------------------------------------------------
    def _startup(self, space: Space) -> int:
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return min(10, 2 * len(space) + 2)

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        space = context.space
        done = self.completed(history)
        if len(done) < self._startup(space):
            return sobol_point(space, context.seed, context.trial_number)
        gen = torch.Generator().manual_seed((context.seed * 1_000_003 + context.trial_number) % 2**63)
        rng = np.random.default_rng([context.seed, context.trial_number])
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
            x = self._suggest_point(space, done, history, pending, context.sign, rng)
        params = space.decode(x)
        seen = {repr(sorted(t.params.items())) for t in list(history) + list(pending)}
        if repr(sorted(params.items())) in seen:  # never repeat a point exactly: explore instead
            params = space.sample(rng)
        return params

    def _fit(self, X: torch.Tensor, Y: torch.Tensor, key: Any) -> SingleTaskGP:
        likelihood = GaussianLikelihood(
            noise_prior=LogNormalPrior(loc=-9.0, scale=2.0),
            noise_constraint=GreaterThan(self.min_noise),
        )
        model = SingleTaskGP(X, Y, likelihood=likelihood)
        if self._warm_state is not None and self._warm_key == key:
            model.load_state_dict(self._warm_state, strict=False)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": 100}})
        except Exception:
            # A failed fit from the warm start: retry from the default initialization.
            model = SingleTaskGP(X, Y, likelihood=GaussianLikelihood(
                noise_prior=LogNormalPrior(loc=-9.0, scale=2.0),
                noise_constraint=GreaterThan(self.min_noise),
            ))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        self._warm_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._warm_key = key
        return model.eval()

    def _suggest_point(
        self,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        pending: Sequence[Trial],
        sign: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        layout = _Layout(space)
        X_np = np.stack([space.encode(t.params) for t in done])
        y = np.array([sign * float(t.value) for t in done])  # a loss to minimize
        z = -_transform_outputs(y)  # BoTorch maximizes
        X = torch.tensor(X_np, dtype=torch.float64)
        Y = torch.tensor(z, dtype=torch.float64).unsqueeze(-1)
        model = self._fit(X, Y, key=(space.dim,))
        best_f = Y.max()

        # Running and failed trials: condition on the model's own mean there (kriging believer).
        others = [t for t in pending if t.params] + [
            t for t in history if t.state is TrialState.FAILED and t.params
        ]
        if others:
            Xo = torch.tensor(np.stack([space.encode(t.params) for t in others]), dtype=torch.float64)
            with torch.no_grad():
                Yo = model.posterior(Xo).mean
            fantasy = SingleTaskGP(
                torch.cat([X, Xo]), torch.cat([Y, Yo]), likelihood=GaussianLikelihood(
                    noise_constraint=GreaterThan(self.min_noise)
                )
            )
            fantasy.load_state_dict(model.state_dict(), strict=False)
            model = fantasy.eval()

        if self.acquisition == "ucb":
            acqf = UpperConfidenceBound(model, beta=self.ucb_beta)
        else:
            acqf = LogExpectedImprovement(model, best_f=best_f)
        return self._maximize(acqf, space, layout, X_np, z, rng)

    def _candidates(
        self, space: Space, layout: _Layout, X_np: np.ndarray, z: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Valid points to score: Sobol points plus perturbations of the best observed points."""
        sobol = qmc.Sobol(d=len(space), scramble=True, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            U = sobol.random(self.n_candidates)
        cands = [space.encode(space.from_uniform(np.minimum(u, 1 - 1e-12))) for u in U]
        top = np.argsort(-z)[: min(5, len(z))]
        n_local = max(self.n_candidates // 4, 16)
        for i in range(n_local):
            x = X_np[top[i % len(top)]].copy()
            scale = 10 ** rng.uniform(-3, -1)
            x[layout.continuous] += rng.normal(0, scale, layout.continuous.sum())
            x = np.clip(x, 0, 1)
            if layout.has_discrete and rng.random() < 0.5:
                nb = layout.neighbours(space.encode(space.decode(x)))
                if len(nb):
                    x = nb[rng.integers(len(nb))]
            cands.append(x)
        return space.round(np.array(cands))

    def _maximize(
        self,
        acqf: Any,
        space: Space,
        layout: _Layout,
        X_np: np.ndarray,
        z: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        C = torch.tensor(self._candidates(space, layout, X_np, z, rng), dtype=torch.float64)
        with torch.no_grad():
            vals = acqf(C.unsqueeze(1))
        order = torch.argsort(vals, descending=True)[: self.n_restarts]
        starts = C[order].unsqueeze(1)  # (restarts, 1, d)
        best_x, best_v = C[order[0]].clone(), vals[order[0]].item()

        if layout.continuous.any():
            cont = torch.tensor(layout.continuous)
            lower = torch.where(cont, torch.zeros_like(starts), starts)
            upper = torch.where(cont, torch.ones_like(starts), starts)
            try:
                xs, vs = gen_candidates_scipy(
                    starts, acqf, lower_bounds=lower, upper_bounds=upper,
                    options={"maxiter": 50},
                )
                xs = torch.tensor(space.round(xs.squeeze(1).detach().numpy()), dtype=torch.float64)
                with torch.no_grad():
                    vs = acqf(xs.unsqueeze(1))
                i = int(torch.argmax(vs))
                if vs[i].item() > best_v:
                    best_x, best_v = xs[i].clone(), vs[i].item()
            except Exception:  # keep the best raw candidate if the gradient step fails
                pass

        if layout.has_discrete:  # hill-climb over integer and categorical neighbours
            for _ in range(10):
                nb = layout.neighbours(best_x.numpy())
                if not len(nb):
                    break
                nbt = torch.tensor(nb, dtype=torch.float64)
                with torch.no_grad():
                    nv = acqf(nbt.unsqueeze(1))
                j = int(torch.argmax(nv))
                if nv[j].item() <= best_v:
                    break
                best_x, best_v = nbt[j].clone(), nv[j].item()
        if not math.isfinite(best_v):
            return C[0].numpy()
        return best_x.numpy()
