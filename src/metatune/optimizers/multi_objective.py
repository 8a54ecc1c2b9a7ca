"""Multi-objective Bayesian optimization: one GP per objective and BoTorch's qLogEHVI.

The acquisition is the expected hypervolume improvement over the Pareto front of the trials so
far, in its log form (Ament et al., 2023), with running trials as pending points so that
concurrent asks spread out. The front is the observed one by default: the noisy form,
qLogNEHVI (acquisition="nehvi"), integrates over the front's uncertainty. Each objective's
outputs are standardized and Yeo-Johnson transformed (a monotone map per objective, so the
Pareto front is unchanged while heavy-tailed objectives stop dominating the fit).

Unlike the single-objective GP, each GP keeps BoTorch's default likelihood and is fitted to
convergence at every ask (from the previous fit's hyperparameters): a near-interpolating GP
fitted by a few steps stays with the length scales of its first fit, which on a front shaped
by a few inputs (DTLZ2's distance term) leaves the other inputs unlearned and the search
exploring the corners of the cube. The reference point is the front's nadir less a tenth of its
range (BoTorch's infer_reference_point, Ax's rule): the worst value seen so far is a far looser
point, which rewards the two ends of the front over its middle. The margin is at least a tenth
of each objective's observed range: when one trial dominates every other, the front's range is
nil and BoTorch's rule puts the point just beyond that trial, leaving nothing to improve. Outcome constraints get a GP
each and weight the improvement by the probability of feasibility. Maximized by the same
valid-move search as the single-objective GP, its local moves started from a random subset of
the front so that they spread along it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from metatune.constraints import feasible, parse_constraints
from metatune.direction import Direction
from metatune.optimizers._gp.fit import GPSpec, WarmStartFitter, transform_outputs
from metatune.optimizers._gp.history import unseen_point
from metatune.optimizers._gp.search import Layout, maximize
from metatune.optimizers._gp.seeds import suggestion_seeds
from metatune.optimizers.base import Optimizer, SuggestContext, register_optimizer
from metatune.optimizers.random import sobol_point
from metatune.pareto import pareto_front
from metatune.space import Space
from metatune.trial import Trial, TrialState

__all__ = ["MultiObjectiveGP", "objective_losses"]

log = logging.getLogger("metatune")

OUTPUT_TRANSFORMS = ("yeo-johnson", "standardize")
REFERENCES = ("front", "observed")
ACQUISITIONS = ("ehvi", "nehvi")


def objective_losses(
    trials: Sequence[Trial], directions: Sequence[str]
) -> tuple[list[Trial], np.ndarray]:
    """The completed trials with one finite value per objective, and their values as losses
    (n, k): lower is better in every column."""
    signs = np.array([Direction.parse(d).sign for d in directions])

    def values(t: Trial) -> list[float] | None:  # a single-objective study stores value only
        return t.values if t.values is not None else (None if t.value is None else [t.value])

    done = [
        t
        for t in trials
        if t.state is TrialState.COMPLETE
        and values(t) is not None
        and len(values(t)) == len(signs)  # type: ignore[arg-type]
        and all(np.isfinite(values(t)))  # type: ignore[arg-type]
        and t.params
    ]
    Y = np.array([values(t) for t in done], dtype=float).reshape(len(done), len(signs))
    return done, Y * signs


@register_optimizer("mo-gp")
class MultiObjectiveGP(Optimizer):
    """One GP per objective (BoTorch SingleTaskGP) and qLogEHVI.

    Args:
        n_startup_trials: Sobol trials before the model takes over (default: 2 x dimensions
            + 2, at most 10).
        n_candidates: Sobol candidates scored per suggestion.
        mc_samples: quasi-Monte-Carlo samples of the acquisition.
        fit_iters: most L-BFGS iterations of a warm-started hyperparameter fit (default 200:
            to convergence; a cold fit runs to convergence).
        min_noise: None (default) keeps BoTorch's likelihood and its noise prior; a number
            makes each GP nearly noise-free instead, its noise variance (on transformed
            outputs) bounded below by it, as the single-objective GP.
        output_transform: "yeo-johnson" (default) or "standardize", per objective.
        reference: where the acquisition's reference point comes from: "front" (default: the
            nadir of the Pareto front so far, less a tenth of its range, as BoTorch's
            infer_reference_point) or "observed" (the worst value of every objective so far,
            less a tenth of its observed range: a looser point, which favours the front's
            ends).
        reference_floor: with reference="front", the least margin between the front's nadir
            and the reference point, as a fraction of each objective's observed range (default
            0.1; 0 for BoTorch's rule alone). Without it a front of one point (one trial
            dominating every other) puts the reference point just beyond that point, where
            almost no new point can add hypervolume.
        acquisition: "ehvi" (default: qLogEHVI over the observed front) or "nehvi"
            (qLogNEHVI: over the front's posterior samples).
        constraints: outcome constraints, strings such as "latency <= 0.05" on metrics the
            objective reports next to its values (see `metatune.constraints`). Each metric
            gets a GP of its own; the acquisition weights the hypervolume improvement by the
            probability of feasibility, and the front it improves is the feasible trials'.
    """

    multi_objective = True

    def __init__(
        self,
        n_startup_trials: int | None = None,
        n_candidates: int = 512,
        mc_samples: int = 64,
        fit_iters: int = 200,
        min_noise: float | None = None,
        output_transform: str = "yeo-johnson",
        reference: str = "front",
        reference_floor: float = 0.1,
        acquisition: str = "ehvi",
        constraints: Sequence[str] | None = None,
    ) -> None:
        if n_startup_trials is not None and (
            not isinstance(n_startup_trials, int) or n_startup_trials < 1
        ):
            raise ValueError(
                f"n_startup_trials must be a positive integer, got {n_startup_trials!r}"
            )
        if not (isinstance(n_candidates, int) and n_candidates >= 16):
            raise ValueError(f"n_candidates must be an integer >= 16, got {n_candidates!r}")
        if not (isinstance(mc_samples, int) and mc_samples >= 8):
            raise ValueError(f"mc_samples must be an integer >= 8, got {mc_samples!r}")
        if not (isinstance(fit_iters, int) and fit_iters >= 1):
            raise ValueError(f"fit_iters must be a positive integer, got {fit_iters!r}")
        if min_noise is not None and not (
            isinstance(min_noise, (int, float))
            and not isinstance(min_noise, bool)
            and min_noise > 0
        ):
            raise ValueError(f"min_noise must be None or a positive number, got {min_noise!r}")
        if output_transform not in OUTPUT_TRANSFORMS:
            raise ValueError(
                f"output_transform must be one of {OUTPUT_TRANSFORMS}, got {output_transform!r}"
            )
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if not (
            isinstance(reference_floor, (int, float))
            and not isinstance(reference_floor, bool)
            and 0 <= reference_floor < 1
        ):
            raise ValueError(f"reference_floor must be in [0, 1), got {reference_floor!r}")
        self.reference_floor = float(reference_floor)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        self.acquisition = acquisition
        self.constraints = parse_constraints(constraints)
        self.n_startup_trials = n_startup_trials
        self.reference = reference
        self.n_candidates = n_candidates
        self.mc_samples = mc_samples
        self.fit_iters = fit_iters
        self.min_noise = None if min_noise is None else float(min_noise)
        self.output_transform = output_transform
        self._single: Optimizer | None = None
        self._fitter = WarmStartFitter()  # one warm start per objective

    def _startup(self, space: Space) -> int:
        if self.n_startup_trials is not None:
            return self.n_startup_trials
        return min(10, 2 * len(space) + 2)

    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        directions = context.directions or [context.direction]
        if len(directions) == 1 and self.constraints:
            raise ValueError(
                "mo-gp's constraints need a study with several directions; this one has one"
            )
        if len(directions) == 1:  # one objective: hypervolume is the best value
            if self._single is None:
                from metatune.optimizers.gp import GPOptimizer

                self._single = GPOptimizer(n_startup_trials=self.n_startup_trials)
            return self._single.suggest(history, pending, context)
        space = context.space
        done, losses = objective_losses(history, directions)
        torch_seed, rng = suggestion_seeds(context)
        if len(done) < self._startup(space):
            return sobol_point(space, context.seed, context.trial_number)
        try:
            with torch.random.fork_rng():
                torch.manual_seed(torch_seed)
                x = self._model_point(space, done, losses, pending, rng)
            params = space.decode(x)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
            log.warning("multi-objective GP failed (%s); trial gets a Sobol point", exc)
            self._fitter.clear()
            params = sobol_point(space, context.seed, context.trial_number)
        return unseen_point(params, {}, space, history, pending, rng)

    def _model_point(
        self,
        space: Space,
        done: list[Trial],
        losses: np.ndarray,
        pending: Sequence[Trial],
        rng: np.random.Generator,
    ) -> np.ndarray:
        from botorch.acquisition.multi_objective.logei import qLogExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import (
            IdentityMCMultiOutputObjective,
        )
        from botorch.models import ModelListGP
        from botorch.sampling import SobolQMCNormalSampler
        from botorch.utils.multi_objective.box_decompositions.non_dominated import (
            FastNondominatedPartitioning,
        )

        X = torch.tensor(np.stack([space.encode(t.params) for t in done]), dtype=torch.float64)
        power = self.output_transform == "yeo-johnson"
        # BoTorch maximizes: each column is a monotone map of minus its loss.
        Z = np.stack(
            [-transform_outputs(losses[:, j], power=power) for j in range(losses.shape[1])], 1
        )
        Y = torch.tensor(Z, dtype=torch.float64)
        spec = GPSpec(min_noise=self.min_noise)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fit notices (e.g. an early L-BFGS stop)
            gps = [
                self._fitter.fit(
                    spec, X, Y[:, j : j + 1], key=(space.dim, j), warm_iters=self.fit_iters
                )
                for j in range(Y.shape[1])
            ]
            slack_models, slack_terms = self._constraint_models(space, done, spec)
        ok = torch.tensor([feasible(t, self.constraints) for t in done], dtype=torch.bool)
        ref_point = self._ref_point(Y, ok)
        k = Y.shape[1]
        X_pending = None
        others = [t for t in pending if t.params]
        if others:
            enc = []
            for t in others:
                try:
                    enc.append(space.encode(t.params))
                except (TypeError, ValueError):
                    continue
            if enc:
                X_pending = torch.tensor(np.stack(enc), dtype=torch.float64)
        common: dict[str, Any] = dict(
            model=ModelListGP(*gps, *slack_models),
            ref_point=ref_point.tolist(),
            objective=IdentityMCMultiOutputObjective(outcomes=list(range(k))),
            constraints=[
                _Infeasibility(k + i, threshold) for i, threshold in enumerate(slack_terms)
            ]
            or None,
            X_pending=X_pending,
            sampler=SobolQMCNormalSampler(sample_shape=torch.Size([self.mc_samples])),
        )
        if self.acquisition == "nehvi":  # the front under the model, not as observed
            from botorch.acquisition.multi_objective.logei import (
                qLogNoisyExpectedHypervolumeImprovement,
            )

            acqf = qLogNoisyExpectedHypervolumeImprovement(
                X_baseline=X, prune_baseline=True, **common
            )
        else:
            acqf = qLogExpectedHypervolumeImprovement(
                partitioning=FastNondominatedPartitioning(ref_point=ref_point, Y=Y[ok]),
                **common,
            )
        # The local moves start from the 5 highest-scored trials: a random few of the
        # (feasible) front.
        on_front = rng.random(len(done)) * 0.5
        idx = np.flatnonzero(ok.numpy())
        if len(idx):
            on_front[idx[pareto_front(losses[idx])]] += 1.0
        return maximize(
            acqf,
            space,
            Layout(space),
            X.numpy(),
            on_front,
            rng,
            n_candidates=self.n_candidates,
            n_restarts=1,
            polish_iters=0,
        )

    def _ref_point(self, Y: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """The acquisition's reference point in the model's (maximized) outputs Y (n, k), from
        the feasible rows `ok` (n,) when there are any, else from every row."""
        from botorch.utils.multi_objective.hypervolume import infer_reference_point
        from botorch.utils.multi_objective.pareto import is_non_dominated

        Yr = Y[ok] if bool(ok.any()) else Y
        span = (Yr.max(0).values - Yr.min(0).values).clamp_min(1e-9)  # the observed range
        if self.reference == "front":  # BoTorch's (and Ax's) rule: the front's nadir, less
            front = Yr[is_non_dominated(Yr)]  # a tenth of its range
            ref = infer_reference_point(front, scale=0.1)
            if self.reference_floor > 0:  # at least a fraction of the observed range
                ref = torch.minimum(ref, front.min(0).values - self.reference_floor * span)
            return ref
        return Yr.min(0).values - 0.1 * span  # the worst, less a tenth of the range

    def _constraint_models(
        self, space: Space, done: list[Trial], spec: GPSpec
    ) -> tuple[list[Any], list[float]]:
        """A GP per constraint on its standardized slack (fitted on the trials that reported
        the metric), and the standardized value of zero slack: feasible where the model's
        output is at or above it."""
        models, thresholds = [], []
        for i, c in enumerate(self.constraints):
            rows = [(t, v) for t in done if (v := c.value(t)) is not None]
            if len(rows) < 2:  # nothing to learn from yet: only the front knows of it
                continue
            s = np.array([c.slack(v) for _, v in rows])
            mu, sd = float(s.mean()), float(s.std()) or 1.0
            Xc = torch.tensor(np.stack([space.encode(t.params) for t, _ in rows]))
            Yc = torch.tensor((s - mu) / sd, dtype=torch.float64).unsqueeze(-1)
            key = (space.dim, "constraint", i)
            models.append(self._fitter.fit(spec, Xc, Yc, key=key, warm_iters=self.fit_iters))
            thresholds.append(-mu / sd)
        return models, thresholds


class _Infeasibility:
    """BoTorch's constraint convention for output `index` of the model: <= 0 where the
    standardized slack is at or above `threshold` (feasible)."""

    def __init__(self, index: int, threshold: float) -> None:
        self.index = index
        self.threshold = threshold

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        return self.threshold - samples[..., self.index]
