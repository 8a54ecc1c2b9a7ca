"""EEIPU vs EI, EIPS, CArBO, MS-CArBO, MS-BO and random on multi-stage pipelines, same cost budget.

Each (benchmark, method, seed) job runs single-threaded in a process pool and records, per trial,
the objective, the cumulative cost and the stages reused from the cache. Writes
docs/benchmarks/pipelines.{json,md} and one best-so-far-vs-cost plot per benchmark
(docs/benchmarks/pipelines_<name>.png).

    python benchmarks/pipelines.py                          # every benchmark, 5 seeds
    python benchmarks/pipelines.py --seeds 2 --benchmarks hartmann-levy --budget-scale 0.5
    python benchmarks/pipelines.py --benchmarks ml-vision --methods eeipu,eeipu+cost_inputs=prefix

A method is a registered optimizer name, optionally followed by ``+option=value`` pairs passed to
it (``eeipu+cost_inputs=prefix+n_top=3``): a variant is compared under its full label.

Benchmarks are entries of BENCHMARKS: a runner ``(method, seed, budget, optimizer options) ->
run dict`` with the keys of metatune.benchmarks.pipelines.run_synthetic, plus a default budget.
The real pipelines (tabular stacking, vision, language) plug in there with a runner that drives a
metatune.Pipeline.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import single_thread_env  # noqa: E402

single_thread_env()  # before torch/numpy are imported, here and in every spawned worker

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable, Iterable, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    command_line,
    fmt_num,
    format_machine,
    machine_info,
    now_utc,
    read_notes,
    single_thread_torch,
)
from metatune.benchmarks.pipelines import SyntheticPipeline, cost_share_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("eeipu", "eeipu-memo", "ei", "eips", "carbo", "ms-carbo", "ms-bo", "random")
COLORS = {
    "eeipu": "tab:red",
    "eeipu-memo": "tab:pink",
    "ei": "tab:blue",
    "eips": "tab:orange",
    "carbo": "tab:green",
    "ms-carbo": "tab:purple",
    "ms-bo": "tab:brown",
    "random": "tab:gray",
}
N_WARMUP = 10
BASELINES = ("ei", "eips", "carbo", "ms-carbo", "ms-bo", "random")  # eeipu-memo is our variant
ML_MAX_TRIALS = 300  # a real-pipeline run stops here even with budget left (see run_ml_pipeline)
ML_TRIAL_COST = 0.0  # real pipelines: a fixed cost (seconds) charged to every trial
TIE_RTOL = 1e-6  # best objectives this close (relative) are reported as ties, not as "worse"


Runner = Callable[
    [str, int, float, dict[str, Any]], dict[str, Any]
]  # method, seed, budget, options


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    budget: float
    runner: Runner
    minimize: bool = True
    cost_label: str = "cost spent (simulated units)"


def _synthetic_runner(pipeline: str | SyntheticPipeline) -> Runner:
    def run(method: str, seed: int, budget: float, options: dict[str, Any]) -> dict[str, Any]:
        from metatune.benchmarks.pipelines import run_synthetic

        return run_synthetic(
            method,
            seed,
            budget,
            pipeline=pipeline,
            n_warmup=N_WARMUP,
            optimizer_options=options or None,
        )

    return run


def _ml_runner(pipeline: str) -> Runner:
    def run(method: str, seed: int, budget: float, options: dict[str, Any]) -> dict[str, Any]:
        from metatune.benchmarks.ml_pipelines import run_ml_pipeline

        return run_ml_pipeline(
            pipeline,
            method,
            seed,
            budget,
            n_warmup=N_WARMUP,
            max_trials=ML_MAX_TRIALS,
            trial_cost=ML_TRIAL_COST,
            optimizer_options=options or None,
        )

    return run


# Synthetic budgets give EI about 45-70 BO steps after the warm-up, the paper's regime (about 40);
# half of these (used until 2026-11-30) gave 12-32 and a smaller EEIPU advantage.
BENCHMARKS: dict[str, Benchmark] = {
    "branin-hartmann-ackley": Benchmark(
        "branin-hartmann-ackley",
        "3 stages: Branin (2d, cost 20-50, logistic) + Hartmann3 (cost 8-30, sine) + "
        "Ackley2 on [-5, 5]^2 (cost 5-15, cosine); objective = sum, minimized",
        3000.0,
        _synthetic_runner("branin-hartmann-ackley"),
    ),
    "hartmann-levy": Benchmark(
        "hartmann-levy",
        "2 stages: Hartmann3 (cost 15-50, cosine) + Levy2 on [-5, 5]^2 (cost 5-20, sine); "
        "objective = sum, minimized",
        2400.0,
        _synthetic_runner("hartmann-levy"),
    ),
}

# The cost-share family (benchmarks/pipelines_cost_share.py): hartmann-levy with the last stage
# at 5-50% of a fresh trial's mean cost of 40 units; 2400 units give EI about 60 trials.
COST_SHARES = (0.05, 0.1, 0.2, 0.3, 0.5)
COST_SHARE_BENCHMARKS: dict[str, float] = {}  # benchmark name -> its last stage's share
for _share in COST_SHARES:
    _spec = cost_share_pipeline(_share)
    COST_SHARE_BENCHMARKS[_spec.name] = _share
    BENCHMARKS[_spec.name] = Benchmark(
        _spec.name,
        f"2 stages: Hartmann3 + Levy2 on [-5, 5]^2 as hartmann-levy, logistic costs with the "
        f"last stage {100 * _share:g}% of a fresh trial's mean cost of 40 units; "
        "objective = sum, minimized",
        2400.0,
        _synthetic_runner(_spec),
    )

# Real pipelines (budget in stage wall-seconds, one thread): not in the default run yet, since
# 7 methods x 5 seeds of each take hours on 2 cores; select them with --benchmarks.
ML_BENCHMARKS: dict[str, Benchmark] = {
    "ml-stacking": Benchmark(
        "ml-stacking",
        "breast_cancer stacking: base models with out-of-fold predictions (expensive), then a "
        "logistic-regression meta-learner; objective = validation log loss",
        300.0,
        _ml_runner("stacking"),
        cost_label="cost spent (stage seconds)",
    ),
    "ml-vision": Benchmark(
        "ml-vision",
        "digits CNN: augmentation, two training phases (lr, weight decay), test-time "
        "augmentation; objective = validation cross-entropy",
        300.0,
        _ml_runner("vision"),
        cost_label="cost spent (stage seconds)",
    ),
    "ml-language": Benchmark(
        "ml-language",
        "char-GRU on stdlib sources: data (context, pre-training size), pre-training, "
        "fine-tuning; objective = validation loss per character",
        400.0,
        _ml_runner("language"),
        cost_label="cost spent (stage seconds)",
    ),
}
BENCHMARKS.update(ML_BENCHMARKS)
DEFAULT_BENCHMARKS = ("branin-hartmann-ackley", "hartmann-levy")


def _set_max_trials(n: int) -> None:
    global ML_MAX_TRIALS
    ML_MAX_TRIALS = n


def _init_worker(max_trials: int = ML_MAX_TRIALS, trial_cost: float = 0.0) -> None:
    global ML_TRIAL_COST
    _set_max_trials(max_trials)
    ML_TRIAL_COST = trial_cost
    single_thread_torch()
    import botorch.test_functions  # noqa: F401

    import metatune.optimizers.eeipu  # noqa: F401


def ordered_methods(labels: Iterable[str]) -> list[str]:
    """The standard methods in their usual order, then variants (``name+option=value``)."""
    have = set(labels)
    return [m for m in METHODS if m in have] + sorted(have - set(METHODS))


def check_method(label: str) -> None:
    """Raise ValueError naming the bad part of a method label, before any run starts."""
    import metatune.optimizers.eeipu  # noqa: F401  (registers eeipu, eeipu-memo, ms-bo)
    from metatune.optimizers.base import available_optimizers, make_optimizer

    name, options = parse_method(label)
    if name not in available_optimizers():
        raise ValueError(f"unknown method {name!r}; known: {available_optimizers()}")
    try:
        make_optimizer(name, options or None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"method {label!r}: {exc}") from exc


def parse_method(label: str) -> tuple[str, dict[str, Any]]:
    """``"eeipu+cost_inputs=prefix+n_top=3"`` -> ``("eeipu", {"cost_inputs": "prefix",
    "n_top": 3})``; values are read as JSON where they parse (numbers, true/false), else text."""
    name, *pairs = label.split("+")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"method {label!r}: expected +option=value, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return name, options


def budget_conflicts(
    planned: dict[tuple[str, str], float], merged: Sequence[Sequence[dict[str, Any]]]
) -> dict[str, list[float]]:
    """Benchmarks whose runs on one page would have different budgets.

    `planned`: (benchmark, method) -> budget of the runs about to start; `merged`: the runs of
    each --merge file, in order (a pair already planned or taken from an earlier file is left
    out, as `main` does). Candidates and best objectives compare only at one budget.
    """
    budgets: dict[str, set[float]] = {}
    for (bench, _), budget in planned.items():
        budgets.setdefault(bench, set()).add(round(float(budget), 6))
    seen = set(planned)
    for file_runs in merged:
        here = set()
        for r in file_runs:
            pair = (r.get("benchmark"), r.get("method"))
            if pair in seen:
                continue
            here.add(pair)
            if "budget" in r and not r.get("error"):
                budgets.setdefault(str(pair[0]), set()).add(round(float(r["budget"]), 6))
        seen |= here
    return {b: sorted(v) for b, v in budgets.items() if len(v) > 1}


def run_job(bench: str, method: str, seed: int, budget: float) -> dict[str, Any]:
    import logging
    import warnings

    logging.getLogger("metatune").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    try:
        name, options = parse_method(method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = BENCHMARKS[bench].runner(name, seed, budget, options)
        rec["error"] = None
    except Exception:
        rec = {"method": method, "seed": seed, "error": traceback.format_exc()[-2000:]}
    rec.update(benchmark=bench, method=method, seed=seed, wall_seconds=time.perf_counter() - t0)
    return rec


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
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


def paired_comparison(
    ours: dict[Any, float], theirs: dict[Any, float]
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
    diffs = [0.0 if _same(theirs[k], ours[k]) else theirs[k] - ours[k] for k in common]
    wins = sum(1 for x in diffs if x < 0)
    if not any(diffs):
        return wins, len(common), None
    return wins, len(common), float(wilcoxon(diffs).pvalue)


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


def _same(a: float, b: float, rel: float = TIE_RTOL) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def plot(runs: list[dict[str, Any]], bench: Benchmark, methods: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from metatune.benchmarks.pipelines import best_at_costs

    mine = [r for r in runs if r["benchmark"] == bench.name and not r.get("error")]
    budget = max((r.get("budget", bench.budget) for r in mine), default=bench.budget)
    grid = np.linspace(0, budget, 200)
    lowest = min((v for r in mine for v in r["best_so_far"] if np.isfinite(v)), default=0.0)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    opt = None
    for m in methods:
        rs = [
            r
            for r in runs
            if r["method"] == m and r["benchmark"] == bench.name and not r.get("error")
        ]
        if not rs:
            continue
        opt = rs[0].get("optimal_value", opt)
        curves = np.array([best_at_costs(r["costs"], r["best_so_far"], grid) for r in rs])
        ok = ~np.isnan(curves).any(axis=0)
        med = np.median(curves[:, ok], axis=0)
        q25, q75 = np.percentile(curves[:, ok], [25, 75], axis=0)
        variant = m not in COLORS  # name+option=value: dashed, in its base method's colour
        (line,) = ax.plot(
            grid[ok],
            med,
            color=COLORS.get(m) or COLORS.get(parse_method(m)[0]),
            label=m,
            lw=2 if m == "eeipu" else 1.2,
            ls="--" if variant else "-",
        )
        ax.fill_between(grid[ok], q25, q75, color=line.get_color(), alpha=0.12)
    if opt is not None and np.isfinite(opt):
        ax.axhline(opt, color="k", ls=":", lw=0.8, label="optimum")
    if lowest > 0:  # losses: a log scale shows the differences near the end
        ax.set_yscale("log")
    ax.set_xlabel(bench.cost_label)
    ax.set_ylabel("best objective so far (median, IQR)")
    ax.set_title(f"{bench.name}: best-so-far vs cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(data: dict[str, Any], stats: dict, path: Path, notes: str | None = None) -> None:
    """The page: set-up, one table and plot per benchmark, then `notes` (hand-written Markdown
    kept in its own file, so re-rendering the tables does not lose it)."""
    meta = data["meta"]
    lines = [
        "# Pipelines: EEIPU vs cost-aware and cost-blind BO at the same cost budget",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['date']}  ",
        f"Machine: {meta['machine']}  ",
        f"Wall time: {meta['wall_minutes']:.1f} min with {meta['workers']} worker processes"
        if not meta.get("render_only")
        else "This page was rendered from the earlier runs listed below; it ran nothing itself.",
        "",
    ]
    for part in meta.get("merged", []):
        grouped: dict[str, list[str]] = {}
        for pair in part["benchmarks"]:
            bench_name, _, method = pair.partition(" ")
            grouped.setdefault(bench_name, []).append(method)
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in grouped.items())
        lines += [
            f"Merged from an earlier run ({what}): "
            f"`{part['command']}`, {part['date']}, {part['wall_minutes']:.1f} min with "
            f"{part['workers']} worker processes.",
            "",
        ]
    lines += [
        f"Setup: {meta['seeds']} seeds (0..{meta['seeds'] - 1}) per (benchmark, method); every "
        f"method starts with the same {N_WARMUP} Sobol warm-up points for a seed, then asks "
        "until the cost budget is spent (the trial that crosses it still counts). Methods are "
        "`metatune.Study(optimizer=...)`: `eeipu` (as published), `eeipu-memo` (metatune's "
        "variant: the cache saving is not cooled and stage cost models see the earlier stages' "
        "parameters), `ei` (cost-blind LogEI, the `gp` model), `eips`, "
        "`carbo`, `ms-carbo`, `ms-bo` (last stage only, on top of the best earlier stages) and "
        "`random` (Sobol). Synthetic pipelines charge a simulated clock; every stage prefix that "
        "ran is cached, and a cached stage costs epsilon = 0.1. Real pipelines (`ml-*`) are "
        "charged their stages' wall seconds (a cache hit costs its load time) with a fresh cache "
        f"per run, and stop at {ML_MAX_TRIALS} trials even with budget left. Single-threaded runs."
        + (
            f" Every real-pipeline trial is also charged a fixed {ML_TRIAL_COST:g} s "
            "(`Pipeline(trial_cost=...)`), which the budget counts and the per-stage cost-aware "
            "methods add to every candidate's cost."
            if ML_TRIAL_COST
            else ""
        ),
        "",
        "Columns: candidates = trials evaluated within the budget, warm-up included; best = "
        "best objective found (minimized); median and [25%, 75%] quartiles over seeds; reuse = "
        "share of the trials after warm-up that took at least one stage from the cache (median); "
        "cost/trial = mean cost of a trial after warm-up over the mean cost of a warm-up trial "
        "(median over seeds; the warm-up is the same for every method, so below 1 means the "
        "method's choices, cheap regions or cached prefixes, saved real cost).",
        "",
    ]
    if meta.get("note"):
        lines += [f"Note: {meta['note']}", ""]
    for b, per in stats.items():
        bench = BENCHMARKS[b]
        bruns = [r for r in data["runs"] if r.get("benchmark") == b]
        opt = next((r.get("optimal_value") for r in bruns), None)
        budget = next((r["budget"] for r in bruns if "budget" in r), bench.budget)
        lines += [
            f"## {b} (budget {budget:g} cost units)",
            "",
            f"{bench.description}; optimum {fmt_num(opt) if opt is not None else 'n/a'}.",
            "",
            "| method | candidates (median) | [q25, q75] | best objective (median) | [q25, q75] "
            "| reuse | cost/trial | s/run | runs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for m in ordered_methods(per):
            s = per[m]
            lines.append(
                f"| {m} | {s['n_median']:g} | [{s['n_q'][0]:g}, {s['n_q'][1]:g}] | "
                f"{fmt_num(s['best_median'])} | [{fmt_num(s['best_q'][0])}, "
                f"{fmt_num(s['best_q'][1])}] | {100 * s['reuse_median']:.0f}% | "
                f"{s['cost_median']:.2f} | {s['wall_median']:.0f} | {s['runs']} |"
            )
        if "eeipu" in per and "ei" in per:
            ratio = per["eeipu"]["n_median"] / per["ei"]["n_median"]
            others = {m: v["best_median"] for m, v in per.items() if m in BASELINES}
            mine = per["eeipu"]["best_median"]
            beaten = sorted(m for m, v in others.items() if v < mine and not _same(v, mine))
            tied = sorted(m for m, v in others.items() if v < mine and _same(v, mine))
            verdict = (
                "at least as good as every baseline's"
                if not beaten
                else f"worse than {', '.join(f'{m} ({others[m]:.5g})' for m in beaten)}'s"
                f" ({mine:.5g})"
            )
            if tied:
                verdict += (
                    f" (tied with {', '.join(tied)}: lower medians by less than {TIE_RTOL:g}"
                    " relative)"
                )
            lines += [
                "",
                f"EEIPU / EI candidates (medians): {ratio:.2f}x. EEIPU's median best objective is "
                f"{verdict}.",
            ]
            paired = []
            for m in beaten:
                wins, n, p = paired_comparison(per["eeipu"]["best_by_seed"], per[m]["best_by_seed"])
                paired.append(
                    f"{m} found a lower best in {wins} of {n} seeds"
                    + (f" (Wilcoxon signed-rank, two-sided p = {p:.2g})" if p is not None else "")
                )
            if paired:
                lines += [
                    "",
                    "Paired by seed (a seed's methods share its warm-up): "
                    + "; ".join(paired)
                    + ".",
                ]
        capped = sorted(
            f"{r['method']} seed {r['seed']}"
            for r in data["runs"]
            if r.get("benchmark") == b and r.get("budget_exhausted") is False
        )
        if capped:  # real pipelines: a run can stop at its trial cap with budget left
            lines += [
                "",
                f"Stopped by the trial cap before spending the budget: {', '.join(capped)}.",
            ]
        lines += ["", f"![{b}](pipelines_{b}.png)", ""]
    errors = [r for r in data["runs"] if r.get("error")]
    if errors:
        lines += ["## Failed runs", ""]
        lines += [
            f"- {r['benchmark']} / {r['method']} / seed {r['seed']}: "
            f"{r['error'].strip().splitlines()[-1]}"
            for r in errors
        ]
    if notes:
        lines += ["", notes.strip()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--benchmarks",
        default=",".join(DEFAULT_BENCHMARKS),
        help=f"comma-separated, from {sorted(BENCHMARKS)}",
    )
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget")
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    ap.add_argument("--note", default="", help="a line added to the Markdown")
    ap.add_argument(
        "--merge",
        nargs="*",
        default=[],
        metavar="JSON",
        help="pipelines.json files of earlier runs: their (benchmark, method) pairs that this run "
        "does not repeat go on the same page",
    )
    ap.add_argument(
        "--notes",
        default=None,
        metavar="MD",
        help="a Markdown file appended to the page after the tables (hand-written notes)",
    )
    ap.add_argument(
        "--max-trials",
        type=int,
        default=ML_MAX_TRIALS,
        help="real pipelines: stop a run at this many trials even with budget left",
    )
    ap.add_argument(
        "--trial-cost",
        type=float,
        default=0.0,
        help="real pipelines: a fixed cost in seconds charged to every trial (Pipeline(trial_cost))",
    )
    args = ap.parse_args(argv)
    if not (args.trial_cost >= 0 and math.isfinite(args.trial_cost)):
        ap.error(f"--trial-cost must be a finite number >= 0, got {args.trial_cost}")
    global ML_TRIAL_COST
    ML_TRIAL_COST = args.trial_cost
    if not args.benchmarks and not args.merge:
        ap.error("nothing to do: give --benchmarks, or --benchmarks '' with --merge")
    notes = read_notes(ap, args.notes)
    if args.max_trials < 1:
        ap.error(f"--max-trials must be at least 1, got {args.max_trials}")
    _set_max_trials(args.max_trials)
    benches = [b for b in args.benchmarks.split(",") if b]
    methods = [m for m in args.methods.split(",") if m]
    for b in benches:
        if b not in BENCHMARKS:
            ap.error(f"unknown benchmark {b!r}; known: {sorted(BENCHMARKS)}")
    for m in methods:
        try:
            check_method(m)
        except ValueError as exc:
            ap.error(f"--methods: {exc}")
    for b in benches:
        bm = BENCHMARKS[b]
        BENCHMARKS[b] = replace(bm, budget=bm.budget * args.budget_scale)
    merged: list[dict[str, Any]] = []  # each --merge file, read once, before any run
    for path in args.merge:
        try:
            earlier_page = json.loads(Path(path).read_text())
            earlier_page["runs"] = list(earlier_page["runs"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            ap.error(f"--merge: cannot read runs from {path!r}: {exc}")
        merged.append(earlier_page)
    planned = {(b, m): BENCHMARKS[b].budget for b in benches for m in methods}
    conflicts = budget_conflicts(planned, [page["runs"] for page in merged])
    if conflicts:
        ap.error(
            "runs on one page must share a budget per benchmark, got "
            + "; ".join(f"{b}: {', '.join(f'{v:g}' for v in vs)}" for b, vs in conflicts.items())
            + " (check --budget-scale against the merged runs)"
        )
    # Slow jobs first so the pool stays balanced.
    order = {"eeipu": 0, "eeipu-memo": 0, "ms-bo": 1, "ms-carbo": 1, "carbo": 3, "eips": 4}
    jobs = sorted(
        [(b, m, s) for b in benches for m in methods for s in range(args.seeds)],
        key=lambda j: (order.get(parse_method(j[1])[0], 9), j[2]),
    )
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        args.workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(args.max_trials, args.trial_cost),
    ) as pool:
        futs = [pool.submit(run_job, b, m, s, BENCHMARKS[b].budget) for b, m, s in jobs]
        for i, fut in enumerate(as_completed(futs), 1):
            r = fut.result()
            runs.append(r)
            status = "ERROR" if r.get("error") else f"n={r['n_trials']} best={r['best']:.4g}"
            print(
                f"[{i}/{len(jobs)}] {r['benchmark']} {r['method']} seed {r['seed']}: {status} "
                f"({r['wall_seconds']:.0f}s)",
                flush=True,
            )
    wall = (time.perf_counter() - t0) / 60
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": {
            "command": command_line(),
            "date": now_utc(),
            "machine": format_machine(machine_info(("torch", "botorch"))),
            "wall_minutes": wall,
            "workers": args.workers,
            "seeds": args.seeds,
            "note": args.note,
            "budgets": {b: BENCHMARKS[b].budget for b in benches},
        },
        "runs": runs,
    }
    for old in merged:
        have = {(r["benchmark"], r["method"]) for r in runs}
        keep = [r for r in old["runs"] if (r.get("benchmark"), r.get("method")) not in have]
        if not keep:
            continue
        part = {k: old["meta"][k] for k in ("command", "date", "wall_minutes", "workers")}
        which = sorted({f"{r['benchmark']} {r['method']}" for r in keep})
        parts = data["meta"].setdefault("merged", [])
        earlier: set[str] = set()
        for nested in old["meta"].get("merged", []):  # the parts that file itself merged
            inner = [w for w in nested["benchmarks"] if w in which]
            earlier.update(inner)
            if inner:
                parts.append({**nested, "benchmarks": inner})
        own = [w for w in which if w not in earlier]
        if own:
            parts.append({**part, "benchmarks": own})
        runs += keep
    if not benches and runs:  # only merged runs: the page renders what they hold
        data["meta"]["seeds"] = len({r["seed"] for r in runs})
        data["meta"]["render_only"] = True
    stats = summarize(runs)
    (out / "pipelines.json").write_text(json.dumps(data))
    for b in dict.fromkeys(r["benchmark"] for r in runs):  # once each, merged ones included
        labels = ordered_methods({r["method"] for r in runs if r["benchmark"] == b})
        plot(runs, BENCHMARKS[b], labels, out / f"pipelines_{b}.png")
    write_markdown(data, stats, out / "pipelines.md", notes)
    print(f"wrote {out / 'pipelines.md'} in {wall:.1f} min")
    return 1 if any(r.get("error") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
