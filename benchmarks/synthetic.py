"""metatune's optimizers vs Optuna's on synthetic functions: same budget, several seeds, one run.

Each (function, method, seed) job runs a noise-free minimization through the ask/tell interface of
its library, records the best-so-far simple regret after every trial and the time of every ask,
and runs single-threaded in a process pool. Writes docs/benchmarks/synthetic.{json,md,png}.

    python benchmarks/synthetic.py                       # 10 seeds x 50 trials, everything
    python benchmarks/synthetic.py --seeds 2 --trials 15 --functions branin
    python benchmarks/synthetic.py --from-json docs/benchmarks/synthetic.json --check
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

# Before anything imports torch, here and in every spawned worker (which re-imports this
# module), so that every method runs single-threaded.
single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    fmt_num,
    format_machine,
    how_it_was_run,
    machine_info,
    make_progress,
    now_utc,
    repo_relative,
    single_thread_torch,
)
from metatune.benchmarks.registry import DEFAULT_FUNCTIONS, SYNTHETIC_FUNCTIONS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# The functions (metatune.benchmarks.registry.SYNTHETIC_FUNCTIONS), in the page's order.
FUNCTIONS = [
    *DEFAULT_FUNCTIONS,
    *(n for n in SYNTHETIC_FUNCTIONS.names() if n not in DEFAULT_FUNCTIONS),
]
METHODS = ("random", "metatune-gp", "optuna-tpe", "optuna-gp")
# Rough relative cost per job, to start the slow jobs first and balance the pool.
_COST = {"metatune-gp": 3, "optuna-gp": 3, "optuna-tpe": 1, "random": 0}
COLORS = {
    "random": "tab:gray",
    "metatune-gp": "tab:blue",
    "optuna-tpe": "tab:orange",
    "optuna-gp": "tab:green",
}
LAST_ASKS = 10  # s/ask is the median over this many final asks of a run
PLOT_FLOOR = 1e-9  # regret is clipped here for the log-scale plot


# Problems ------------------------------------------------------------------------------------
def make_function(name: str) -> Any:
    return SYNTHETIC_FUNCTIONS.get(name).make()


def function_info(name: str) -> dict[str, Any]:
    return SYNTHETIC_FUNCTIONS.get(name).info()


# One job (runs in a worker) ------------------------------------------------------------------
class _Capture(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append(f"{record.name}: {record.getMessage()}"[:300])


def _init_worker() -> None:
    single_thread_torch()
    # Import everything up front, so no run's first ask pays for imports and import-time
    # deprecation notices from the libraries are not blamed on a run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import botorch.test_functions  # noqa: F401
        import optuna
        import optuna._gp.gp  # noqa: F401  (GPSampler imports it lazily)

        import metatune
        import metatune.optimizers.gp  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()  # warnings are captured per run instead


def _evaluate(f: Any, x: Sequence[float]) -> float:
    import torch

    return float(f.evaluate_true(torch.tensor([list(x)], dtype=torch.double))[0])


def _run_metatune(f: Any, optimizer: str, seed: int, n_trials: int, rec: dict[str, Any]) -> None:
    import metatune

    lo, hi = f.bounds[0].tolist(), f.bounds[1].tolist()
    space = metatune.Space({f"x{i}": metatune.Float(lo[i], hi[i]) for i in range(f.dim)})
    study = metatune.Study(space, optimizer=optimizer, seed=seed)
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask()
        rec["ask_seconds"].append(time.perf_counter() - t0)
        y = _evaluate(f, [trial.params[f"x{i}"] for i in range(f.dim)])
        study.tell(trial, y)
        rec["values"].append(y)


def _run_optuna(f: Any, sampler_name: str, seed: int, n_trials: int, rec: dict[str, Any]) -> None:
    import optuna

    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler_name == "tpe"
        else optuna.samplers.GPSampler(seed=seed)
    )
    study = optuna.create_study(direction="minimize", sampler=sampler)
    lo, hi = f.bounds[0].tolist(), f.bounds[1].tolist()
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask()  # Optuna samples lazily: the suggest calls are part of the ask
        x = [trial.suggest_float(f"x{i}", lo[i], hi[i]) for i in range(f.dim)]
        rec["ask_seconds"].append(time.perf_counter() - t0)
        y = _evaluate(f, x)
        study.tell(trial, y)
        rec["values"].append(y)


def run_job(function: str, method: str, seed: int, n_trials: int) -> dict[str, Any]:
    """One (function, method, seed) run; never raises: a failure is recorded in `error`."""
    rec: dict[str, Any] = {
        "function": function,
        "method": method,
        "seed": seed,
        "values": [],
        "ask_seconds": [],
        "best_regret": [],
        "wall_seconds": None,
        "error": None,
        "warnings": [],
    }
    captured: list[str] = []
    handler = _Capture(captured)
    loggers = [logging.getLogger(n) for n in ("optuna", "metatune", "botorch", "gpytorch")]
    for lg in loggers:
        lg.addHandler(handler)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            f = make_function(function)
            if method == "random":
                _run_metatune(f, "random", seed, n_trials, rec)
            elif method == "metatune-gp":
                _run_metatune(f, "gp", seed, n_trials, rec)
            elif method == "optuna-tpe":
                _run_optuna(f, "tpe", seed, n_trials, rec)
            elif method == "optuna-gp":
                _run_optuna(f, "gp", seed, n_trials, rec)
            else:
                raise ValueError(f"unknown method {method!r}")
        captured.extend(f"{w.category.__name__}: {w.message}"[:300] for w in caught)
    except Exception as exc:
        rec["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
    rec["wall_seconds"] = time.perf_counter() - t0
    if rec["values"]:
        opt = float(make_function(function).optimal_value)
        best = np.minimum.accumulate(np.asarray(rec["values"], dtype=float))
        rec["best_regret"] = [float(b - opt) for b in best]
    rec["warnings"] = [f"{msg} (x{n})" for msg, n in Counter(captured).items()]
    return rec


# Running -------------------------------------------------------------------------------------
def run_all(jobs: list[tuple[str, str, int]], n_trials: int, workers: int) -> list[dict]:
    progress = make_progress(sys.stderr.isatty())
    results: list[dict] = []
    start = time.perf_counter()

    def done(rec: dict) -> None:
        results.append(rec)
        tag = f"{rec['function']}/{rec['method']}/seed {rec['seed']}"
        status = "FAILED" if rec["error"] else f"regret {fmt_num(rec['best_regret'][-1])}"
        if progress is not None:
            progress.update(task, advance=1, last=f"{tag}: {status}")
        else:
            print(
                f"[{len(results)}/{len(jobs)} {time.perf_counter() - start:7.1f}s] {tag}: "
                f"{status}, {rec['wall_seconds']:.1f}s",
                flush=True,
            )
        if rec["error"]:
            print(f"{tag} failed:\n{rec['error']}", file=sys.stderr, flush=True)

    if progress is not None:
        progress.start()
        task = progress.add_task("synthetic", total=len(jobs), last="")
    try:
        if workers <= 1:
            _init_worker()
            for job in jobs:
                done(run_job(*job, n_trials))
        else:
            ctx = multiprocessing.get_context("spawn")  # fresh interpreters: env set pre-torch
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
                pending: set[Future] = {pool.submit(run_job, *job, n_trials) for job in jobs}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        done(fut.result())
    finally:
        if progress is not None:
            progress.stop()
    return results


# Summaries -----------------------------------------------------------------------------------
def summarize(runs: list[dict], functions: list[str], methods: list[str]) -> dict:
    """(function, method) -> median/quartile final regret, median s/ask, run counts."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for fn in functions:
        out[fn] = {}
        for m in methods:
            mine = [r for r in runs if r["function"] == fn and r["method"] == m]
            ok = [r for r in mine if not r["error"] and r["best_regret"]]
            final = np.array([r["best_regret"][-1] for r in ok], dtype=float)
            ask = np.array([np.median(r["ask_seconds"][-LAST_ASKS:]) for r in ok], dtype=float)
            total = np.array([np.sum(r["ask_seconds"]) for r in ok], dtype=float)
            nan = float("nan")
            out[fn][m] = {
                "median": float(np.median(final)) if len(ok) else nan,
                "q25": float(np.percentile(final, 25)) if len(ok) else nan,
                "q75": float(np.percentile(final, 75)) if len(ok) else nan,
                "ask_s": float(np.median(ask)) if len(ok) else nan,
                "total_ask_s": float(np.median(total)) if len(ok) else nan,
                "ok": len(ok),
                "runs": len(mine),
            }
    return out


def best_methods(stats: dict[str, dict[str, Any]]) -> list[str]:
    vals = {m: s["median"] for m, s in stats.items() if not math.isnan(s["median"])}
    if not vals:
        return []
    low = min(vals.values())
    return [m for m, v in vals.items() if v <= low]


def tables_markdown(summary: dict, meta: dict) -> str:
    lines: list[str] = []
    for fn, stats in summary.items():
        info = meta["functions"][fn]
        b = info["bounds"]
        box = (
            f"[{b[0][0]:g}, {b[0][1]:g}]^{info['dim']}"
            if all(x == b[0] for x in b)
            else " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in b)
        )
        lines += [
            f"### {fn} ({info['dim']}d on {box}, f* = {info['optimal_value']:g})",
            "",
            "| method | median final regret | [q25, q75] | s/ask (last 10) | total ask s | runs ok |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for m, s in stats.items():
            lines.append(
                f"| {m} | {fmt_num(s['median'])} | [{fmt_num(s['q25'])}, {fmt_num(s['q75'])}] "
                f"| {fmt_num(s['ask_s'])} | {fmt_num(s['total_ask_s'])} | {s['ok']}/{s['runs']} |"
            )
        winners = best_methods(stats)
        if winners:
            who = ", ".join(f"**{w}**" for w in winners)
            lines += [
                "",
                f"Lowest median regret on {fn}: {who} ({fmt_num(stats[winners[0]]['median'])}).",
            ]
        lines.append("")
    return "\n".join(lines)


def check_lines(summary: dict) -> list[str]:
    """The acceptance criteria for metatune-gp, one line per function plus the verdicts."""
    needed = ("metatune-gp", "optuna-gp", "random")
    fns = [fn for fn in summary if all(m in summary[fn] for m in needed)]
    if not fns:
        return [f"check skipped: needs methods {', '.join(needed)}"]
    need_vs_gp = math.ceil(0.8 * len(fns))
    lines = []
    n_le, n_lt_rand, n_fast = 0, 0, 0
    for fn in fns:
        mg, og, rnd = (summary[fn][m] for m in needed)
        le = mg["median"] <= og["median"]
        lt = mg["median"] < rnd["median"]
        ratio = mg["ask_s"] / og["ask_s"] if og["ask_s"] > 0 else float("inf")
        fast = ratio <= 2.0
        n_le, n_lt_rand, n_fast = n_le + le, n_lt_rand + lt, n_fast + fast
        lines.append(
            f"  {fn:<12} regret {fmt_num(mg['median'])} vs optuna-gp {fmt_num(og['median'])}: "
            f"{'ok' if le else 'WORSE'}; vs random {fmt_num(rnd['median'])}: "
            f"{'ok' if lt else 'NOT BELOW'}; s/ask {ratio:.2f}x optuna-gp: "
            f"{'ok' if fast else 'TOO SLOW'}"
        )
    verdicts = [
        (
            f"regret <= optuna-gp on >= {need_vs_gp} of {len(fns)} functions",
            n_le >= need_vs_gp,
            f"{n_le}/{len(fns)}",
        ),
        (
            f"regret < random on all {len(fns)} functions",
            n_lt_rand == len(fns),
            f"{n_lt_rand}/{len(fns)}",
        ),
        ("s/ask <= 2x optuna-gp on every function", n_fast == len(fns), f"{n_fast}/{len(fns)}"),
    ]
    lines += [f"  {'PASS' if ok else 'FAIL'}: {what} ({got})" for what, ok, got in verdicts]
    overall = all(ok for _, ok, _ in verdicts)
    lines.append(f"  overall: {'PASS' if overall else 'FAIL'}")
    return lines


def warning_lines(runs: list[dict]) -> list[str]:
    per: Counter[tuple[str, str]] = Counter()
    for r in runs:
        for w in r.get("warnings", []):
            msg = w.rsplit(" (x", 1)[0]
            per[(r["method"], msg)] += 1
    return [f"- {m}: {msg} (in {n} runs)" for (m, msg), n in sorted(per.items())]


def plot(runs: list[dict], functions: list[str], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(3, len(functions))
    nrows = math.ceil(len(functions) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    for ax, fn in zip(axes.flat, functions, strict=False):
        for m in methods:
            curves = [
                r["best_regret"]
                for r in runs
                if r["function"] == fn and r["method"] == m and not r["error"] and r["best_regret"]
            ]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.maximum(np.array([c[:n] for c in curves]), PLOT_FLOOR)
            x = np.arange(1, n + 1)
            q25, med, q75 = np.percentile(arr, [25, 50, 75], axis=0)
            ax.plot(x, med, color=COLORS.get(m), label=m, lw=1.8)
            ax.fill_between(x, q25, q75, color=COLORS.get(m), alpha=0.18, lw=0)
        ax.set_yscale("log")
        ax.set_title(fn)
        ax.set_xlabel("trial")
        ax.set_ylabel("best-so-far simple regret")
        ax.grid(True, which="major", alpha=0.3)
    for ax in list(axes.flat)[len(functions) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), frameon=False)
    fig.suptitle("Synthetic functions: median over seeds, band = quartiles")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def what_it_means(summary: dict, trials: int) -> str:
    """The page's "What it means" paragraph: which method has the lowest median regret where."""
    by: dict[str, list[str]] = {}
    for fn, stats in summary.items():
        for m in best_methods(stats):
            by.setdefault(m, []).append(fn)
    if not by:
        return "What it means: no method finished a run, so there is nothing to compare."

    def _and(items: list[str]) -> str:
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

    said = [f"{m}'s on {_and(fns)}" for m, fns in by.items()]
    return (
        f"What it means: after {trials} trials the lowest median regret is {_and(said)}; the "
        "acceptance check below compares metatune-gp with optuna-gp and random."
    )


def write_markdown(
    data: dict, summary: dict, path: Path, png_name: str, rendered_by: str | None = None
) -> None:
    """The page. `rendered_by`: the command that re-rendered it from its JSON, if one did."""
    meta = data
    cfg = data["config"]
    warn = warning_lines(data["runs"])
    lines = [
        "# Synthetic functions: metatune vs Optuna",
        "",
        tables_markdown(summary, meta),
        f"![best-so-far regret per trial]({png_name})",
        "",
        "## What it means",
        "",
        what_it_means(summary, cfg["trials"]),
        "",
        "Columns: simple regret = best value found - f* (f* is botorch's tabulated optimum, "
        "rounded to ~6 digits, so regrets below ~1e-6 mean the optimum was found); median and "
        "quartiles over seeds. s/ask = seconds per ask (for Optuna `study.ask()` plus the "
        f"`suggest_float` calls, since it samples lazily), median over the last {LAST_ASKS} "
        "trials of a run, then median over seeds. total ask s = all asks of a run (median over "
        "seeds).",
        "",
        "## Acceptance check (metatune-gp)",
        "",
        "```",
        *check_lines(summary),
        "```",
        "",
    ]
    if warn:
        lines += ["## Warnings raised during the runs", "", *warn, ""]
    failures = [r for r in data["runs"] if r["error"]]
    if failures:
        lines += ["## Failed runs", ""]
        for r in failures:
            last = r["error"].strip().splitlines()[-1]
            lines.append(f"- {r['function']}/{r['method']}/seed {r['seed']}: {last}")
        lines.append("")
    setup = (
        f"Setup: {cfg['seeds']} seeds (0..{cfg['seeds'] - 1}) x {cfg['trials']} trials per "
        "(function, method), noise-free, minimize, the same Float space x0..x{d-1} on the "
        "function's bounds for every method, ask/tell in both libraries. Methods: `random` and "
        '`metatune-gp` are `metatune.Study(optimizer="random" / "gp", seed=seed)`; `optuna-tpe` '
        "and `optuna-gp` are Optuna's `TPESampler(seed=seed)` and `GPSampler(seed=seed)` with "
        "default settings. Every run is single-threaded (torch, OpenMP, MKL: 1 thread)."
    )
    here = repo_relative(path.parent)
    commands = [
        (
            data["command"],
            here,
            f"{data['date']}, {data['wall_seconds'] / 60:.1f} min with "
            f"{cfg['workers']} worker processes",
        )
    ]
    if rendered_by:
        commands.append((rendered_by, here, "rendered this page again from the run's JSON"))
    machine = (
        f"{'Machine of the run' if rendered_by else 'Machine'}: {format_machine(data['machine'])}"
    )
    lines += how_it_was_run(commands, [machine], [setup])
    path.write_text("\n".join(lines) + "\n")


# CLI -----------------------------------------------------------------------------------------
def _pick(given: str | None, known: Sequence[str], what: str) -> list[str]:
    if not given:
        return list(known)
    lookup = {k.lower(): k for k in known}
    out = []
    for name in (s.strip() for s in given.split(",") if s.strip()):
        if name.lower() not in lookup:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        out.append(lookup[name.lower()])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--functions", help=f"comma-separated subset of {', '.join(FUNCTIONS)}")
    p.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds, 0..N-1 (default 10)")
    p.add_argument("--trials", type=int, default=50, help="trials per run (default 50)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"), help="output folder")
    p.add_argument("--check", action="store_true", help="print the acceptance criteria")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="skip running: rebuild the report (and --check) from a saved synthetic.json",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        functions = [f for f in data["config"]["functions"] if f in SYNTHETIC_FUNCTIONS]
        methods = list(data["config"]["methods"])
    else:
        functions = _pick(args.functions, FUNCTIONS, "function")
        methods = _pick(args.methods, METHODS, "method")
        if args.seeds < 1 or args.trials < 1 or args.workers < 1:
            raise SystemExit("--seeds, --trials and --workers must be positive")
        meta_fns = {fn: function_info(fn) for fn in functions}
        jobs = [(fn, m, s) for fn in functions for m in methods for s in range(args.seeds)]
        jobs.sort(key=lambda j: (-_COST[j[1]], -meta_fns[j[0]]["dim"]))
        print(
            f"{len(jobs)} runs: {len(functions)} functions x {len(methods)} methods x "
            f"{args.seeds} seeds, {args.trials} trials each, {args.workers} workers",
            flush=True,
        )
        t0 = time.perf_counter()
        runs = run_all(jobs, args.trials, args.workers)
        wall = time.perf_counter() - t0
        order = {
            (fn, m, s): i
            for i, (fn, m, s) in enumerate(
                (fn, m, s) for fn in functions for m in methods for s in range(args.seeds)
            )
        }
        runs.sort(key=lambda r: order[(r["function"], r["method"], r["seed"])])
        data = {
            "command": command_line(out),
            "date": now_utc(),
            "machine": machine_info(),
            "wall_seconds": wall,
            "config": {
                "functions": functions,
                "methods": methods,
                "seeds": args.seeds,
                "trials": args.trials,
                "workers": args.workers,
            },
            "functions": meta_fns,
            "runs": runs,
        }
        (out / "synthetic.json").write_text(json.dumps(data))

    summary = summarize(data["runs"], functions, methods)
    plot(data["runs"], functions, methods, out / "synthetic.png")
    write_markdown(
        data,
        summary,
        out / "synthetic.md",
        "synthetic.png",
        rendered_by=command_line(out) if args.from_json else None,
    )
    print()
    print(tables_markdown(summary, data))
    print(f"wall time {data['wall_seconds']:.0f}s; wrote {out}/synthetic.{{json,md,png}}")
    n_failed = sum(bool(r["error"]) for r in data["runs"])
    if n_failed:
        print(f"{n_failed} runs FAILED; see synthetic.md", file=sys.stderr)
    warn = warning_lines(data["runs"])
    if warn:
        print("warnings during the runs:\n" + "\n".join(warn))
    if args.check:
        print("\nacceptance check (informational):")
        print("\n".join(check_lines(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
