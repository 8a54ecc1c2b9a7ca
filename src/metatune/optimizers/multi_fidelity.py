"""Multi-fidelity Bayesian optimization: GP proposals that learn from the reports of pruned
trials.

When trials report intermediate values (a validation loss per epoch, say), a pruned trial is
not wasted: its few epochs still tell where the good region is. The plain "gp" optimizer only
models completed trials, which a pruned study has few of. Two models are offered:

* "budget" (the default), BOHB's recipe with a GP in place of TPE: one observation per trial at
  one budget, the largest reported step that enough trials (the start-up count) reached; a
  trial stopped before that budget enters with its last loss, usually worse, so the regions
  that were pruned are remembered as bad. LogEI on that GP proposes the next configuration.
* "joint": one GP over (configuration, fidelity), the step log-scaled to [0, 1], fitted on
  several reports of every trial, LogEI at fidelity 1. It shares strength across budgets in
  principle, but when a stationary kernel decorrelates low and high fidelity it explores the
  full-fidelity unknown (boundaries of the space) instead of exploiting what the pruned trials
  showed; on the learning-curve benchmark it did worse than "budget".

As in BOHB a share of the suggestions (`random_fraction`, a third by default) are Sobol points:
under pruning a bad point costs only its first rung, and a model fitted at a low budget can
rank misleadingly, so cheap exploration protects against a model stuck in one region.

With no reports anywhere the study is an ordinary one: suggestions come from the plain GP.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition import FixedFeatureAcquisitionFunction

from metatune.direction import Direction
from metatune.optimizers._gp.acquisition import (
    ACQUISITIONS,
    kriging_believer,
    objective_acquisition,
)
from metatune.optimizers._gp.fit import KERNELS, GPSpec, WarmStartFitter, transform_outputs
from metatune.optimizers._gp.history import unseen_point
from metatune.optimizers._gp.search import Layout, maximize
from metatune.optimizers._gp.seeds import suggestion_seeds
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.optimizers.gp import GPOptimizer
from metatune.optimizers.random import sobol_point
from metatune.space import Space
from metatune.trial import Trial, TrialState

__all__ = ["MultiFidelityGPOptimizer", "fidelity_scale", "learning_curve_points"]

log = logging.getLogger("metatune")

_MODELS = ("budget", "joint")


def fidelity_scale(steps: Sequence[int]) -> tuple[int, int]:
    """The smallest and largest step reported, which map to fidelity 0 and 1."""
    return min(steps), max(steps)


def to_fidelity(step: int, lo: int, hi: int) -> float:
    """`step` log-scaled to [0, 1]: log(1 + step - lo) / log(1 + hi - lo); 1 when lo == hi."""
    if hi <= lo:
        return 1.0
    return math.log1p(max(step - lo, 0)) / math.log1p(hi - lo)


def _log_spaced(steps: list[int], k: int) -> list[int]:
    """At most `k` of the sorted `steps`, roughly evenly spaced in log step, the last kept."""
    if len(steps) <= k:
        return steps
    idx = np.unique(np.round(np.geomspace(1, len(steps), k)).astype(int) - 1)
    return [steps[i] for i in idx]


def learning_curve_points(
    trials: Sequence[Trial],
    direction: Direction,
    points_per_trial: int,
    max_points: int | None = None,
) -> tuple[list[Trial], list[int], list[float], tuple[int, int]]:
    """The observations of the trials: (trial, step, loss) triples with step -1 standing for the
    trial's final value (fidelity 1), and the step scale. NaN and infinite values are skipped.

    A trial contributes up to `points_per_trial` of its reports (log-spaced, the latest kept),
    fewer when that many for every trial would pass `max_points` (but at least one); a
    completed trial also its value at fidelity 1 (in place of its report at the top step).
    """
    reported = [s for t in trials for s in t.intermediate_values]
    scale = fidelity_scale(reported) if reported else (0, 0)
    if max_points is not None:
        n_reporting = sum(1 for t in trials if t.params and t.intermediate_values)
        points_per_trial = min(points_per_trial, max(1, max_points // max(n_reporting, 1)))
    out_t: list[Trial] = []
    out_s: list[int] = []
    out_y: list[float] = []

    def add(t: Trial, step: int, value: float) -> None:
        if value is not None and math.isfinite(float(value)):
            out_t.append(t)
            out_s.append(step)
            out_y.append(direction.loss(float(value)))

    for t in trials:
        if not t.params:
            continue
        complete = t.state is TrialState.COMPLETE and t.value is not None
        steps = sorted(t.intermediate_values)
        if complete and steps and steps[-1] >= scale[1]:
            steps = steps[:-1]  # the final value stands for the top step
        for s in _log_spaced(steps, points_per_trial):
            add(t, s, t.intermediate_values[s])
        if complete:
            add(t, -1, t.value)  # type: ignore[arg-type]
    return out_t, out_s, out_y, scale


def budget_points(
    trials: Sequence[Trial], direction: Direction, n_min: int
) -> tuple[list[Trial], list[float], int]:
    """One observation per trial at one budget (BOHB's choice): the largest reported step that
    at least `n_min` trials reached, or the smallest step when none has that many.

    A trial's value is its loss at the largest reported step <= the budget (its first report
    when that came later; a completed trial at the top step: its final value), so a trial
    stopped before the budget enters with its last, usually worse, loss: the region it sampled
    is not forgotten. NaN and infinite values are skipped. Returns (trials, losses, budget).
    """
    usable = [t for t in trials if t.params and (t.intermediate_values or t.value is not None)]
    top = max((s for t in usable for s in t.intermediate_values), default=0)

    def last(t: Trial) -> int:
        if t.state is TrialState.COMPLETE and t.value is not None:
            return top  # a completed trial has run its full budget
        return max(t.intermediate_values)

    reached = sorted((last(t) for t in usable), reverse=True)
    steps = sorted({s for t in usable for s in t.intermediate_values}, reverse=True)
    budget = steps[-1] if steps else top
    for b in steps:
        if sum(r >= b for r in reached) >= n_min:
            budget = b
            break
    out_t: list[Trial] = []
    out_y: list[float] = []
    for t in usable:
        complete = t.state is TrialState.COMPLETE and t.value is not None
        if complete and (budget >= top or not t.intermediate_values):
            value = float(t.value)  # type: ignore[arg-type]
        else:
            below = [s for s in t.intermediate_values if s <= budget]
            s = max(below) if below else min(t.intermediate_values)
            value = float(t.intermediate_values[s])
        if math.isfinite(value):
            out_t.append(t)
            out_y.append(direction.loss(value))
    return out_t, out_y, budget


@register_optimizer("mf-gp")
class MultiFidelityGPOptimizer(Optimizer):
    """GP proposals fitted on the reports of completed, pruned and running trials.

    Args:
        n_startup_trials: Sobol trials before the model takes over (trials with at least one
            observation; default min(20, 4 x dimensions + 4); in a study without reports the
            plain GP's own default applies).
        points_per_trial: reports per trial the model sees (log-spaced, the latest kept).
        max_points: fewer reports per trial once the trials would give more than this many
            (an exact GP's cost grows with the cube of its points).
        acquisition: "logei" (default) or "ucb".
        ucb_beta: exploration weight of UCB.
        n_candidates: Sobol candidates scored per suggestion.
        n_restarts: best candidates polished when `polish_iters` > 0.
        polish_iters: L-BFGS-B iterations on the acquisition after the local search.
        fit_iters: L-BFGS iterations of a warm-started hyperparameter fit.
        kernel: "matern52" (default) or "rbf".
        min_noise: lower bound on the noise variance with a low-noise prior, as the plain GP;
            None (default) learns the noise with BoTorch's default likelihood, since successive
            reports of one run are noisy.
        model: "budget" (default: one GP at the largest well-populated budget) or "joint" (a
            GP over configuration and fidelity); `points_per_trial` and `max_points` apply to
            "joint" only.
        random_fraction: the share of suggestions, after the start-up, that are Sobol points
            (drawn from the suggestion's seed), in [0, 1).

    Without any reports in the study it behaves as the plain "gp" optimizer (same options). On
    a numerical failure of the model the trial gets a Sobol point and a warning is logged.
    """

    def __init__(
        self,
        n_startup_trials: int | None = None,
        points_per_trial: int = 6,
        max_points: int = 1024,
        acquisition: str = "logei",
        ucb_beta: float = 2.0,
        n_candidates: int = 1024,
        n_restarts: int = 3,
        polish_iters: int = 0,
        fit_iters: int = 6,
        kernel: str = "matern52",
        min_noise: float | None = None,
        model: str = "budget",
        random_fraction: float = 1 / 3,
    ) -> None:
        if model not in _MODELS:
            raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
        if (
            isinstance(random_fraction, bool)
            or not isinstance(random_fraction, (int, float))
            or not 0.0 <= random_fraction < 1.0
        ):
            raise ValueError(f"random_fraction must be a number in [0, 1), got {random_fraction!r}")
        if not (
            isinstance(points_per_trial, int)
            and not isinstance(points_per_trial, bool)
            and points_per_trial >= 1
        ):
            raise ValueError(
                f"points_per_trial must be a positive integer, got {points_per_trial!r}"
            )
        if not (isinstance(max_points, int) and not isinstance(max_points, bool)):
            raise ValueError(f"max_points must be an integer >= 16, got {max_points!r}")
        if max_points < 16:
            raise ValueError(f"max_points must be an integer >= 16, got {max_points!r}")
        if min_noise is not None and not min_noise > 0:
            raise ValueError(f"min_noise must be None or positive, got {min_noise!r}")
        # The plain GP validates the shared options (and names them in its errors).
        self._plain = GPOptimizer(
            n_startup_trials=n_startup_trials,
            acquisition=acquisition,
            ucb_beta=ucb_beta,
            n_candidates=n_candidates,
            n_restarts=n_restarts,
            polish_iters=polish_iters,
            fit_iters=fit_iters,
            kernel=kernel,
        )
        assert acquisition in ACQUISITIONS and kernel in KERNELS
        self.n_startup_trials = n_startup_trials
        self.points_per_trial = points_per_trial
        self.max_points = max_points
        self.acquisition = acquisition
        self.ucb_beta = float(ucb_beta)
        self.n_candidates = n_candidates
        self.n_restarts = n_restarts
        self.polish_iters = polish_iters
        self.fit_iters = fit_iters
        self.kernel = kernel
        self.min_noise = None if min_noise is None else float(min_noise)
        self.model = model
        self.random_fraction = float(random_fraction)
        self._fitter = WarmStartFitter(one_key=True)

    def _startup(self, space: Space) -> int:
        """A wide random start: under pruning a start-up trial mostly costs its first rung, so
        it is nearly free, and the budget model needs that many trials at a budget before it
        models that budget."""
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return min(20, 4 * len(space) + 4)

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        if not any(t.intermediate_values for t in (*history, *pending)):
            return self._plain.suggest(history, pending, context)
        space = context.space
        direction = Direction.parse(context.direction)
        observed = [*history, *(t for t in pending if t.intermediate_values)]
        n_startup = self._startup(space)
        if self.model == "budget":
            trials, y, _ = budget_points(observed, direction, n_startup)
            steps, scale = [-1] * len(trials), (0, 0)  # one fidelity: no fidelity column
        else:
            trials, steps, y, scale = learning_curve_points(
                observed, direction, self.points_per_trial, self.max_points
            )
        if len({t.number for t in trials}) < n_startup:
            return sobol_point(space, context.seed, context.trial_number)
        torch_seed, rng = suggestion_seeds(context)
        if rng.random() < self.random_fraction:  # BOHB's random share: cheap under pruning
            return unseen_point(
                sobol_point(space, context.seed, context.trial_number),
                {},
                space,
                history,
                pending,
                rng,
            )
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(torch_seed)
            try:
                params = self._suggest(space, trials, steps, y, scale, history, pending, rng)
            except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
                log.warning("multi-fidelity GP suggestion failed (%s); using a Sobol point", exc)
                self._fitter.clear()
                return sobol_point(space, context.seed, context.trial_number)
        return unseen_point(params, {}, space, history, pending, rng)

    def _suggest(
        self,
        space: Space,
        trials: list[Trial],
        steps: list[int],
        y: list[float],
        scale: tuple[int, int],
        history: Sequence[Trial],
        pending: Sequence[Trial],
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        d = space.dim
        joint = self.model == "joint"
        configs = np.stack([space.encode(t.params) for t in trials])
        z = -transform_outputs(np.asarray(y, dtype=float))  # BoTorch maximizes
        if joint:
            fid = np.array([1.0 if s < 0 else to_fidelity(s, *scale) for s in steps])
            X = torch.tensor(np.column_stack([configs, fid]), dtype=torch.float64)
        else:
            X = torch.tensor(configs, dtype=torch.float64)
        Y = torch.tensor(z, dtype=torch.float64).unsqueeze(-1)
        spec = GPSpec(kernel=self.kernel, min_noise=self.min_noise)
        model = self._fitter.fit(spec, X, Y, key=(X.shape[-1],), warm_iters=self.fit_iters)

        def full(A: np.ndarray) -> torch.Tensor:
            """Encoded configurations as model inputs (at fidelity 1 for the joint model)."""
            if joint:
                A = np.column_stack([A, np.ones(len(A))])
            return torch.tensor(A, dtype=torch.float64)

        # Every configuration seen, and the model's mean for it at the full fidelity.
        seen: dict[int, np.ndarray] = {}
        for t, x in zip(trials, configs, strict=True):
            seen.setdefault(t.number, x)
        X_seen = np.stack(list(seen.values()))
        with torch.no_grad():
            mean_top = model.posterior(full(X_seen)).mean.squeeze(-1)
        best_f = mean_top.max()

        # Running trials without reports and failed trials: believe the model's mean there.
        others = [t for t in pending if t.params and not t.intermediate_values] + [
            t for t in history if t.state is TrialState.FAILED and t.params
        ]
        if others:
            X_o = full(np.stack([space.encode(t.params) for t in others]))
            model = kriging_believer(model, spec, X, Y, X_o)

        acq = objective_acquisition(model, best_f, self.acquisition, self.ucb_beta)
        at_top = (
            FixedFeatureAcquisitionFunction(acq, d=d + 1, columns=[d], values=[1.0])
            if joint
            else acq
        )
        x = maximize(
            at_top,
            space,
            Layout(space),
            X_seen,
            mean_top.numpy(),
            rng,
            n_candidates=self.n_candidates,
            n_restarts=self.n_restarts,
            polish_iters=self.polish_iters,
        )
        return space.decode(x)
