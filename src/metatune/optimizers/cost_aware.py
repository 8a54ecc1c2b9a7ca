"""Cost-aware Bayesian optimization: EI, EIPS, CArBO and multi-stage CArBO.

All of them share the objective model of the `gp` optimizer (BoTorch SingleTaskGP, LogEI, the same
batched multi-start acquisition search) and the same Sobol warm-up, so a comparison between them
measures only the acquisition. Costs are modelled in log space by GPs and enter the acquisition as
``log EI(x) + eta * log E[1/C(x)]`` (EI x E[1/C]^eta without overflow), with E[1/C] estimated by
quasi-Monte-Carlo over Sobol normal samples of the log costs.

What the optimizers read (never the cache itself):
* finished trials' per-stage records (``SystemAttr.STAGES``: ``cost`` and ``cache_hit``) and
  total cost (``SystemAttr.COST``);
* ``context.pipeline``, a `PipelineContext`: the stages and their parameters, the budget
  (total and spent), which stage prefixes the cache holds (see eeipu.py) and the fixed charge
  per trial.

Without cost records the cost-aware methods are plain LogEI; without a budget total there is no
cooling (eta = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.utils.sampling import draw_sobol_normal_samples

from metatune.direction import Direction
from metatune.optimizers._gp.acquisition import (
    CostAwareAcquisition,
    CostTerm,
    FixedFeatures,
    cooling_eta,
    log_expected_inverse_cost,
    score_together,
)
from metatune.optimizers._gp.cost_models import (
    COST_INPUTS,
    LogCostModel,
    cache_epsilon,
    stage_cost_models,
    total_cost_model,
)
from metatune.optimizers._gp.fit import WarmStartFitter
from metatune.optimizers._gp.history import (
    charged_tuner_cost,
    measured_overhead,
    spent_at_warmup,
)
from metatune.optimizers._gp.search import Search, sobol_batch
from metatune.optimizers.base import SuggestContext, register_optimizer
from metatune.optimizers.gp import GPOptimizer
from metatune.pipeline.context import PipelineContext
from metatune.space import Space
from metatune.trial import Trial

__all__ = [
    "EIOptimizer",
    "EIPSOptimizer",
    "CArBOOptimizer",
    "MSCArBOOptimizer",
    "CostAwareOptimizer",
    "cooling_eta",
    "log_expected_inverse_cost",
    "measured_overhead",
]

DEFAULT_WARMUP = 10


def pipeline_of(context: SuggestContext) -> PipelineContext:
    """The study's pipeline, or an empty one (no stages, no budget) for a plain study."""
    return context.pipeline if context.pipeline is not None else PipelineContext()


@register_optimizer("ei")
class EIOptimizer(GPOptimizer):
    """Cost-blind LogEI: the `gp` optimizer with the shared 10-trial Sobol warm-up."""

    def __init__(self, n_startup_trials: int | None = DEFAULT_WARMUP, **gp_options: Any) -> None:
        super().__init__(n_startup_trials=n_startup_trials, **gp_options)


class CostAwareOptimizer(GPOptimizer):
    """LogEI plus eta * log E[1/C] from GPs on log cost; the base of EIPS, CArBO and EEIPU.

    Args:
        cost_model: "total" (one GP on log total cost over all parameters) or "stages" (one GP
            per stage on that stage's own parameters, costs summed; needs the stage structure).
        cooling: eta = (B - spent) / (B - B0) (B0: spent at the end of warm-up) instead of 1.
        memoize: search candidates that reuse cached prefixes of the best trials (EEIPU).
        n_cost_samples: quasi-MC samples for E[1/C].
        epsilon: cost charged to a cached stage in the acquisition; default: the median recorded
            cost of cache hits, or 1% of the cheapest stage's median cost before any hit.
        n_top: best completed trials whose cached prefixes enter the prefix pool.
        prefix_candidates: Sobol candidates scored first when a prefix is fixed, and to screen
            the prefixes when there are more than `n_refine`.
        n_refine: searches refined per suggestion (the free one and the best-screened prefixes).
        trial_overhead: a cost every trial pays however much is cached (the tuner's own time,
            loading, bookkeeping), added to the candidate's cost in E[1/C] so that a nearly free
            cached trial does not look nearly infinitely cheap. "auto" (the default): what the
            budget charges for the tuner, i.e. the median tuner's cost a Pipeline charged the
            latest trials (``system_attrs["tuner_cost"]``, 0 when it does not count the tuner's
            time, see ``Pipeline(count_tuner_time=...)``); for trials without that record, the
            median optimizer time (``system_attrs["ask_seconds"]``) when costs are wall seconds,
            else 0. A number: that cost, in the pipeline's cost units.
        cost_inputs: what a stage's cost GP sees: "own" (that stage's parameters, as in the
            paper) or "prefix" (that stage's and every earlier stage's: a training phase costs
            more on a larger augmented data set, which an earlier stage chose).
        memo_cooling: cool the saving from cached stages with eta, as the paper does (True), or
            cool only the cost of running the candidate from scratch and keep the cache saving
            at full weight (False): the saving is not a property of a cheap region of the space.
        hedge: None (the published acquisition) or a floor in (0, 1]: a cost-aware candidate
            (a cheap region, a cached prefix) is taken only while its EI is at least `hedge`
            times the best EI of a cost-blind search run next to it, else the cost-blind
            candidate is, so cheapness never buys a much less promising trial.
        cost_refit: re-optimize a cost GP's hyperparameters once its data has grown by this
            fraction since their last fit, and in between keep them on the new data (0: every
            ask). Costs are smooth and their hyperparameters settle early; each fit costs about
            as much as the objective GP's.
        gp_options: passed to the `gp` optimizer (objective model and acquisition search).
    """

    _COST_MODELS = ("total", "stages")

    def __init__(
        self,
        cost_model: str = "total",
        cooling: bool = True,
        memoize: bool = False,
        n_cost_samples: int = 64,
        epsilon: float | None = None,
        n_top: int = 5,
        prefix_candidates: int = 256,
        n_refine: int = 3,
        trial_overhead: float | str = "auto",
        cost_inputs: str = "own",
        memo_cooling: bool = True,
        cost_refit: float = 0.1,
        hedge: float | None = None,
        n_startup_trials: int | None = DEFAULT_WARMUP,
        **gp_options: Any,
    ) -> None:
        if gp_options.get("acquisition", "logei") != "logei":
            raise ValueError("cost-aware optimizers use acquisition='logei' only")
        super().__init__(n_startup_trials=n_startup_trials, **gp_options)
        if cost_model not in self._COST_MODELS:
            raise ValueError(f"cost_model must be one of {self._COST_MODELS}, got {cost_model!r}")
        if not (isinstance(n_cost_samples, int) and n_cost_samples >= 16):
            raise ValueError(f"n_cost_samples must be an integer >= 16, got {n_cost_samples!r}")
        if epsilon is not None and not epsilon > 0:
            raise ValueError(f"epsilon must be positive or None, got {epsilon!r}")
        if not (isinstance(n_top, int) and n_top >= 1):
            raise ValueError(f"n_top must be a positive integer, got {n_top!r}")
        self.cost_model = cost_model
        self.cooling = bool(cooling)
        self.memoize = bool(memoize)
        self.n_cost_samples = n_cost_samples
        self.epsilon = epsilon
        self.n_top = n_top
        if not (isinstance(prefix_candidates, int) and prefix_candidates >= 16):
            raise ValueError(
                f"prefix_candidates must be an integer >= 16, got {prefix_candidates!r}"
            )
        self.prefix_candidates = prefix_candidates
        if not (isinstance(n_refine, int) and n_refine >= 1):
            raise ValueError(f"n_refine must be a positive integer, got {n_refine!r}")
        self.n_refine = n_refine
        if not (
            trial_overhead == "auto"
            or (
                isinstance(trial_overhead, (int, float))
                and not isinstance(trial_overhead, bool)
                and math.isfinite(trial_overhead)
                and trial_overhead >= 0
            )
        ):
            raise ValueError(
                f"trial_overhead must be 'auto' or a non-negative number, got {trial_overhead!r}"
            )
        self.trial_overhead = trial_overhead
        if cost_inputs not in COST_INPUTS:
            raise ValueError(f"cost_inputs must be 'own' or 'prefix', got {cost_inputs!r}")
        self.cost_inputs = cost_inputs
        self.memo_cooling = bool(memo_cooling)
        if (
            isinstance(cost_refit, bool)
            or not isinstance(cost_refit, (int, float))
            or not 0 <= cost_refit <= 10
        ):
            raise ValueError(f"cost_refit must be a number in [0, 10], got {cost_refit!r}")
        self.cost_refit = float(cost_refit)
        if hedge is not None and (
            isinstance(hedge, bool) or not isinstance(hedge, (int, float)) or not 0 < hedge <= 1
        ):
            raise ValueError(f"hedge must be None or a number in (0, 1], got {hedge!r}")
        self.hedge = None if hedge is None else float(hedge)
        self._hedged: tuple[Any, int] | None = None  # this suggestion's cost-blind search
        self._cost_fitter = WarmStartFitter()  # one warm start per cost GP
        self.last_eta: float | None = None  # for inspection: eta used by the latest suggestion

    # -- hooks of the suggestion skeleton -------------------------------------------------------
    def _label(self) -> str:
        return self.name

    def _check_context(self, context: SuggestContext) -> None:
        pipeline_of(context).check_space(context.space)

    def _forget(self) -> None:
        super()._forget()
        self._cost_fitter.clear()

    def _searches(
        self,
        objective: AcquisitionFunction,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        context: SuggestContext,
        rng: np.random.Generator,
    ) -> list[Search]:
        """One search per entry of the prefix pool, each with the cost term at its depth; when
        there are more than `n_refine`, the free one and the best-screened prefixes."""
        pipe = pipeline_of(context)
        cost = self._cost_term(space, done, history, pipe)
        self.last_eta = cost.eta if cost is not None else None
        pool = self._prefix_pool(space, pipe, done, Direction.parse(context.direction))
        searches = []
        for depth, prefix in pool:
            acquisition = CostAwareAcquisition(objective, cost, depth)
            acquisition = FixedFeatures.at(acquisition, space, prefix)
            # fewer free dimensions: a smaller first batch suffices
            n = min(self.n_candidates, self.prefix_candidates) if depth else self.n_candidates
            searches.append(Search(prefix, acquisition, n))
        if len(searches) > self.n_refine:
            # Screen the prefixes on one Sobol batch each (all in one call); refine the free
            # search and the best few.
            U = sobol_batch(space, rng, self.prefix_candidates)
            score = score_together([s.acquisition for s in searches[1:]])
            with torch.no_grad():
                screen = [float(v.max()) for v in score([U] * (len(searches) - 1))]
            keep = np.argsort(screen)[::-1][: self.n_refine - 1] + 1
            searches = [searches[0]] + [searches[i] for i in sorted(keep)]
        self._hedged = None
        if self.hedge is not None and cost is not None:
            # the cost-blind search, the reference of the hedge (see `_choose`)
            self._hedged = (objective, len(searches))
            blind = CostAwareAcquisition(objective, cost, 0, weight=0.0)
            searches.append(Search({}, blind, self.n_candidates))
        return searches

    def _choose(self, searches: Sequence[Search], found: Sequence[tuple[np.ndarray, float]]) -> int:
        """With `hedge`: the best cost-aware point while its EI is at least `hedge` times the
        cost-blind search's best EI, else the cost-blind point."""
        if self._hedged is None:
            return super()._choose(searches, found)
        objective, blind = self._hedged
        i = max(range(blind), key=lambda j: found[j][1])
        acq = searches[i].acquisition
        X = torch.from_numpy(found[i][0][None, None, :])
        with torch.no_grad():
            log_ei = float(objective(acq.fix(X) if isinstance(acq, FixedFeatures) else X))
        return i if log_ei >= found[blind][1] + math.log(self.hedge) else blind

    def _prefix_pool(
        self, space: Space, pipe: PipelineContext, done: list[Trial], direction: Direction
    ) -> list[tuple[int, dict[str, Any]]]:
        """(depth, exact stage-prefix values) pairs to search; depth 0 is the free search."""
        return [(0, {})]

    # -- the cost term ----------------------------------------------------------------------------
    def _cost_term(
        self, space: Space, done: list[Trial], history: Sequence[Trial], pipe: PipelineContext
    ) -> CostTerm | None:
        eta = 1.0
        if self.cooling:
            b0 = spent_at_warmup(history, done, self._startup(space))
            eta = cooling_eta(pipe.budget_total, pipe.budget_spent, b0)
        if eta <= 0 and (self.memo_cooling or not self.memoize):
            return None
        models = self._cost_models(space, done, pipe)
        if models is None:
            return None
        z = draw_sobol_normal_samples(
            d=len(models), n=self.n_cost_samples, seed=len(done) % (2**31)
        ).to(torch.float64)
        epsilon = cache_epsilon(done) if self.epsilon is None else float(self.epsilon)
        return CostTerm(
            models=models,
            eta=eta,
            log_eps=math.log(epsilon),
            z=z,
            overhead=self._overhead(done, pipe),
            memo_cooling=self.memo_cooling,
        )

    def _cost_models(
        self, space: Space, done: list[Trial], pipe: PipelineContext
    ) -> list[LogCostModel] | None:
        """The log-cost models of the cost term, or None (then the acquisition is LogEI)."""
        if self.cost_model == "total":
            return total_cost_model(
                self._cost_fitter, space, done, self.fit_iters, refit_growth=self.cost_refit
            )
        if not pipe.stages:
            return None
        return stage_cost_models(
            self._cost_fitter,
            space,
            done,
            pipe,
            self.fit_iters,
            inputs=self.cost_inputs,
            refit_growth=self.cost_refit,
        )

    def _overhead(self, done: list[Trial], pipe: PipelineContext) -> float:
        """Fixed cost added to every candidate: `trial_overhead`, plus the pipeline's own
        `trial_cost` when costs are modelled per stage (a total-cost GP already sees it)."""
        extra = pipe.trial_cost if self.cost_model == "stages" else 0.0
        if self.trial_overhead != "auto":
            return float(self.trial_overhead) + extra
        charged = charged_tuner_cost(done)
        if charged is None:
            return measured_overhead(done) + extra
        # a total-cost GP is fitted to trial costs, which already hold the tuner's charge
        return (charged if self.cost_model == "stages" else 0.0) + extra


@register_optimizer("eips")
class EIPSOptimizer(CostAwareOptimizer):
    """EI per second (Snoek et al. 2012): EI x E[1/c] from one GP on log total cost, no cooling."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "total")
        options.setdefault("cooling", False)
        super().__init__(**options)


@register_optimizer("carbo")
class CArBOOptimizer(CostAwareOptimizer):
    """CArBO (Lee et al. 2020): EI x E[1/c]^eta, one GP on log total cost, eta cooled 1 -> 0."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "total")
        options.setdefault("cooling", True)
        super().__init__(**options)


@register_optimizer("ms-carbo")
class MSCArBOOptimizer(CostAwareOptimizer):
    """Multi-stage CArBO: per-stage cost GPs summed, eta cooling, no memoization."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("cost_model", "stages")
        options.setdefault("cooling", True)
        super().__init__(**options)
