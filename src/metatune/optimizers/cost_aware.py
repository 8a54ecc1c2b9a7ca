"""Cost-aware Bayesian optimization: EI, EIPS, CArBO and multi-stage CArBO.

All of them share the objective model of the `gp` optimizer (BoTorch SingleTaskGP, LogEI, the same
batched multi-start acquisition search) and the same Sobol warm-up, so a comparison between them
measures only the acquisition. Costs are modelled in log space by GPs and enter the acquisition as
``log EI(x) + eta * log E[1/C(x)]`` (EI x E[1/C]^eta without overflow), with E[1/C] estimated by
quasi-Monte-Carlo over Sobol normal samples of the log costs.

What the optimizers read (never the cache itself):
* finished trials' ``system_attrs["stages"]`` (per-stage ``cost`` and ``cache_hit``) and
  ``system_attrs["cost"]`` (the total);
* ``context.extra["stages"]`` (stage names and their parameters), ``["budget"]`` (``total``,
  ``spent``) and ``["cached_prefixes"]`` (which stage prefixes the cache holds; see eeipu.py).

Without cost records the cost-aware methods are plain LogEI; without a budget total there is no
cooling (eta = 1).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from botorch.utils.sampling import draw_sobol_normal_samples
from gpytorch.mlls import ExactMarginalLogLikelihood
from scipy.stats import qmc

from metatune.optimizers.base import SuggestContext, register_optimizer
from metatune.optimizers.gp import GPOptimizer, _Layout, is_repeat, suggestion_seeds
from metatune.optimizers.random import sobol_point
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
]

log = logging.getLogger("metatune")

DEFAULT_WARMUP = 10


# Pure helpers ------------------------------------------------------------------------------------
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


# What the study tells us about the pipeline --------------------------------------------------------
@dataclass
class _PipelineInfo:
    stages: list[tuple[str, list[str]]] = field(default_factory=list)
    budget_total: float | None = None
    budget_spent: float = 0.0
    cached: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    trial_cost: float = 0.0  # the pipeline's fixed charge per trial (in the budget too)

    @classmethod
    def from_context(cls, context: SuggestContext) -> _PipelineInfo:
        info = cls()
        pipe = context.pipeline
        if pipe is None:
            return info
        pipe.check_space(context.space)
        info.stages = [(st.name, list(st.params)) for st in pipe.stages]
        info.budget_total = pipe.budget_total
        info.budget_spent = pipe.budget_spent
        info.cached = [(c.depth, dict(c.params)) for c in pipe.cached_prefixes]
        info.trial_cost = pipe.trial_cost
        return info

    @property
    def n_stages(self) -> int:
        return len(self.stages)


def _prefix_key(params: Mapping[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple((n, type(params[n]).__name__, params[n]) for n in names)


def _trial_cost(t: Trial) -> float | None:
    c = t.system_attrs.get("cost") if t.system_attrs else None
    try:
        c = float(c)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return c if math.isfinite(c) else None


def _stage_records(t: Trial) -> list[Mapping[str, Any]]:
    recs = t.system_attrs.get("stages") if t.system_attrs else None
    return [r for r in recs if isinstance(r, Mapping)] if isinstance(recs, list) else []


def _spent_at_warmup(history: Sequence[Trial], done: list[Trial], n_warmup: int) -> float:
    """Cost spent by all trials up to the last warm-up trial (by trial number)."""
    ordered = sorted(done, key=lambda t: t.number)[:n_warmup]
    if not ordered:
        return 0.0
    last = ordered[-1].number
    return float(sum(_trial_cost(t) or 0.0 for t in history if t.number <= last))


def measured_overhead(trials: Sequence[Trial], window: int = 20) -> float:
    """Median optimizer time per trial over the latest `window` trials that recorded it, when
    the stage costs are wall seconds (every fresh stage's cost equals its seconds); else 0."""
    recent = sorted(trials, key=lambda t: t.number)[-window:]
    asks = []
    for t in recent:
        for r in _stage_records(t):
            if r.get("cache_hit"):
                continue
            c, s = r.get("cost"), r.get("seconds")
            if not isinstance(c, (int, float)) or not isinstance(s, (int, float)):
                return 0.0
            if abs(float(c) - float(s)) > 1e-9 * max(1.0, abs(float(s))):
                return 0.0  # a stage reports its own cost units: seconds do not compare
        a = t.system_attrs.get("ask_seconds") if t.system_attrs else None
        if isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a):
            asks.append(float(a))
    return float(np.median(asks)) if asks else 0.0


# Cost models -----------------------------------------------------------------------------------
class _LogCostModel:
    """Predicts mean and standard deviation of log cost on some columns of the model encoding.

    The acquisition search asks for thousands of predictions per suggestion, one small batch at
    a time, and BoTorch's general posterior path costs milliseconds per call. An exact GP with a
    constant mean, a Gaussian likelihood and fixed training data has a closed-form posterior, so
    its Cholesky factor and weights are computed once here and a prediction is one kernel
    evaluation and one triangular solve (the same numbers as ``model.posterior``).
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


@dataclass
class _CostTerm:
    """eta * log E[1/C(x; d)], with stages 1..d served from the cache at cost epsilon.

    With ``memo_cooling`` False only the cost of running x from scratch is cooled; the saving from
    the cache, log E[1/C(x; d)] - log E[1/C(x; 0)], is added at full weight.
    """

    models: list[_LogCostModel]
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
        v = self._log_inverse(X, depth)
        if self.memo_cooling or depth == 0:
            return self.eta * v
        fresh = self._log_inverse(X, 0)
        return self.eta * fresh + (v - fresh)


# Optimizers ------------------------------------------------------------------------------------
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
        prefix_candidates: Sobol candidates scored first when a prefix is fixed.
        n_refine: searches refined per suggestion (the free one and the best-screened prefixes).
        trial_overhead: a cost every trial pays however much is cached (the tuner's own time,
            loading, bookkeeping), added to the candidate's cost in E[1/C] so that a nearly free
            cached trial does not look nearly infinitely cheap. A number, in the pipeline's cost
            units; the default 0 matches a budget that counts stage costs only (GPU time, not
            the tuner's CPU). "auto": the median optimizer time of the latest trials
            (``system_attrs["ask_seconds"]``) when costs are wall seconds, else 0; use it when
            the budget is wall time and stages are as quick as the tuner.
        cost_inputs: what a stage's cost GP sees: "own" (that stage's parameters, as in the
            paper) or "prefix" (that stage's and every earlier stage's: a training phase costs
            more on a larger augmented data set, which an earlier stage chose).
        memo_cooling: cool the saving from cached stages with eta, as the paper does (True), or
            cool only the cost of running the candidate from scratch and keep the cache saving
            at full weight (False): the saving is not a property of a cheap region of the space.
        gp_options: passed to the `gp` optimizer (objective model and acquisition search).
    """

    _COST_MODELS = ("total", "stages")

    def __init__(
        self,
        cost_model: str = "total",
        cooling: bool = True,
        memoize: bool = False,
        n_cost_samples: int = 256,
        epsilon: float | None = None,
        n_top: int = 5,
        prefix_candidates: int = 256,
        n_refine: int = 3,
        trial_overhead: float | str = 0.0,
        cost_inputs: str = "own",
        memo_cooling: bool = True,
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
        if cost_inputs not in ("own", "prefix"):
            raise ValueError(f"cost_inputs must be 'own' or 'prefix', got {cost_inputs!r}")
        self.cost_inputs = cost_inputs
        self.memo_cooling = bool(memo_cooling)
        self._cost_warm: dict[Any, dict[str, torch.Tensor]] = {}
        self.last_eta: float | None = None  # for inspection: eta used by the latest suggestion

    # -- suggest --------------------------------------------------------------------------------
    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        space = context.space
        done = self.completed(history)
        if len(done) < self._startup(space):
            return sobol_point(space, context.seed, context.trial_number)
        info = _PipelineInfo.from_context(context)
        torch_seed, rng = suggestion_seeds(context)
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(torch_seed)
            try:
                params, prefix = self._suggest_params(
                    space, done, history, pending, context, info, rng
                )
            except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
                log.warning(
                    "%s suggestion failed (%s); using a Sobol point instead", self.name, exc
                )
                self._warm_state = None
                self._cost_warm.clear()
                return sobol_point(space, context.seed, context.trial_number)
        if is_repeat(params, history, pending):  # never repeat a point exactly: explore instead
            params = {**space.sample(rng), **prefix}
        return params

    def _prefix_pool(
        self, space: Space, info: _PipelineInfo, done: list[Trial], sign: float
    ) -> list[tuple[int, dict[str, Any]]]:
        """(depth, exact stage-prefix values) pairs to search; depth 0 is the free search."""
        return [(0, {})]

    def _suggest_params(
        self,
        space: Space,
        done: list[Trial],
        history: Sequence[Trial],
        pending: Sequence[Trial],
        context: SuggestContext,
        info: _PipelineInfo,
        rng: np.random.Generator,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        logei, X_np, z = self._acquisition(space, done, history, pending, context.sign)
        layout = _Layout(space)
        cost = self._cost_term(space, done, history, info)
        self.last_eta = cost.eta if cost is not None else None
        best: tuple[float, np.ndarray, dict[str, Any]] | None = None
        searches = []
        for depth, prefix in self._prefix_pool(space, info, done, context.sign):
            fixed_idx, fixed_val = self._fixed_columns(space, prefix)

            def acq(
                Xq: torch.Tensor, depth: int = depth, idx=fixed_idx, val=fixed_val
            ) -> torch.Tensor:
                if len(idx):
                    Xq = Xq.clone()
                    Xq[..., idx] = val
                v = logei(Xq)
                if cost is not None:
                    v = v + cost(Xq[:, 0, :], depth)
                return v

            searches.append((depth, prefix, acq))
        if len(searches) > self.n_refine:
            # Screen the prefixes on one Sobol batch each; refine the free search and the best few.
            U = self._sobol_batch(space, rng, self.prefix_candidates)
            with torch.no_grad():
                screen = [float(acq(U).max()) for _, _, acq in searches[1:]]
            keep = np.argsort(screen)[::-1][: self.n_refine - 1] + 1
            searches = [searches[0]] + [searches[i] for i in sorted(keep)]
        for depth, prefix, acq in searches:
            n_full = self.n_candidates
            if depth:  # fewer free dimensions: a smaller first batch suffices
                self.n_candidates = min(n_full, self.prefix_candidates)
            try:
                x = self._maximize(acq, space, layout, X_np, z, rng)
            finally:
                self.n_candidates = n_full
            with torch.no_grad():
                v = float(acq(torch.from_numpy(x[None, None, :])))
            if best is None or v > best[0]:
                best = (v, x, prefix)
        assert best is not None
        params = space.decode(best[1])
        params.update(best[2])  # exact stored values, so cache keys match bit for bit
        return params, best[2]

    @staticmethod
    def _sobol_batch(space: Space, rng: np.random.Generator, n: int) -> torch.Tensor:
        sobol = qmc.Sobol(d=len(space), scramble=True, seed=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            U = sobol.random(n)
        return torch.from_numpy(space.uniform_to_model(np.minimum(U, 1 - 1e-12))).unsqueeze(1)

    @staticmethod
    def _fixed_columns(
        space: Space, prefix: Mapping[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        idx: list[int] = []
        val: list[float] = []
        for name, value in prefix.items():
            sl = space.slice_of(name)
            idx.extend(range(sl.start, sl.stop))
            val.extend(space[name].encode(value))
        return torch.tensor(idx, dtype=torch.long), torch.tensor(val, dtype=torch.float64)

    # -- cost models ------------------------------------------------------------------------------
    def _cost_term(
        self, space: Space, done: list[Trial], history: Sequence[Trial], info: _PipelineInfo
    ) -> _CostTerm | None:
        eta = 1.0
        if self.cooling:
            b0 = _spent_at_warmup(history, done, self._startup(space))
            eta = cooling_eta(info.budget_total, info.budget_spent, b0)
        if eta <= 0 and (self.memo_cooling or not self.memoize):
            return None
        if self.cost_model == "stages":
            if not info.stages:
                return None
            models = self._stage_models(space, done, info)
        else:
            models = self._total_model(space, done)
        if models is None:
            return None
        z = draw_sobol_normal_samples(
            d=len(models), n=self.n_cost_samples, seed=len(done) % (2**31)
        ).to(torch.float64)
        return _CostTerm(
            models=models,
            eta=eta,
            log_eps=math.log(self._epsilon(done, info)),
            z=z,
            overhead=self._overhead(done, info),
            memo_cooling=self.memo_cooling,
        )

    def _overhead(self, done: list[Trial], info: _PipelineInfo) -> float:
        """Fixed cost added to every candidate: `trial_overhead`, plus the pipeline's own
        `trial_cost` when costs are modelled per stage (a total-cost GP already sees it)."""
        extra = info.trial_cost if self.cost_model == "stages" else 0.0
        if self.trial_overhead != "auto":
            return float(self.trial_overhead) + extra
        return measured_overhead(done) + extra

    def _epsilon(self, done: list[Trial], info: _PipelineInfo) -> float:
        if self.epsilon is not None:
            return float(self.epsilon)
        hits, fresh = [], []
        for t in done:
            for k, r in enumerate(_stage_records(t)):
                c = r.get("cost")
                if isinstance(c, (int, float)) and math.isfinite(c) and c > 0:
                    (hits if r.get("cache_hit") else fresh).append((k, float(c)))
        if hits:
            return float(np.median([c for _, c in hits]))
        if fresh:
            per_stage = {}
            for k, c in fresh:
                per_stage.setdefault(k, []).append(c)
            return 0.01 * min(float(np.median(v)) for v in per_stage.values())
        return 1e-3

    def _total_model(self, space: Space, done: list[Trial]) -> list[_LogCostModel] | None:
        rows, ys = [], []
        for t in done:
            c = _trial_cost(t)
            if c is None or c <= 0 or any(r.get("cache_hit") for r in _stage_records(t)):
                continue  # a partly cached run does not say what a fresh run costs
            rows.append(space.encode(t.params))
            ys.append(math.log(c))
        if len(ys) < 3:
            return None
        cols = np.arange(space.dim)
        return [self._fit_cost(("total",), np.stack(rows), np.array(ys), cols)]

    def _stage_models(
        self, space: Space, done: list[Trial], info: _PipelineInfo
    ) -> list[_LogCostModel] | None:
        data: list[tuple[list[np.ndarray], list[float]]] = [([], []) for _ in info.stages]
        any_cost = False
        for t in done:
            recs = _stage_records(t)
            if not recs:
                continue
            enc = space.encode(t.params)
            for k, r in enumerate(recs[: info.n_stages]):
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
        for k in range(info.n_stages):
            upto = info.stages[: k + 1] if self.cost_inputs == "prefix" else info.stages[k : k + 1]
            params = [p for _, names in upto for p in names]
            cols = (
                np.concatenate(
                    [np.arange(space.slice_of(p).start, space.slice_of(p).stop) for p in params]
                )
                if params
                else np.zeros(0, dtype=int)
            )
            rows, ys = data[k]
            if len(ys) < 3 or len(cols) == 0:
                ref = ys if ys else all_y
                mean = float(np.mean(ref))
                spread = float(np.std(ref)) if len(ref) > 1 else 0.0
                models.append(_LogCostModel(cols, None, mean, spread))
            else:
                models.append(self._fit_cost(("stage", k), np.stack(rows), np.array(ys), cols))
        return models

    def _fit_cost(
        self, key: Any, X_full: np.ndarray, y: np.ndarray, cols: np.ndarray
    ) -> _LogCostModel:
        """A GP on standardized log cost over `cols`, warm-started from the previous fit."""
        y_mean, y_std = float(y.mean()), float(y.std())
        if y_std < 1e-9:
            return _LogCostModel(cols, None, y_mean, 0.0)
        X = torch.tensor(X_full[:, cols], dtype=torch.float64)
        Y = torch.tensor((y - y_mean) / y_std, dtype=torch.float64).unsqueeze(-1)
        covar = get_covar_module_with_dim_scaled_prior(ard_num_dims=X.shape[-1])
        model = SingleTaskGP(X, Y, covar_module=covar, outcome_transform=None)
        full_key = (key, X.shape[-1])
        warm = self._cost_warm.get(full_key)
        if warm is not None:
            model.load_state_dict(warm, strict=False)
        with gpytorch.settings.lazily_evaluate_kernels(False):
            try:
                fit_gpytorch_mll(
                    ExactMarginalLogLikelihood(model.likelihood, model),
                    optimizer_kwargs={"options": {"maxiter": self.fit_iters if warm else 200}},
                )
            except Exception:
                model = SingleTaskGP(X, Y, covar_module=covar, outcome_transform=None)
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        self._cost_warm[full_key] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return _LogCostModel(cols, model.eval(), y_mean, y_std)


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
