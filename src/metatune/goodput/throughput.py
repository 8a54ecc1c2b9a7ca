"""Pollux's step-time model and its online fit.

    T_grad(m) = alpha_c + beta_c * m                       compute of one micro-batch of m
    T_sync(K) = 0 (K = 1);  alpha_r + beta_r * (K - 2)      K replicas on one node
                            alpha_n + beta_n * (K - 2)      K replicas over several nodes
    T_iter    = s * T_grad + (T_grad^gamma + T_sync^gamma)^(1 / gamma) + alpha_o

with s extra accumulation steps and gamma in [1, 10] the overlap of the last backward with the
all-reduce (1: none, large: max()). alpha_o, the time of the optimizer step and whatever else
happens once per step, is an addition to Pollux's seven parameters: on a CPU, or with a small
model, it is a sizeable share of a step, and charging it to every micro-batch overstates what
accumulation costs. It is held at 0 until two accumulation counts were measured. The parameters
are fitted to measured step times by
bounded minimization of the RMS log error (SciPy L-BFGS-B). Parameters the data cannot
identify yet are held at priors: with one micro-batch size seen, the split of T_grad into a
fixed and a per-example part is held at `prior_fixed_fraction` (so larger micro-batches look
somewhat faster per example and get tried); without K > 1 the sync terms stay at their priors;
without K > 2 the per-replica slopes stay at theirs; without several nodes the cross-node terms
follow the within-node ones (times `prior_cross_node`); gamma is fitted only once several
micro-batch sizes were seen with K > 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["StepTimeParams", "ThroughputModel", "predict_step_time"]

_NAMES = ("alpha_c", "beta_c", "alpha_r", "beta_r", "alpha_n", "beta_n", "gamma", "alpha_o")
_MIN = 1e-9


@dataclass(frozen=True)
class StepTimeParams:
    """The seven parameters of the step-time model (seconds, seconds per example, ...)."""

    alpha_c: float = 1e-3
    beta_c: float = 1e-4
    alpha_r: float = 1e-3
    beta_r: float = 1e-4
    alpha_n: float = 5e-3
    beta_n: float = 5e-4
    gamma: float = 1.0
    alpha_o: float = 0.0

    def as_array(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in _NAMES], dtype=float)

    @classmethod
    def from_array(cls, x: Iterable[float]) -> StepTimeParams:
        return cls(**dict(zip(_NAMES, (float(v) for v in x), strict=True)))


def predict_step_time(
    params: StepTimeParams,
    micro_batch: np.ndarray | float,
    accum_steps: np.ndarray | float,
    replicas: np.ndarray | float = 1,
    nodes: np.ndarray | float = 1,
) -> np.ndarray:
    """T_iter for micro-batch m, `accum_steps` s extra micro-batches, K replicas on `nodes`."""
    m = np.asarray(micro_batch, dtype=float)
    s = np.asarray(accum_steps, dtype=float)
    k = np.asarray(replicas, dtype=float)
    n = np.asarray(nodes, dtype=float)
    p = params
    t_grad = p.alpha_c + p.beta_c * m
    within = p.alpha_r + p.beta_r * np.maximum(k - 2.0, 0.0)
    across = p.alpha_n + p.beta_n * np.maximum(k - 2.0, 0.0)
    t_sync = np.where(k <= 1, 0.0, np.where(n > 1, across, within))
    g = p.gamma
    overlap = (t_grad**g + t_sync**g) ** (1.0 / g)
    return s * t_grad + overlap + p.alpha_o


@dataclass
class _Obs:
    micro_batch: int
    accum_steps: int
    replicas: int
    nodes: int
    times: list[float]


class ThroughputModel:
    """Measured step times per configuration and the step-time model fitted to them.

    Args:
        window: step times kept per configuration (the median of them is fitted, so a slow
            outlier, e.g. a step that included an evaluation, does not move the fit).
        prior_fixed_fraction: with one micro-batch size seen, the share of T_grad held fixed
            (alpha_c); the rest scales with m.
        prior_cross_node: cross-node sync terms as a multiple of the within-node ones until
            several nodes were measured.
    """

    def __init__(
        self,
        window: int = 32,
        prior_fixed_fraction: float = 0.5,
        prior_cross_node: float = 4.0,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        if not 0.0 < prior_fixed_fraction < 1.0:
            raise ValueError(
                f"prior_fixed_fraction must be in (0, 1), got {prior_fixed_fraction!r}"
            )
        self.window = int(window)
        self.prior_fixed_fraction = float(prior_fixed_fraction)
        self.prior_cross_node = float(prior_cross_node)
        self._obs: dict[tuple[int, int, int, int], _Obs] = {}
        self.params: StepTimeParams | None = None
        self.fit_error: float = float("nan")  # RMS log error of the last fit

    # -- data --------------------------------------------------------------------------------
    def observe(
        self,
        micro_batch: int,
        accum_steps: int,
        step_time: float,
        replicas: int = 1,
        nodes: int = 1,
    ) -> None:
        """Record one optimizer step's wall time for the configuration."""
        if not (step_time > 0 and math.isfinite(step_time)):
            return
        key = (int(micro_batch), int(accum_steps), int(replicas), int(nodes))
        obs = self._obs.get(key)
        if obs is None:  # (it runs every step: no new record unless the key is new)
            obs = self._obs[key] = _Obs(*key, times=[])
        obs.times.append(float(step_time))
        if len(obs.times) > self.window:
            del obs.times[0]

    @property
    def configurations(self) -> list[tuple[int, int, int, int]]:
        """(micro_batch, accum_steps, replicas, nodes) of every configuration measured."""
        return sorted(self._obs)

    def _table(self) -> np.ndarray:
        rows = [
            (o.micro_batch, o.accum_steps, o.replicas, o.nodes, float(np.median(o.times)))
            for o in self._obs.values()
        ]
        return np.array(rows, dtype=float).reshape(-1, 5)

    # -- fitting -----------------------------------------------------------------------------
    def fit(self) -> StepTimeParams | None:
        """Fit the model to the medians per configuration; None before any measurement."""
        from scipy.optimize import minimize, nnls

        data = self._table()
        if len(data) == 0:
            return None
        m, s, k, n, t = data.T
        # Per-micro-batch compute, assuming no sync: a starting point and the prior scale.
        t_grad0 = float(np.median(t / (s + 1.0)))
        m_ref = float(np.median(m))
        fixed = self.prior_fixed_fraction
        prior = {
            "alpha_c": fixed * t_grad0,
            "beta_c": (1.0 - fixed) * t_grad0 / m_ref,
            "alpha_r": 0.1 * t_grad0,
            "beta_r": 0.01 * t_grad0,
            "alpha_n": self.prior_cross_node * 0.1 * t_grad0,
            "beta_n": self.prior_cross_node * 0.01 * t_grad0,
            "gamma": 1.0,
            "alpha_o": 0.0,
        }
        if self.params is not None:  # warm start from the previous fit
            prior.update({k2: v for k2, v in asdict(self.params).items() if k2 in prior})
            # ...but keep the identifiability priors below anchored on the data.
        several_m = len(np.unique(m)) > 1
        multi = bool(np.any(k > 1))
        multi_node = bool(np.any(n > 1))
        wide = bool(np.any(k > 2))
        free = {
            "alpha_c": True,
            "beta_c": several_m,
            "alpha_r": multi and bool(np.any((k > 1) & (n <= 1))),
            "beta_r": wide and bool(np.any((k > 2) & (n <= 1))),
            "alpha_n": multi_node,
            "beta_n": multi_node and bool(np.any((k > 2) & (n > 1))),
            "gamma": multi and several_m,
            "alpha_o": len(np.unique(s)) > 1,
        }
        ratio_c = (1.0 - fixed) / (fixed * m_ref)  # beta_c / alpha_c held with one m

        scale = max(t_grad0, _MIN)
        unit = {name: scale for name in _NAMES}
        unit["beta_c"] = scale / m_ref
        unit["gamma"] = 1.0

        def unpack(z: np.ndarray) -> StepTimeParams:
            # z holds the free parameters in units of `unit`, so L-BFGS-B sees numbers near 1.
            vals = dict(prior)
            it = iter(z)
            for name in _NAMES:
                if free[name]:
                    vals[name] = float(next(it)) * unit[name]
            if not free["beta_c"]:
                vals["beta_c"] = vals["alpha_c"] * ratio_c
            if not free["alpha_n"]:
                vals["alpha_n"] = self.prior_cross_node * vals["alpha_r"]
            if not free["beta_n"]:
                vals["beta_n"] = self.prior_cross_node * vals["beta_r"]
            if not free["beta_r"]:
                vals["beta_r"] = 0.1 * vals["alpha_r"]
            return StepTimeParams(**vals)

        if not multi:
            # One replica: no sync term, so the model is linear in its free parameters
            # (alpha_c, beta_c, alpha_o). Nonnegative least squares on relative errors (the
            # log error to first order) finds them in a fraction of L-BFGS's time, which keeps
            # re-plans cheap next to millisecond steps.
            cols = [(s + 1.0) * (1.0 if free["beta_c"] else 1.0 + ratio_c * m)]
            if free["beta_c"]:
                cols.append((s + 1.0) * m)
            if free["alpha_o"]:
                cols.append(np.ones_like(t))
            design = np.stack(cols, axis=1)
            coef, _ = nnls(design / t[:, None], np.ones_like(t))
            vals = dict(prior, alpha_c=float(coef[0]))
            vals["beta_c"] = float(coef[1]) if free["beta_c"] else vals["alpha_c"] * ratio_c
            if free["alpha_o"]:
                vals["alpha_o"] = float(coef[-1])
            if vals["alpha_c"] + vals["beta_c"] > 0:
                self.params = StepTimeParams(**vals)
                pred = predict_step_time(self.params, m, s, k, n)
                self.fit_error = float(
                    np.sqrt(np.mean((np.log(np.maximum(pred, _MIN)) - np.log(t)) ** 2))
                )
                return self.params

        bounds = []
        x0 = []
        for name in _NAMES:
            if not free[name]:
                continue
            lo, hi = (1.0, 10.0) if name == "gamma" else (0.0, 1e3)
            bounds.append((lo, hi))
            x0.append(min(max(prior[name] / unit[name], lo), hi))
        log_t = np.log(t)

        def loss(z: np.ndarray) -> float:
            pred = predict_step_time(unpack(z), m, s, k, n)
            return float(np.sqrt(np.mean((np.log(np.maximum(pred, _MIN)) - log_t) ** 2)))

        res = minimize(loss, np.array(x0), method="L-BFGS-B", bounds=bounds)
        best = res.x if res.fun <= loss(np.array(x0)) else np.array(x0)
        self.params = unpack(best)
        self.fit_error = loss(best)
        return self.params

    def predict(self, micro_batch, accum_steps, replicas=1, nodes=1) -> np.ndarray:  # noqa: ANN001 - arrays or scalars
        """Predicted step time (fits first if never fitted); raises before any measurement."""
        if self.params is None and self.fit() is None:
            raise RuntimeError("no step time measured yet")
        assert self.params is not None
        return predict_step_time(self.params, micro_batch, accum_steps, replicas, nodes)

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "window": self.window,
            "prior_fixed_fraction": self.prior_fixed_fraction,
            "prior_cross_node": self.prior_cross_node,
            "observations": [
                [o.micro_batch, o.accum_steps, o.replicas, o.nodes, list(o.times)]
                for o in self._obs.values()
            ],
            "params": None if self.params is None else asdict(self.params),
            "fit_error": self.fit_error,
        }

    def load_state_dict(self, state: dict) -> None:
        self.window = int(state["window"])
        self.prior_fixed_fraction = float(state["prior_fixed_fraction"])
        self.prior_cross_node = float(state["prior_cross_node"])
        self._obs = {}
        for mb, s, k, n, times in state["observations"]:
            key = (int(mb), int(s), int(k), int(n))
            self._obs[key] = _Obs(*key, times=[float(x) for x in times])
        p = state["params"]
        names = {f.name for f in fields(StepTimeParams)}
        self.params = None if p is None else StepTimeParams(**{k: p[k] for k in names if k in p})
        self.fit_error = float(state["fit_error"])
