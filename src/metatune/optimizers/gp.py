"""Bayesian optimization with a BoTorch GP and LogEI (or UCB), tuned for small budgets.

What differs from the plain BoTorch loop, and why (the pieces live in `optimizers/_gp/`):
* outputs are power-transformed (Yeo-Johnson) then standardized, so heavy-tailed objectives
  such as Rosenbrock do not flatten the model around the optimum;
* the noise is constrained low (objectives are usually deterministic up to small noise);
* hyperparameters are warm-started from the previous fit and refined by a few L-BFGS steps;
* the acquisition is maximized by a batched multi-start local search in which integers and
  categoricals move only to valid neighbours (gradient polishing is optional);
* running (pending) and failed trials enter as "kriging believer" fantasies;
* optionally (`trust_region`), a TuRBO-style box around the incumbent for 20-60 dimensions
  (`optimizers/trust_region.py`).

`GPOptimizer.suggest` is the one suggestion skeleton of every GP optimizer: the cost-aware ones
override only the searches it runs (`_searches`) and what it checks and forgets.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction

from metatune.direction import Direction
from metatune.optimizers._gp.acquisition import (
    ACQUISITIONS,
    kriging_believer,
    objective_acquisition,
)
from metatune.optimizers._gp.fit import KERNELS, GPSpec, WarmStartFitter, transform_outputs
from metatune.optimizers._gp.history import unseen_point
from metatune.optimizers._gp.search import Bounds, Layout, Search, maximize_all
from metatune.optimizers._gp.seeds import suggestion_seeds
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.optimizers.random import sobol_point
from metatune.optimizers.trust_region import RegionState, TrustRegion
from metatune.space import Space
from metatune.trial import Trial, TrialState

__all__ = ["GPOptimizer"]

log = logging.getLogger("metatune")

_OUTPUT_TRANSFORMS = ("yeo-johnson", "standardize")
_TRUST_REGION_POLISH = 20  # the default `polish_iters` with a trust region


@register_optimizer("gp")
class GPOptimizer(Optimizer):
    """GP-based Bayesian optimization (BoTorch SingleTaskGP, LogEI or UCB).

    Args:
        n_startup_trials: Sobol trials before the GP takes over (default: 3 x parameters + 2,
            at most 20).
        acquisition: "logei" (default) or "ucb".
        ucb_beta: exploration weight of UCB.
        n_candidates: Sobol candidates scored per suggestion.
        n_restarts: best candidates polished by L-BFGS-B when `polish_iters` > 0.
        polish_iters: L-BFGS-B iterations on the acquisition after the local search (0: none;
            default 0, or 20 with `trust_region`: in 20-40 dimensions the local search alone
            leaves the acquisition's maximum in the box far from found).
        fit_iters: L-BFGS iterations of a warm-started hyperparameter fit (a cold fit runs to
            convergence).
        min_noise: lower bound on the GP noise variance (on standardized outputs).
        kernel: "matern52" (default) or "rbf", both with BoTorch's dimension-scaled priors.
        output_transform: "yeo-johnson" (default) or "standardize".
        trust_region: False (default), True, or a mapping of `TrustRegion` options
            (length_init, length_min, length_max, success_tolerance, failure_tolerance,
            min_improvement): search a TuRBO-style box around the incumbent, fitted on the
            trials since the region's last restart (for 20-60 continuous dimensions).
        noisy: the objective is noisy, so evaluating a configuration again is informative: the
            optimizer may propose a configuration already tried. False (default): it never
            does (a repeat of a deterministic objective buys nothing but costs a trial), unless
            every configuration of the space was tried.

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
        polish_iters: int | None = None,
        fit_iters: int = 6,
        min_noise: float = 1e-8,
        kernel: str = "matern52",
        output_transform: str = "yeo-johnson",
        trust_region: bool | Mapping[str, Any] = False,
        noisy: bool = False,
    ) -> None:
        if n_startup_trials is not None and (
            not isinstance(n_startup_trials, int) or n_startup_trials < 1
        ):
            raise ValueError(
                f"n_startup_trials must be a positive integer, got {n_startup_trials!r}"
            )
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        if not ucb_beta > 0:
            raise ValueError(f"ucb_beta must be positive, got {ucb_beta!r}")
        if not (isinstance(n_candidates, int) and n_candidates >= 16):
            raise ValueError(f"n_candidates must be an integer >= 16, got {n_candidates!r}")
        if not (isinstance(n_restarts, int) and n_restarts >= 1):
            raise ValueError(f"n_restarts must be a positive integer, got {n_restarts!r}")
        if polish_iters is None:
            polish_iters = _TRUST_REGION_POLISH if trust_region is not False else 0
        if not (isinstance(polish_iters, int) and polish_iters >= 0):
            raise ValueError(f"polish_iters must be an integer >= 0, got {polish_iters!r}")
        if not (isinstance(fit_iters, int) and fit_iters >= 1):
            raise ValueError(f"fit_iters must be a positive integer, got {fit_iters!r}")
        if not min_noise > 0:
            raise ValueError(f"min_noise must be positive, got {min_noise!r}")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if output_transform not in _OUTPUT_TRANSFORMS:
            raise ValueError(
                f"output_transform must be one of {_OUTPUT_TRANSFORMS}, got {output_transform!r}"
            )
        if isinstance(trust_region, Mapping):
            TrustRegion.check_options(trust_region)
        elif not isinstance(trust_region, bool):
            raise ValueError(
                f"trust_region must be True, False or a mapping of options, got {trust_region!r}"
            )
        if not isinstance(noisy, bool):
            raise ValueError(f"noisy must be True or False, got {noisy!r}")
        self.noisy = noisy
        self.n_startup_trials = n_startup_trials
        # None: no trust region; else its options (empty: the defaults)
        self.trust_region: dict[str, Any] | None = None
        if isinstance(trust_region, Mapping):
            self.trust_region = dict(trust_region)
        elif trust_region:
            self.trust_region = {}
        self.acquisition = acquisition
        self.ucb_beta = float(ucb_beta)
        self.n_candidates = n_candidates
        self.n_restarts = n_restarts
        self.polish_iters = int(polish_iters)
        self.fit_iters = int(fit_iters)
        self.min_noise = float(min_noise)
        self.kernel = kernel
        self.output_transform = output_transform
        # a later fit under another key (another space) starts cold
        self._fitter = WarmStartFitter(one_key=True)
        self._region: RegionState | None = None  # this suggestion's trust region, if any
        self._model: Any = None  # this suggestion's fitted objective GP

    # -- the suggestion skeleton ---------------------------------------------------------------
    def _startup(self, space: Space) -> int:
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        # A wider initial design than 10: with fewer, the GP of a multimodal 6-d function
        # (Hartmann6) often never sees the basin of the global minimum.
        return min(20, 3 * len(space) + 2)

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        space = context.space
        done = self.completed(history)
        self._region = None
        if self.trust_region is not None:
            done, self._region = self._region_trials(done, space, context)
            if self._region.restarts and len(done) < self._startup(space):
                # a restarted region's own Sobol design (another scramble per restart)
                seed = (context.seed + 1_000_003 * self._region.restarts) % 2**32
                return sobol_point(space, seed, context.trial_number)
        if len(done) < self._startup(space):
            point = sobol_point(space, context.seed, context.trial_number)
            if self.noisy:
                return point
            rng = np.random.default_rng([context.seed, context.trial_number, 1])
            return unseen_point(point, {}, space, history, pending, rng)
        self._check_context(context)
        torch_seed, rng = suggestion_seeds(context)
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(torch_seed)
            try:
                params, fixed = self._suggest_params(space, done, history, pending, context, rng)
            except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
                log.warning(
                    "%s suggestion failed (%s); using a Sobol point instead", self._label(), exc
                )
                self._forget()
                return sobol_point(space, context.seed, context.trial_number)
        if self.noisy:
            return params
        # Never propose a configuration already tried or running: explore instead.
        return unseen_point(params, fixed, space, history, pending, rng)

    def _suggest_params(
        self,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        pending: Sequence[Trial],
        context: SuggestContext,
        rng: np.random.Generator,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The suggestion, and the parameter values it must keep if it repeats a trial."""
        direction = Direction.parse(context.direction)
        objective, X_obs, z = self._objective(space, done, history, pending, direction)
        layout = Layout(space)
        bounds = self._box(layout, X_obs, z)
        searches = self._searches(objective, space, done, history, context, rng)
        found = maximize_all(
            searches,
            space,
            layout,
            X_obs,
            z,
            rng,
            n_restarts=self.n_restarts,
            polish_iters=self.polish_iters,
            bounds=bounds,
        )
        i = self._choose(searches, found)
        params = space.decode(found[i][0])
        params.update(searches[i].fixed)  # exact stored values, so cache keys match bit for bit
        return params, dict(searches[i].fixed)

    # -- the trust region ------------------------------------------------------------------------
    def _region_trials(
        self, done: list[Trial], space: Space, context: SuggestContext
    ) -> tuple[list[Trial], RegionState]:
        """The completed trials of the current region and its state, replayed from all of them."""
        region = TrustRegion.from_options(
            self.trust_region or {},
            n_init=self._startup(space),
            dim=max(1, int(Layout(space).continuous.sum())),
        )
        direction = Direction.parse(context.direction)
        ordered = sorted(done, key=lambda t: t.number)
        state = region.replay([direction.loss(t.value) for t in ordered])  # type: ignore[arg-type]
        return ordered[state.start :], state

    def _box(self, layout: Layout, X_obs: np.ndarray, z: np.ndarray) -> Bounds | None:
        """The trust region's box on the continuous dimensions (the whole cube elsewhere)."""
        if self._region is None or not layout.continuous.any():
            return None
        lengthscales = self._model.covar_module.lengthscale.detach().reshape(-1).numpy()
        cont = layout.continuous
        lo, hi = np.zeros(len(cont)), np.ones(len(cont))
        centre = X_obs[int(np.argmax(z))]
        lo[cont], hi[cont] = TrustRegion.box(centre[cont], lengthscales[cont], self._region.length)
        return lo, hi

    # -- hooks of the cost-aware subclasses ---------------------------------------------------------
    def _label(self) -> str:
        """How the warning on a failed suggestion names this optimizer."""
        return "GP"

    def _check_context(self, context: SuggestContext) -> None:
        """Raise before any model work on a context this optimizer cannot use."""

    def _forget(self) -> None:
        """Drop every warm start after a numerical failure."""
        self._fitter.clear()

    def _searches(
        self,
        objective: AcquisitionFunction,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        context: SuggestContext,
        rng: np.random.Generator,
    ) -> list[Search]:
        """The acquisition searches of one suggestion; the best point of all of them wins."""
        return [Search({}, objective, self.n_candidates)]

    def _choose(self, searches: Sequence[Search], found: Sequence[tuple[np.ndarray, float]]) -> int:
        """Which search's best point (and value) becomes the suggestion: the highest value, the
        first of equal ones."""
        return max(range(len(found)), key=lambda j: found[j][1])

    # -- the objective model ---------------------------------------------------------------------
    def _objective(
        self,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        pending: Sequence[Trial],
        direction: Direction,
    ) -> tuple[AcquisitionFunction, np.ndarray, np.ndarray]:
        """The fitted objective model's acquisition, the encoded trials and their model outputs
        (higher is better)."""
        X_obs = np.stack([space.encode(t.params) for t in done])
        y = np.array([direction.loss(t.value) for t in done])  # type: ignore[arg-type]
        z = -transform_outputs(y, power=self.output_transform == "yeo-johnson")  # BoTorch maximizes
        X = torch.tensor(X_obs, dtype=torch.float64)
        Y = torch.tensor(z, dtype=torch.float64).unsqueeze(-1)
        spec = GPSpec(kernel=self.kernel, min_noise=self.min_noise)
        restarts = self._region.restarts if self._region is not None else 0
        # a restarted trust region fits its own GP from scratch
        model = self._fitter.fit(spec, X, Y, key=(space.dim, restarts), warm_iters=self.fit_iters)
        self._model = model
        best_f = Y.max()
        # Running and failed trials: condition on the model's own mean there (kriging believer).
        others = [t for t in pending if t.params] + [
            t for t in history if t.state is TrialState.FAILED and t.params
        ]
        if others:
            X_others = torch.tensor(
                np.stack([space.encode(t.params) for t in others]), dtype=torch.float64
            )
            model = kriging_believer(model, spec, X, Y, X_others)
        return objective_acquisition(model, best_f, self.acquisition, self.ucb_beta), X_obs, z
