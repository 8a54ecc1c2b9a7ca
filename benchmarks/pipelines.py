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

Benchmarks are the entries of metatune.benchmarks.registry.PIPELINE_BENCHMARKS (definition,
description, default budget): synthetic pipelines on a simulated clock, and the real pipelines
(tabular stacking, vision, language) charged their stages' wall seconds. This script only runs
them and writes the page; a run's record is metatune.benchmarks.runs.BenchmarkRun.
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()  # before torch is imported, here and in every spawned worker

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    fmt_num,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    read_notes,
    repo_relative,
    single_thread_torch,
)
from metatune.benchmarks.methods import (  # noqa: E402, F401  (tests read them from here)
    BASELINES,
    COLORS,
    METHODS,
    check_method,
    ordered_methods,
    parse_method,
)
from metatune.benchmarks.registry import (  # noqa: E402
    DEFAULT_ML_MAX_TRIALS,
    DEFAULT_PIPELINE_BENCHMARKS,
    PIPELINE_BENCHMARKS,
    PipelineBenchmark,
)
from metatune.benchmarks.runs import (  # noqa: E402, F401  (tests read them from here)
    N_WARMUP,
    TIE_RTOL,
    best_at_costs,
    paired_comparison,
    relative_trial_cost,
    same_value,
)
from metatune.benchmarks.runs import summarize_runs as summarize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _init_worker() -> None:
    single_thread_torch()
    import botorch.test_functions  # noqa: F401

    import metatune.optimizers.eeipu  # noqa: F401


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


def run_job(
    bench: str,
    method: str,
    seed: int,
    budget: float,
    max_trials: int = DEFAULT_ML_MAX_TRIALS,
    trial_cost: float = 0.0,
) -> dict[str, Any]:
    """One (benchmark, method, seed) run as its JSON record; never raises: a failure is recorded
    in ``error``."""
    import logging
    import warnings

    logging.getLogger("metatune").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    try:
        name, options = parse_method(method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = PIPELINE_BENCHMARKS.get(bench).run(
                name,
                seed,
                budget,
                optimizer_options=options,
                max_trials=max_trials,
                trial_cost=trial_cost,
            )
        rec = run.to_dict()
        rec["error"] = None
    except Exception:
        rec = {"method": method, "seed": seed, "error": traceback.format_exc()[-2000:]}
    rec.update(benchmark=bench, method=method, seed=seed, wall_seconds=time.perf_counter() - t0)
    return rec


def plot(
    runs: list[dict[str, Any]], bench: PipelineBenchmark, methods: Sequence[str], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in runs if r["benchmark"] == bench.name and not r.get("error")]
    fallback = bench.default_budget
    budget = max((r.get("budget", fallback) for r in mine), default=fallback)
    grid = np.linspace(0, budget, 200)
    lowest = min((v for r in mine for v in r["best_so_far"] if np.isfinite(v)), default=0.0)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    opt = None
    drawn = False  # whether any run finished a trial within the budget
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
        drawn = drawn or bool(ok.any())
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
    if lowest > 0 and drawn:  # losses: a log scale shows the differences near the end
        ax.set_yscale("log")  # (an empty plot cannot have one: matplotlib refuses)
    ax.set_xlabel(bench.cost_label)
    ax.set_ylabel("best objective so far (median, IQR)")
    ax.set_title(f"{bench.name}: best-so-far vs cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _eeipu_verdict(per: dict) -> tuple[float, list[str], list[str]] | None:
    """EEIPU / EI candidates (medians), the baselines whose median best is lower than EEIPU's
    (beyond a tie) and those lower by a tie; None without both methods."""
    if "eeipu" not in per or "ei" not in per:
        return None
    ratio = per["eeipu"]["n_median"] / per["ei"]["n_median"]
    others = {m: v["best_median"] for m, v in per.items() if m in BASELINES}
    mine = per["eeipu"]["best_median"]
    beaten = sorted(m for m, v in others.items() if v < mine and not same_value(v, mine))
    tied = sorted(m for m, v in others.items() if v < mine and same_value(v, mine))
    return ratio, beaten, tied


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def what_it_means(stats: dict) -> str:
    """The page's "What it means" paragraph, read off the tables: EEIPU's candidates over EI's
    and whether a baseline's median best is lower, per benchmark."""
    verdicts = {b: v for b, per in stats.items() if (v := _eeipu_verdict(per)) is not None}
    if not verdicts:
        return (
            "What it means: each table compares the methods at one cost budget: more candidates "
            "means the budget bought more trials, a lower best objective a better result."
        )
    ratios = [f"{v[0]:.2f}x on {b}" for b, v in verdicts.items()]
    good = [b for b, v in verdicts.items() if not v[1]]
    bad = [f"{b} ({', '.join(v[1])})" for b, v in verdicts.items() if v[1]]
    text = (
        f"What it means: EEIPU / EI candidates at the same cost budget (medians): {_and(ratios)}."
    )
    if good:
        text += (
            f" Its median best objective is at least as good as every baseline's on {_and(good)}"
        )
        text += f"; a baseline's is lower on {_and(bad)}." if bad else "."
    else:
        text += f" A baseline's median best objective is lower than EEIPU's on {_and(bad)}."
    if bad:
        text += (
            " The paired lines under those tables say how many seeds the baseline won and "
            "whether the seeds separate the two."
        )
    return text


def _workers(n: int) -> str:
    return f"{n} worker process" + ("" if n == 1 else "es")


def write_markdown(
    data: dict[str, Any],
    stats: dict,
    path: Path,
    notes: str | None = None,
    *,
    max_trials: int = DEFAULT_ML_MAX_TRIALS,
    trial_cost: float = 0.0,
) -> None:
    """The page: one table and plot per benchmark, what they mean, `notes` (hand-written
    Markdown kept in its own file, so re-rendering the tables does not lose it), then how it was
    run: set-up, commands, dates and machine. `max_trials` and `trial_cost` are the real
    pipelines' settings of the run, for the set-up paragraph."""
    meta = data["meta"]
    lines = [
        "# Pipelines: EEIPU vs cost-aware and cost-blind BO at the same cost budget",
        "",
        f"{meta['seeds']} seed{'' if meta['seeds'] == 1 else 's'} per (benchmark, method), "
        "every method at the same cost budget; "
        "what the columns and results mean is [below the tables](#what-it-means), how the runs "
        "were made [at the end](#how-it-was-run).",
        "",
    ]
    for b, per in stats.items():
        bench = PIPELINE_BENCHMARKS.get(b)
        bruns = [r for r in data["runs"] if r.get("benchmark") == b]
        opt = next((r.get("optimal_value") for r in bruns), None)
        budget = next((r["budget"] for r in bruns if "budget" in r), bench.default_budget)
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
        verdict_of = _eeipu_verdict(per)
        if verdict_of is not None:
            ratio, beaten, tied = verdict_of
            others = {m: v["best_median"] for m, v in per.items() if m in BASELINES}
            mine = per["eeipu"]["best_median"]
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
    lines += [
        "## What it means",
        "",
        what_it_means(stats),
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
    errors = [r for r in data["runs"] if r.get("error")]
    if errors:
        lines += ["## Failed runs", ""]
        lines += [
            f"- {r['benchmark']} / {r['method']} / seed {r['seed']}: "
            f"{r['error'].strip().splitlines()[-1]}"
            for r in errors
        ]
        lines += [""]
    if notes:
        lines += [notes.strip(), ""]
    setup = (
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
        f"per run, and stop at {max_trials} trials even with budget left. Single-threaded runs."
        + (
            f" Every real-pipeline trial is also charged a fixed {trial_cost:g} s "
            "(`Pipeline(trial_cost=...)`), which the budget counts and the per-stage cost-aware "
            "methods add to every candidate's cost."
            if trial_cost
            else ""
        )
    )
    commands: list[tuple[str, str | None, str]] = []
    for part in meta.get("merged", []):
        grouped: dict[str, list[str]] = {}
        for pair in part["benchmarks"]:
            bench_name, _, method = pair.partition(" ")
            grouped.setdefault(bench_name, []).append(method)
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in grouped.items())
        about = (
            f"{part['date']}, {part['wall_minutes']:.1f} min with {_workers(part['workers'])}; "
            f"ran {what}"
        )
        commands.append((part["command"], None, about))
    if meta.get("render_only"):
        own = f"{meta['date']}; rendered this page from the runs above, ran nothing itself"
    else:
        own = f"{meta['date']}, {meta['wall_minutes']:.1f} min with {_workers(meta['workers'])}"
        if commands:
            own += "; the runs not listed above"
    commands.append((meta["command"], repo_relative(path.parent), own))
    machine = "Machine of the last command" if len(commands) > 1 else "Machine"
    facts = [
        f"Machine of the runs of {part['date']}: {part['machine']}"
        for part in meta.get("merged", [])
        if part.get("machine")
    ]
    facts.append(f"{machine}: {meta['machine']}")
    lines += how_it_was_run(commands, facts, [setup])
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--benchmarks",
        default=",".join(DEFAULT_PIPELINE_BENCHMARKS),
        help=f"comma-separated, from {PIPELINE_BENCHMARKS.names()}",
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
        default=DEFAULT_ML_MAX_TRIALS,
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
    if not args.benchmarks and not args.merge:
        ap.error("nothing to do: give --benchmarks, or --benchmarks '' with --merge")
    notes = read_notes(ap, args.notes)
    if args.max_trials < 1:
        ap.error(f"--max-trials must be at least 1, got {args.max_trials}")
    benches = [b for b in args.benchmarks.split(",") if b]
    methods = [m for m in args.methods.split(",") if m]
    for b in benches:
        if b not in PIPELINE_BENCHMARKS:
            ap.error(f"unknown benchmark {b!r}; known: {PIPELINE_BENCHMARKS.names()}")
    for m in methods:
        try:
            check_method(m)
        except ValueError as exc:
            ap.error(f"--methods: {exc}")
    budgets = {b: PIPELINE_BENCHMARKS.get(b).default_budget * args.budget_scale for b in benches}
    merged: list[dict[str, Any]] = []  # each --merge file, read once, before any run
    for path in args.merge:
        try:
            earlier_page = json.loads(Path(path).read_text())
            earlier_page["runs"] = list(earlier_page["runs"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            ap.error(f"--merge: cannot read runs from {path!r}: {exc}")
        merged.append(earlier_page)
    planned = {(b, m): budgets[b] for b in benches for m in methods}
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
    with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as pool:
        futs = [
            pool.submit(run_job, b, m, s, budgets[b], args.max_trials, args.trial_cost)
            for b, m, s in jobs
        ]
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
            "command": command_line(out),
            "date": now_utc(),
            "machine": format_machine(machine_info(("torch", "botorch"))),
            "wall_minutes": wall,
            "workers": args.workers,
            "seeds": args.seeds,
            "note": args.note,
            "budgets": budgets,
        },
        "runs": runs,
    }
    for old in merged:
        have = {(r["benchmark"], r["method"]) for r in runs}
        keep = [r for r in old["runs"] if (r.get("benchmark"), r.get("method")) not in have]
        if not keep:
            continue
        part = {k: old["meta"][k] for k in ("command", "date", "wall_minutes", "workers")}
        if "machine" in old["meta"] and not old["meta"].get("render_only"):
            part["machine"] = old["meta"]["machine"]  # where these runs ran, for the page
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
        plot(runs, PIPELINE_BENCHMARKS.get(b), labels, out / f"pipelines_{b}.png")
    write_markdown(
        data,
        stats,
        out / "pipelines.md",
        notes,
        max_trials=args.max_trials,
        trial_cost=args.trial_cost,
    )
    print(f"wrote {out / 'pipelines.md'} in {wall:.1f} min")
    return 1 if any(r.get("error") for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
