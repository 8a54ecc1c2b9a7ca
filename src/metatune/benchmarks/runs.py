"""What one benchmark run recorded (`BenchmarkRun`), and the statistics the pages report over runs.

A run is built once, from the trials of its study (`BenchmarkRun.from_trials`), whichever pipeline
it ran (synthetic or real); `to_dict` gives the JSON the benchmark scripts write, with the keys and
order of the published docs/benchmarks/*.json, which `--merge` and `--from` read back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metatune.trial import SystemAttr, Trial, TrialState

__all__ = [
    "N_WARMUP",
    "TIE_RTOL",
    "BenchmarkRun",
    "best_at_costs",
    "paired_comparison",
    "relative_trial_cost",
    "same_value",
    "summarize_runs",
]

N_WARMUP = 10  # Sobol warm-up trials every method of a pipeline benchmark starts with
TIE_RTOL = 1e-6  # best objectives this close (relative) are reported as ties, not as "worse"


@dataclass(frozen=True)
class BenchmarkRun:
    """One optimization run: per-trial objective values, cumulative costs, best-so-far values,
    stages reused from the cache and per-stage costs, in trial order.

    Read it by attribute, or by key like the dict it replaces (``run["n_trials"]``).
    `budget_exhausted` is recorded for real pipelines only (a run there can stop at its trial cap
    with budget left); `optimal_value` is NaN where the optimum is unknown.
    """

    method: str
    seed: int
    pipeline: str
    budget: float
    n_warmup: int
    optimal_value: float
    values: tuple[float, ...]
    costs: tuple[float, ...]
    best_so_far: tuple[float, ...]
    reused_stages: tuple[int, ...]
    stage_costs: tuple[tuple[float, ...], ...]
    ask_seconds: tuple[float, ...] = ()
    budget_exhausted: bool | None = None

    @property
    def n_trials(self) -> int:
        """Candidates evaluated, warm-up included."""
        return len(self.values)

    @property
    def best(self) -> float:
        """The best objective found (NaN without a trial)."""
        return self.best_so_far[-1] if self.best_so_far else math.nan

    @classmethod
    def from_trials(
        cls,
        trials: Iterable[Trial],
        *,
        method: str,
        seed: int,
        pipeline: str,
        budget: float,
        n_warmup: int,
        optimal_value: float = math.nan,
        ask_seconds: Sequence[float] = (),
        record_budget_exhausted: bool = False,
    ) -> BenchmarkRun:
        """The run of a study's finished `trials` (minimized objective; a failed trial's value is
        NaN and its stages' cost still counts)."""
        values, costs, best, reused, stage_costs = [], [], [], [], []
        spent, running = 0.0, math.inf
        for t in trials:
            if not t.state.finished:
                continue
            spent += float(t.system_attrs.get(SystemAttr.COST, 0.0))
            value = (
                float(t.value)
                if t.state is TrialState.COMPLETE and t.value is not None
                else math.nan
            )
            if math.isfinite(value):
                running = min(running, value)
            values.append(value)
            costs.append(spent)
            best.append(running)
            records = t.system_attrs.get(SystemAttr.STAGES, [])
            reused.append(sum(1 for r in records if r.get("cache_hit")))
            stage_costs.append(tuple(float(r.get("cost", math.nan)) for r in records))
        return cls(
            method=method,
            seed=seed,
            pipeline=pipeline,
            budget=float(budget),
            n_warmup=n_warmup,
            optimal_value=float(optimal_value),
            values=tuple(values),
            costs=tuple(costs),
            best_so_far=tuple(best),
            reused_stages=tuple(reused),
            stage_costs=tuple(stage_costs),
            ask_seconds=tuple(float(s) for s in ask_seconds),
            budget_exhausted=spent >= budget if record_budget_exhausted else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of the run, in the key order of the published pages' data."""
        out: dict[str, Any] = {
            "method": self.method,
            "seed": self.seed,
            "pipeline": self.pipeline,
            "budget": self.budget,
            "n_warmup": self.n_warmup,
            "n_trials": self.n_trials,
            "best": self.best,
            "optimal_value": self.optimal_value,
            "values": list(self.values),
            "costs": list(self.costs),
            "best_so_far": list(self.best_so_far),
            "reused_stages": list(self.reused_stages),
            "stage_costs": [list(c) for c in self.stage_costs],
            "ask_seconds": list(self.ask_seconds),
        }
        if self.budget_exhausted is not None:
            out["budget_exhausted"] = self.budget_exhausted
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


def best_at_costs(costs: Sequence[float], best: Sequence[float], grid: np.ndarray) -> np.ndarray:
    """Best-so-far value at each cost of `grid` (NaN before the first trial finished)."""
    out = np.full(len(grid), np.nan)
    idx = np.searchsorted(np.asarray(costs), grid, side="right") - 1
    ok = idx >= 0
    out[ok] = np.asarray(best)[idx[ok]]
    return out


def same_value(a: float, b: float, rel: float = TIE_RTOL) -> bool:
    """Whether two best objectives are a tie (equal within `rel`, relative, or absolute below 1)."""
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def relative_trial_cost(cumulative: Sequence[float], n_warmup: int) -> float | None:
    """Mean cost of a trial after warm-up over the mean cost of a warm-up trial.

    The warm-up is the same Sobol points for every method in a seed, so this says how much of a
    fresh trial's cost a method's own choices paid: cheap regions, and cached prefixes that save
    real work (a hit on a nearly free first stage barely moves it). None without trials after
    warm-up.
    """
    c = np.diff(np.concatenate([[0.0], np.asarray(cumulative, float)]))
    if len(c) <= n_warmup or n_warmup < 1:
        return None
    warm = float(np.mean(c[:n_warmup]))
    return float(np.mean(c[n_warmup:]) / warm) if warm > 0 else None


def paired_comparison(
    ours: Mapping[Any, float], theirs: Mapping[Any, float]
) -> tuple[int, int, float | None]:
    """(seeds where `theirs` found a lower best than `ours`, seeds both ran, two-sided Wilcoxon
    signed-rank p on the per-seed differences, None if every difference is zero).

    Paired by seed because every method of a seed starts from the same warm-up points, so a
    seed's luck is shared. With 5 seeds the smallest possible p is 0.0625: a lower median over
    5 seeds is a reading of the runs, not evidence of a better method.
    """
    from scipy.stats import wilcoxon

    common = sorted(set(ours) & set(theirs))
    # ties (equal within TIE_RTOL) count as zero differences, which the test drops
    diffs = [0.0 if same_value(theirs[k], ours[k]) else theirs[k] - ours[k] for k in common]
    wins = sum(1 for x in diffs if x < 0)
    if not any(diffs):
        return wins, len(common), None
    return wins, len(common), float(wilcoxon(diffs).pvalue)


def summarize_runs(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """benchmark -> method -> candidates, best objective (medians, quartiles), reuse, relative
    trial cost, wall seconds, runs and the best per seed; failed runs are left out."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in runs:
        if r.get("error"):
            continue
        out.setdefault(r["benchmark"], {}).setdefault(
            r["method"], {"n": [], "best": [], "w": [], "reuse": [], "cost": [], "seeds": {}}
        )
        d = out[r["benchmark"]][r["method"]]
        n_warmup = r.get("n_warmup", N_WARMUP)
        after = r.get("reused_stages", [])[n_warmup:]
        d["reuse"].append(sum(1 for k in after if k > 0) / len(after) if after else 0.0)
        rel = relative_trial_cost(r.get("costs", []), n_warmup)
        if rel is not None:
            d["cost"].append(rel)
        d["n"].append(r["n_trials"])
        d["best"].append(r["best"])
        d["seeds"][r["seed"]] = r["best"]
        d["w"].append(r["wall_seconds"])
    stats: dict[str, dict[str, dict[str, Any]]] = {}
    for b, per in out.items():
        stats[b] = {}
        for m, d in per.items():
            n, best = np.array(d["n"], float), np.array(d["best"], float)
            stats[b][m] = {
                "runs": len(n),
                "n_median": float(np.median(n)),
                "n_q": [float(np.percentile(n, 25)), float(np.percentile(n, 75))],
                "best_median": float(np.median(best)),
                "best_q": [float(np.percentile(best, 25)), float(np.percentile(best, 75))],
                "wall_median": float(np.median(d["w"])),
                "reuse_median": float(np.median(d["reuse"])),
                "cost_median": float(np.median(d["cost"])) if d["cost"] else math.nan,
                "best_by_seed": dict(d["seeds"]),
            }
    return stats
