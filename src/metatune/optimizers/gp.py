"""Bayesian optimization with a BoTorch GP and LogEI (or UCB), tuned for small budgets.

What differs from the plain BoTorch loop, and why:
* outputs are power-transformed (Yeo-Johnson) then standardized, so heavy-tailed objectives
  such as Rosenbrock do not flatten the model around the optimum;
* the noise is constrained low (objectives are usually deterministic up to small noise);
* hyperparameters are warm-started from the previous fit and refined by a few L-BFGS steps, so
  successive trials continue one optimization of the marginal likelihood instead of restarting;
* the acquisition is maximized by a multi-start local search: Sobol points and perturbations of
  the best trials are scored in one batched posterior call, then the 8 best are refined in
  rounds of shrinking steps (each round one batched call). Through GPyTorch a gradient step
  costs about as much as scoring a thousand points, so gradient polishing (`polish_iters`) is
  optional. Integers and categoricals move only to valid neighbours, so every suggestion is a
  valid point and categoricals (one-hot) are never treated as ordered;
* running (pending) and failed trials enter as "kriging believer" fantasies, so concurrent
  asks spread out and a failing region is not proposed again.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.acquisition import LogExpectedImprovement, UpperConfidenceBound
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior
from scipy.optimize import minimize
from scipy.stats import qmc

from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.optimizers.random import sobol_point
from metatune.space import Categorical, Float, Int, Space
from metatune.trial import Trial, TrialState

log = logging.getLogger("metatune")

_ACQUISITIONS = ("logei", "ucb")
_KERNELS = ("matern52", "rbf")
_OUTPUT_TRANSFORMS = ("yeo-johnson", "standardize")


# Step sizes (in the unit cube) of the local-search rounds around the best acquisition values:
# each round scores 8 x 16 perturbed points in one batched posterior call.
_REFINE_SCALES = (0.05, 0.01, 0.002, 4e-4, 1e-4)
_YJ_LAMBDAS = np.linspace(-2.0, 2.0, 81)


def _yeo_johnson(z: np.ndarray) -> np.ndarray:
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


def _transform_outputs(y: np.ndarray, power: bool = True) -> np.ndarray:
    """Standardize, Yeo-Johnson, standardize: a monotone map that tames heavy tails."""
    z = (y - y.mean()) / (y.std() or 1.0)
    if power and len(z) >= 4 and np.ptp(z) > 0:
        z = _yeo_johnson(z)
    std = z.std()
    return (z - z.mean()) / (std if std > 0 else 1.0)


def suggestion_seeds(context: SuggestContext) -> tuple[int, np.random.Generator]:
    """The torch seed and numpy generator of one suggestion, functions of (study seed, trial
    number) only, so a suggestion does not depend on which process or in which order it runs."""
    gen = torch.Generator().manual_seed((context.seed * 1_000_003 + context.trial_number) % 2**63)
    torch_seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    return torch_seed, np.random.default_rng([context.seed, context.trial_number])


def is_repeat(params: dict[str, Any], history: Sequence[Trial], pending: Sequence[Trial]) -> bool:
    """True when `params` equals the parameters of a finished or running trial exactly."""
    key = repr(sorted(params.items()))
    return any(repr(sorted(t.params.items())) == key for t in (*history, *pending))


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
        n_restarts: best candidates polished by L-BFGS-B when `polish_iters` > 0.
        polish_iters: L-BFGS-B iterations on the acquisition after the local search (0: none).
        fit_iters: L-BFGS iterations of a warm-started hyperparameter fit (a cold fit runs to
            convergence).
        min_noise: lower bound on the GP noise variance (on standardized outputs).
        kernel: "matern52" (default) or "rbf", both with BoTorch's dimension-scaled priors.
        output_transform: "yeo-johnson" (default) or "standardize".

    If the GP cannot be fitted (numerical failure), the trial gets a Sobol point and a warning
    is logged, so a study never stops because of the model.
    """

    def __init__(
        self,
        n_startup_trials: int | None = None,
        acquisition: str = "logei",
        ucb_beta: float = 2.0,
        n_candidates: int = 1024,
        n_restarts: int = 3,
        polish_iters: int = 0,
        fit_iters: int = 6,
        min_noise: float = 1e-8,
        kernel: str = "matern52",
        output_transform: str = "yeo-johnson",
    ) -> None:
        if n_startup_trials is not None and (
            not isinstance(n_startup_trials, int) or n_startup_trials < 1
        ):
            raise ValueError(
                f"n_startup_trials must be a positive integer, got {n_startup_trials!r}"
            )
        if acquisition not in _ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {_ACQUISITIONS}, got {acquisition!r}")
        if not ucb_beta > 0:
            raise ValueError(f"ucb_beta must be positive, got {ucb_beta!r}")
        if not (isinstance(n_candidates, int) and n_candidates >= 16):
            raise ValueError(f"n_candidates must be an integer >= 16, got {n_candidates!r}")
        if not (isinstance(n_restarts, int) and n_restarts >= 1):
            raise ValueError(f"n_restarts must be a positive integer, got {n_restarts!r}")
        if not (isinstance(polish_iters, int) and polish_iters >= 0):
            raise ValueError(f"polish_iters must be an integer >= 0, got {polish_iters!r}")
        if not (isinstance(fit_iters, int) and fit_iters >= 1):
            raise ValueError(f"fit_iters must be a positive integer, got {fit_iters!r}")
        if not min_noise > 0:
            raise ValueError(f"min_noise must be positive, got {min_noise!r}")
        self.n_startup_trials = n_startup_trials
        self.acquisition = acquisition
        self.ucb_beta = float(ucb_beta)
        self.n_candidates = n_candidates
        self.n_restarts = n_restarts
        self.polish_iters = int(polish_iters)
        self.fit_iters = int(fit_iters)
        self.min_noise = float(min_noise)
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}, got {kernel!r}")
        if output_transform not in _OUTPUT_TRANSFORMS:
            raise ValueError(
                f"output_transform must be one of {_OUTPUT_TRANSFORMS}, got {output_transform!r}"
            )
        self.kernel = kernel
        self.output_transform = output_transform
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
        torch_seed, rng = suggestion_seeds(context)
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(torch_seed)
            try:
                x = self._suggest_point(space, done, history, pending, context.sign, rng)
            except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
                log.warning("GP suggestion failed (%s); using a Sobol point instead", exc)
                self._warm_state = None
                return sobol_point(space, context.seed, context.trial_number)
        params = space.decode(x)
        if is_repeat(params, history, pending):  # never repeat a point exactly: explore instead
            params = space.sample(rng)
        return params

    def _make_model(self, X: torch.Tensor, Y: torch.Tensor) -> SingleTaskGP:
        likelihood = GaussianLikelihood(
            noise_prior=LogNormalPrior(loc=-9.0, scale=2.0),
            noise_constraint=GreaterThan(self.min_noise),
        )
        covar = get_covar_module_with_dim_scaled_prior(
            ard_num_dims=X.shape[-1], use_rbf_kernel=self.kernel == "rbf"
        )
        # Outputs are already transformed and standardized: no outcome transform to undo per call.
        return SingleTaskGP(X, Y, likelihood=likelihood, covar_module=covar, outcome_transform=None)

    def _fit(self, X: torch.Tensor, Y: torch.Tensor, key: Any) -> SingleTaskGP:
        model = self._make_model(X, Y)
        warm = self._warm_state is not None and self._warm_key == key
        if warm:
            model.load_state_dict(self._warm_state, strict=False)
        with gpytorch.settings.lazily_evaluate_kernels(False):  # ~35% less overhead per step
            try:
                fit_gpytorch_mll(
                    ExactMarginalLogLikelihood(model.likelihood, model),
                    optimizer_kwargs={"options": {"maxiter": self.fit_iters if warm else 200}},
                )
            except Exception:  # a failed fit from the warm start: retry from the defaults
                model = self._make_model(X, Y)
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
        acqf, X_np, z = self._acquisition(space, done, history, pending, sign)
        return self._maximize(acqf, space, _Layout(space), X_np, z, rng)

    def _acquisition(
        self,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        pending: Sequence[Trial],
        sign: float,
    ) -> tuple[Any, np.ndarray, np.ndarray]:
        """The fitted objective model's acquisition, the encoded trials and their model outputs."""
        X_np = np.stack([space.encode(t.params) for t in done])
        y = np.array([sign * float(t.value) for t in done])  # a loss to minimize
        z = -_transform_outputs(
            y, power=self.output_transform == "yeo-johnson"
        )  # BoTorch maximizes
        X = torch.tensor(X_np, dtype=torch.float64)
        Y = torch.tensor(z, dtype=torch.float64).unsqueeze(-1)
        model = self._fit(X, Y, key=(space.dim,))
        best_f = Y.max()

        # Running and failed trials: condition on the model's own mean there (kriging believer).
        others = [t for t in pending if t.params] + [
            t for t in history if t.state is TrialState.FAILED and t.params
        ]
        if others:
            Xo = torch.tensor(
                np.stack([space.encode(t.params) for t in others]), dtype=torch.float64
            )
            with torch.no_grad():
                Yo = model.posterior(Xo).mean
            fantasy = self._make_model(torch.cat([X, Xo]), torch.cat([Y, Yo]))
            fantasy.load_state_dict(model.state_dict(), strict=False)
            model = fantasy.eval()

        if self.acquisition == "ucb":
            acqf = UpperConfidenceBound(model, beta=self.ucb_beta)
        else:
            acqf = LogExpectedImprovement(model, best_f=best_f)
        return acqf, X_np, z

    def _candidates(
        self,
        space: Space,
        layout: _Layout,
        X_np: np.ndarray,
        z: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Valid points to score: Sobol points plus perturbations of the best observed points."""
        sobol = qmc.Sobol(d=len(space), scramble=True, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            U = sobol.random(self.n_candidates)
        n_local = max(self.n_candidates // 4, 16)
        top = X_np[np.argsort(-z)[: min(5, len(z))]]
        local = top[np.arange(n_local) % len(top)]
        local = self._perturb(local, layout, space, rng, 10 ** rng.uniform(-3, -1, (n_local, 1)))
        return np.vstack([space.uniform_to_model(np.minimum(U, 1 - 1e-12)), local])

    @staticmethod
    def _perturb(
        X: np.ndarray, layout: _Layout, space: Space, rng: np.random.Generator, scale: Any
    ) -> np.ndarray:
        """Gaussian steps on continuous dimensions, and a random discrete move on half the rows."""
        X = X + rng.normal(size=X.shape) * scale * layout.continuous
        X = space.round(np.clip(X, 0.0, 1.0))
        if layout.has_discrete:
            for i in np.flatnonzero(rng.random(len(X)) < 0.5):
                nb = layout.neighbours(X[i])
                if len(nb):
                    X[i] = nb[rng.integers(len(nb))]
        return X

    def _maximize(
        self,
        acqf: Any,
        space: Space,
        layout: _Layout,
        X_np: np.ndarray,
        z: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Score candidates, refine the best by shrinking local sampling, then polish by L-BFGS-B."""

        def score(C: np.ndarray) -> torch.Tensor:
            with torch.no_grad():
                return acqf(torch.from_numpy(C).unsqueeze(1))

        C = self._candidates(space, layout, X_np, z, rng)
        vals = score(C)
        for scale in _REFINE_SCALES:  # cheap zeroth-order refinement of the 8 best candidates
            top = C[torch.argsort(vals, descending=True)[:8].numpy()]
            P = self._perturb(np.repeat(top, 16, axis=0), layout, space, rng, scale)
            C, vals = np.vstack([C, P]), torch.cat([vals, score(P)])
        order = torch.argsort(vals, descending=True).numpy()
        best_x, best_v = C[order[0]], float(vals[order[0]])

        if layout.continuous.any() and self.n_restarts and self.polish_iters:
            starts = torch.from_numpy(C[order[: self.n_restarts]])
            xs = self._polish(acqf, starts, torch.from_numpy(layout.continuous))
            xs = space.round(xs.numpy())
            vs = score(xs)
            i = int(torch.argmax(vs))
            if float(vs[i]) > best_v:
                best_x, best_v = xs[i], float(vs[i])

        if layout.has_discrete:  # hill-climb over integer and categorical neighbours
            for _ in range(10):
                nb = layout.neighbours(best_x)
                if not len(nb):
                    break
                nv = score(nb)
                j = int(torch.argmax(nv))
                if float(nv[j]) <= best_v:
                    break
                best_x, best_v = nb[j], float(nv[j])
        return best_x

    def _polish(self, acqf: Any, starts: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        """L-BFGS-B on the continuous coordinates of every start at once, the rest held fixed."""
        b, k = starts.shape[0], int(free.sum())

        def assemble(z: np.ndarray | torch.Tensor) -> torch.Tensor:
            X = starts.clone()
            X[:, free] = torch.as_tensor(z, dtype=starts.dtype).view(b, k)
            return X

        def loss_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
            Z = torch.tensor(z, dtype=starts.dtype, requires_grad=True)
            loss = -acqf(assemble(Z).unsqueeze(1)).sum()
            (grad,) = torch.autograd.grad(loss, Z)
            if not torch.isfinite(loss):
                return 1e10, np.zeros_like(z)
            return float(loss), torch.nan_to_num(grad).numpy()

        z0 = starts[:, free].reshape(-1).numpy()
        try:
            res = minimize(
                loss_and_grad,
                z0,
                jac=True,
                method="L-BFGS-B",
                bounds=[(0.0, 1.0)] * len(z0),
                options={"maxiter": self.polish_iters},
            )
            return assemble(np.clip(res.x, 0.0, 1.0)).detach()
        except (ValueError, RuntimeError):  # numerical trouble: keep the starts
            return starts
