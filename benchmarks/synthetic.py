"""metatune's optimizers vs Optuna's and HEBO's on synthetic functions: same budget, several
seeds, one run.

Each (function, method, seed) job runs a noise-free minimization through the ask/tell interface of
its library, records the best-so-far simple regret after every trial and the time of every ask,
and runs single-threaded in a process pool. HEBO needs NumPy < 1.25, so it runs in a virtualenv
of its own (`--hebo-python`, made by `--make-hebo-venv`): each HEBO job drives
benchmarks/synthetic_hebo_runner.py in that interpreter over JSON lines, and evaluates the
function here. Writes docs/benchmarks/synthetic.{json,md,png}.

    python benchmarks/synthetic.py --make-hebo-venv       # once: metatune-runs/venv-hebo
    python benchmarks/synthetic.py                        # 10 seeds, each function's budget
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
import os  # noqa: E402
import subprocess  # noqa: E402
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
    read_notes,
    repo_relative,
    single_thread_torch,
)
from metatune.benchmarks.registry import (  # noqa: E402
    DEFAULT_FUNCTIONS,
    HIGH_DIM_FUNCTIONS,
    SYNTHETIC_FUNCTIONS,
)

ROOT = Path(__file__).resolve().parent.parent
HEBO_RUNNER = Path(__file__).resolve().parent / "synthetic_hebo_runner.py"
HEBO_VENV = ROOT / "metatune-runs" / "venv-hebo"
# How --make-hebo-venv builds HEBO's environment (pip arguments, one install each; the torch pin
# comes from constraints.txt, the scikit-learn pin matches ours).
HEBO_INSTALLS = (
    ("-c", "constraints.txt", "torch==2.13.0"),
    (
        "-c",
        "constraints.txt",
        "numpy<1.25",
        "pandas<2.3",
        "scipy<1.14",
        "scikit-learn==1.9.1",
        "HEBO==0.3.6",
    ),
)

# The functions (metatune.benchmarks.registry.SYNTHETIC_FUNCTIONS), in the page's order.
FUNCTIONS = [
    *DEFAULT_FUNCTIONS,
    *HIGH_DIM_FUNCTIONS,
    *(n for n in SYNTHETIC_FUNCTIONS.names() if n not in DEFAULT_FUNCTIONS + HIGH_DIM_FUNCTIONS),
]
METHODS = ("random", "metatune-gp", "metatune-tr", "optuna-tpe", "optuna-gp", "hebo")
# metatune-tr (the GP's trust-region option) runs on the high-dimensional functions only.
HIGH_DIM_ONLY = ("metatune-tr",)
METATUNE_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "metatune-gp": ("gp", {}),
    "metatune-tr": ("gp", {"trust_region": True}),
}
# Rough relative cost per job, to start the slow jobs first and balance the pool.
_COST = {
    "hebo": 6,
    "metatune-gp": 3,
    "metatune-tr": 3,
    "optuna-gp": 3,
    "optuna-tpe": 1,
    "random": 0,
}
COLORS = {
    "random": "tab:gray",
    "metatune-gp": "tab:blue",
    "metatune-tr": "tab:purple",
    "optuna-tpe": "tab:orange",
    "optuna-gp": "tab:green",
    "hebo": "tab:red",
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


def _run_metatune(f: Any, method: str, seed: int, n_trials: int, rec: dict[str, Any]) -> None:
    import metatune

    optimizer, options = METATUNE_OPTIONS[method]
    lo, hi = f.bounds[0].tolist(), f.bounds[1].tolist()
    space = metatune.Space({f"x{i}": metatune.Float(lo[i], hi[i]) for i in range(f.dim)})
    study = metatune.Study(space, optimizer=optimizer, optimizer_options=options, seed=seed)
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


class _HeboProcess:
    """HEBO in its own interpreter: one runner process per run, JSON lines both ways."""

    def __init__(self, python: str, bounds: list[list[float]], seed: int) -> None:
        self.proc = subprocess.Popen(
            [python, str(HEBO_RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        self.call({"bounds": bounds, "seed": seed})

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:  # skip what pymoo and HEBO print on standard output
            if line.startswith("@@"):
                reply = json.loads(line[2:])
                if "error" in reply:
                    raise RuntimeError(f"HEBO runner: {reply['error']}")
                return reply
        err = self.proc.stderr.read() if self.proc.stderr is not None else ""
        raise RuntimeError(f"HEBO runner exited: {err.strip()[-2000:]}")

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _run_hebo(f: Any, python: str, seed: int, n_trials: int, rec: dict[str, Any]) -> None:
    if not Path(python).exists():
        raise FileNotFoundError(
            f"HEBO's interpreter {python} does not exist: run this script with --make-hebo-venv"
        )
    bounds = f.bounds.T.tolist()
    hebo = _HeboProcess(python, bounds, seed)
    try:
        for _ in range(n_trials):
            t0 = time.perf_counter()
            x = hebo.call({"cmd": "suggest"})["x"]
            rec["ask_seconds"].append(time.perf_counter() - t0)
            y = _evaluate(f, x)
            hebo.call({"cmd": "observe", "x": x, "y": y})
            rec["values"].append(y)
    finally:
        hebo.close()


def run_job(
    function: str, method: str, seed: int, n_trials: int, hebo_python: str = ""
) -> dict[str, Any]:
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
            if method in METATUNE_OPTIONS:
                _run_metatune(f, method, seed, n_trials, rec)
            elif method == "hebo":
                _run_hebo(f, hebo_python, seed, n_trials, rec)
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
def run_all(
    jobs: list[tuple[str, str, int, int]],
    workers: int,
    hebo_python: str,
    save: Any = None,
) -> list[dict]:
    """Every job, in a pool of `workers` spawned processes; `save(results)` after each run (so
    an interrupted run keeps what it finished)."""
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
        if save is not None:
            save(results)

    if progress is not None:
        progress.start()
        task = progress.add_task("synthetic", total=len(jobs), last="")
    try:
        if workers <= 1:
            _init_worker()
            for job in jobs:
                done(run_job(*job, hebo_python))
        else:
            ctx = multiprocessing.get_context("spawn")  # fresh interpreters: env set pre-torch
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
                pending: set[Future] = {pool.submit(run_job, *job, hebo_python) for job in jobs}
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
            if not mine:  # not run on this function (metatune-tr on the small ones)
                continue
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


def check_lines(summary: dict, meta: dict) -> list[str]:
    """The must-shows: on every small function metatune-gp's median regret <= optuna-gp's and
    hebo's; on every high-dimensional one metatune-tr's median < both. One line per function;
    a peer that did not run there is named, and the verdict says so."""
    lines = []
    verdicts: list[tuple[str, bool, list[str]]] = []  # function, ok vs peers run, peers not run
    skipped = 0
    for fn, stats in summary.items():
        high = meta["functions"][fn].get("high_dim", False)
        ours = "metatune-tr" if high else "metatune-gp"
        peers = [m for m in ("optuna-gp", "hebo") if m in stats]
        missing = [m for m in ("optuna-gp", "hebo") if m not in stats]
        if ours not in stats or not peers:
            lines.append(f"  {fn:<14} skipped: needs {ours} and optuna-gp or hebo")
            skipped += 1
            continue
        mine = stats[ours]["median"]
        parts, ok_all = [], True
        for m in peers:
            theirs = stats[m]["median"]
            ok = (mine < theirs) if high else (mine <= theirs)
            ok_all &= bool(ok) and not math.isnan(mine)
            n = f" ({stats[m]['ok']} runs)" if stats[m]["ok"] != meta["config"]["seeds"] else ""
            parts.append(f"vs {m} {fmt_num(theirs)}{n}: {'ok' if ok else 'WORSE'}")
        parts += [f"{m}: not run" for m in missing]
        lines.append(f"  {fn:<14} {ours} {fmt_num(mine)} " + "; ".join(parts))
        verdicts.append((fn, ok_all, missing))
    for high, what in ((False, "metatune-gp <="), (True, "metatune-tr <")):
        group = [v for v in verdicts if meta["functions"][v[0]].get("high_dim", False) == high]
        if not group:
            continue
        n_ok = sum(ok for _, ok, _ in group)
        absent = sorted({m for _, _, miss in group for m in miss})
        note = f"; {', '.join(absent)} not run on some or all of them" if absent else ""
        kind = "high-dimensional" if high else "small"
        lines.append(
            f"  {'PASS' if n_ok == len(group) else 'FAIL'}: {what} every peer that ran, on every "
            f"{kind} function ({n_ok}/{len(group)}){note}"
        )
    if verdicts:
        overall = all(ok for _, ok, _ in verdicts)
        complete = not skipped and not any(miss for _, _, miss in verdicts)
        verdict = "PASS" if overall and complete else "PASS (incomplete)" if overall else "FAIL"
        lines.append(f"  overall: {verdict}")
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


def summary_table(summary: dict, meta: dict) -> list[str]:
    """One row per function, one column per method: median final regret [q25, q75]; the lowest
    median of the row in bold."""
    methods = [m for m in METHODS if any(m in stats for stats in summary.values())]
    lines = [
        "| function | budget | " + " | ".join(methods) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in methods) + " |",
    ]
    for fn, stats in summary.items():
        info = meta["functions"][fn]
        winners = set(best_methods(stats))
        cells = []
        for m in methods:
            if m not in stats:
                cells.append("")
                continue
            v = fmt_num(stats[m]["median"])
            v = f"**{v}**" if m in winners else v
            if stats[m]["ok"] != meta["config"]["seeds"]:
                v += f" ({stats[m]['ok']} runs)"
            cells.append(v)
        budget = info.get("n_trials", meta["config"].get("trials"))
        lines.append(f"| {fn} ({info['dim']}d) | {budget} | " + " | ".join(cells) + " |")
    return lines


def what_it_means(summary: dict, meta: dict) -> str:
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
        f"What it means: at the end of each function's budget the lowest median regret is "
        f"{_and(said)}. The must-show check below compares metatune's default GP with "
        "Optuna's GPSampler and HEBO on the small functions, and the GP's trust-region option "
        "(metatune-tr) with both on the 20-40 dimensional ones."
    )


def write_markdown(
    data: dict,
    summary: dict,
    path: Path,
    png_name: str,
    rendered_by: str | None = None,
    notes: str | None = None,
) -> None:
    """The page. `rendered_by`: the command that re-rendered it from its JSON, if one did;
    `notes`: Markdown placed after the check (what was tried, with numbers)."""
    meta = data
    cfg = data["config"]
    warn = warning_lines(data["runs"])
    lines = [
        "# Synthetic functions: metatune vs Optuna and HEBO",
        "",
        "Median final simple regret over seeds (lower is better; bold: lowest in the row; a "
        "count in brackets where a method has fewer runs than the page's seeds). metatune-tr is "
        "metatune's GP with `trust_region=True`, run on the high-dimensional functions only.",
        "",
        *summary_table(summary, meta),
        "",
        what_it_means(summary, meta),
        "",
        "## Must-show check",
        "",
        "```",
        *check_lines(summary, meta),
        "```",
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "## Per function",
        "",
        "Simple regret = best value found - f* (f* is botorch's tabulated optimum, rounded to "
        "~6 digits, so regrets below ~1e-6 mean the optimum was found); median and quartiles over "
        "seeds. s/ask = seconds per ask (for Optuna `study.ask()` plus the `suggest_float` calls, "
        "since it samples lazily; for HEBO its `suggest` in its own process, plus the JSON round "
        f"trip), median over the last {LAST_ASKS} trials of a run, then median over seeds; "
        "total ask s = all asks of a run (median over seeds). The runs shared a loaded machine, "
        "so the times say little about speed.",
        "",
        tables_markdown(summary, meta),
        f"![best-so-far regret per trial]({png_name})",
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
        f"Setup: {cfg['seeds']} seeds (0..{cfg['seeds'] - 1}) per (function, method), each "
        "function's trial budget (the table's budget column) for every method, noise-free, "
        "minimize, the same Float space x0..x{d-1} on the function's bounds for every method, "
        "ask/tell in every library. Hartmann6in40 is Hartmann6 on 6 fixed, seeded columns of "
        "40 inputs (the other 34 do nothing). Methods: `random`, `metatune-gp` and "
        '`metatune-tr` are `metatune.Study(optimizer="random" / "gp", seed=seed)`, '
        'metatune-tr with `optimizer_options={"trust_region": True}`; `optuna-tpe` and '
        "`optuna-gp` are Optuna's `TPESampler(seed=seed)` and `GPSampler(seed=seed)` with "
        "default settings; `hebo` is HEBO 0.3.6's `HEBO(space, scramble_seed=seed)` with "
        "default settings (numpy and torch seeded too), one suggestion at a time. Every run is "
        "single-threaded (torch, OpenMP, MKL: 1 thread)."
    )
    hebo = (
        "HEBO 0.3.6 needs NumPy < 1.25, so it runs in a virtualenv of its own, made by "
        "`python benchmarks/synthetic.py --make-hebo-venv` (`python3 -m venv "
        "metatune-runs/venv-hebo`, then `pip install -c constraints.txt torch==2.13.0` and "
        "`pip install -c constraints.txt 'numpy<1.25' 'pandas<2.3' 'scipy<1.14' "
        "scikit-learn==1.9.1 HEBO==0.3.6`). Each HEBO run starts "
        "`benchmarks/synthetic_hebo_runner.py` in that interpreter and drives it over JSON lines "
        "(suggest / observe); the function is evaluated in metatune's environment, with the "
        "same botorch test functions as every other method."
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
    for k, merged in enumerate(cfg.get("merged") or []):
        commands.insert(
            k,
            (
                merged["command"] or "(not recorded)",
                here,
                f"{merged['date']}, {(merged['wall_seconds'] or 0) / 60:.1f} min with "
                f"{merged['workers']} worker processes: {merged['runs']} runs of this page "
                f"({', '.join(merged['what'])}), taken by --merge",
            ),
        )
    if rendered_by:
        commands.append((rendered_by, here, "rendered this page again from the run's JSON"))
    machine = (
        f"{'Machine of the run' if rendered_by else 'Machine'}: {format_machine(data['machine'])}"
    )
    versions = data.get("hebo_versions")
    facts = [machine] + ([f"HEBO's environment: {versions}"] if versions else [])
    lines += how_it_was_run(commands, facts, [setup, hebo])
    path.write_text("\n".join(lines) + "\n")


def make_hebo_venv(venv: Path) -> None:
    """Create HEBO's virtualenv at `venv` (the commands the page names)."""
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    pip = str(venv / "bin" / "pip")
    for args in HEBO_INSTALLS:
        subprocess.run([pip, "install", *args], check=True, cwd=ROOT)


def hebo_versions(python: str) -> str | None:
    """HEBO's, NumPy's and torch's versions in HEBO's interpreter (None when it is missing)."""
    if not Path(python).exists():
        return None
    code = (
        "import importlib.metadata as m;"
        "print(', '.join(f'{p} {m.version(p)}' for p in ('HEBO','numpy','torch','pymoo')))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout else None


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


def _merged_runs(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    functions: list[str],
    methods: list[str],
    hebo_seeds: int,
) -> tuple[list[dict], list[dict[str, Any]], list[str]]:
    """The earlier runs `--merge` takes, what the page says about each file, and the functions
    of --merge-functions (never run here).

    A run is taken when its method is one of --merge-methods or its function one of
    --merge-functions (and it is of this page's functions, methods and seeds); a later file
    replaces an earlier one's run of the same function, method and seed.
    """
    if not args.merge:
        return [], [], []
    taken_methods = _pick(args.merge_methods, METHODS, "method")
    taken_functions = (
        _pick(args.merge_functions, functions, "function") if args.merge_functions else []
    )
    unknown = [m for m in taken_methods if m not in methods]
    if unknown:
        p.error(f"--merge-methods {', '.join(unknown)} not among --methods")
    by_key: dict[tuple[str, str, int], tuple[int, dict]] = {}
    abouts: list[dict[str, Any]] = []
    for i, path in enumerate(args.merge):
        try:
            earlier = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--merge: cannot read {path!r}: {exc}")
        for r in earlier["runs"]:
            if (
                (r["method"] in taken_methods or r["function"] in taken_functions)
                and r["function"] in functions
                and r["method"] in methods
                and r["seed"] < (hebo_seeds if r["method"] == "hebo" else args.seeds)
            ):
                by_key[(r["function"], r["method"], r["seed"])] = (i, r)
        abouts.append(
            {
                "command": earlier.get("command"),
                "date": earlier.get("date"),
                "wall_seconds": earlier.get("wall_seconds"),
                "workers": earlier.get("config", {}).get("workers"),
                "hebo_versions": earlier.get("hebo_versions"),
            }
        )
    for i, about in enumerate(abouts):
        kept = [r for j, r in by_key.values() if j == i]
        about["runs"] = len(kept)
        about["what"] = sorted({f"{r['function']}/{r['method']}" for r in kept})
    return [r for _, r in by_key.values()], [a for a in abouts if a["runs"]], taken_functions


def _is_merged(
    merged: list[dict[str, Any]], merged_functions: list[str], function: str, method: str
) -> bool:
    """Whether this page takes (function, method) from --merge instead of running it: a
    function of --merge-functions is never run here."""
    return function in merged_functions or any(
        f"{function}/{method}" in about["what"] for about in merged
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--functions", help=f"comma-separated subset of {', '.join(FUNCTIONS)}")
    p.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds, 0..N-1 (default 10)")
    p.add_argument(
        "--trials", type=int, default=None, help="trials per run (default: each function's)"
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--hebo-seeds",
        type=int,
        default=None,
        help="run HEBO on seeds 0..N-1 only (default: all); it is by far the slowest method",
    )
    p.add_argument(
        "--hebo-functions",
        help="comma-separated functions HEBO runs on (default: all of --functions)",
    )
    p.add_argument(
        "--high-dim-methods",
        help="comma-separated methods run on the high-dimensional functions (default: all)",
    )
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"), help="output folder")
    p.add_argument("--check", action="store_true", help="print the must-show check")
    p.add_argument(
        "--hebo-python",
        default=str(HEBO_VENV / "bin" / "python"),
        help="HEBO's interpreter (default: metatune-runs/venv-hebo/bin/python)",
    )
    p.add_argument(
        "--make-hebo-venv", action="store_true", help="create HEBO's virtualenv first, then run"
    )
    p.add_argument("--notes", help="a Markdown file placed on the page after the check")
    p.add_argument(
        "--merge",
        metavar="PATH",
        action="append",
        help="a synthetic.json of an earlier run (repeatable): the runs of --merge-methods and "
        "--merge-functions come from it, not run again (for the slowest runs)",
    )
    p.add_argument(
        "--merge-methods",
        default="hebo",
        help="comma-separated methods whose runs --merge takes (default: hebo)",
    )
    p.add_argument(
        "--merge-functions",
        default="",
        help="comma-separated functions all of whose runs --merge takes (default: none)",
    )
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="skip running: rebuild the report (and --check) from a saved synthetic.json",
    )
    args = p.parse_args(argv)
    notes = read_notes(p, args.notes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        functions = [f for f in data["config"]["functions"] if f in SYNTHETIC_FUNCTIONS]
        methods = list(data["config"]["methods"])
    else:
        functions = _pick(args.functions, FUNCTIONS, "function")
        methods = _pick(args.methods, METHODS, "method")
        if args.seeds < 1 or args.workers < 1 or (args.trials is not None and args.trials < 1):
            raise SystemExit("--seeds, --trials and --workers must be positive")
        if args.make_hebo_venv:
            make_hebo_venv(Path(args.hebo_python).parent.parent)
        meta_fns = {fn: function_info(fn) for fn in functions}
        if args.trials is not None:
            for info in meta_fns.values():
                info["n_trials"] = args.trials
        hebo_seeds = args.seeds if args.hebo_seeds is None else min(args.hebo_seeds, args.seeds)
        merged_runs, merged_from, merged_functions = _merged_runs(
            p, args, functions, methods, hebo_seeds
        )
        short = [
            r
            for r in merged_runs
            if r["error"] is None and len(r["values"]) != meta_fns[r["function"]]["n_trials"]
        ]
        if short:
            r = short[0]
            p.error(
                f"--merge: {r['function']}/{r['method']}/seed {r['seed']} has "
                f"{len(r['values'])} trials, this page {meta_fns[r['function']]['n_trials']}"
            )
        hebo_fns = _pick(args.hebo_functions, functions, "function")
        high_methods = _pick(args.high_dim_methods, methods, "method")
        jobs = [
            (fn, m, s, meta_fns[fn]["n_trials"])
            for fn in functions
            for m in methods
            if (m not in HIGH_DIM_ONLY or meta_fns[fn]["high_dim"])
            and (m != "hebo" or fn in hebo_fns)
            and (not meta_fns[fn]["high_dim"] or m in high_methods)
            and not _is_merged(merged_from, merged_functions, fn, m)
            for s in range(hebo_seeds if m == "hebo" else args.seeds)
        ]
        order: dict[tuple[str, str, int], int] = {
            (fn, m, s): i for i, (fn, m, s, _) in enumerate(jobs)
        }
        for r in merged_runs:
            order.setdefault((r["function"], r["method"], r["seed"]), len(order))
        jobs.sort(key=lambda j: -_COST[j[1]] * j[3] * meta_fns[j[0]]["dim"])
        print(
            f"{len(jobs)} runs: {len(functions)} functions x {len(methods)} methods x "
            f"{args.seeds} seeds, {args.workers} workers",
            flush=True,
        )
        t0 = time.perf_counter()
        config = {
            "functions": functions,
            "methods": methods,
            "seeds": args.seeds,
            "hebo_seeds": hebo_seeds,
            "hebo_functions": hebo_fns,
            "high_dim_methods": high_methods,
            "trials": args.trials,
            "workers": args.workers,
            "merged": merged_from,
        }

        versions = hebo_versions(args.hebo_python) if "hebo" in methods else None
        for about in merged_from:
            if any(w.endswith("/hebo") for w in about["what"]):
                versions = about.get("hebo_versions") or versions

        def page_data(runs: list[dict]) -> dict:
            runs = sorted(runs, key=lambda r: order[(r["function"], r["method"], r["seed"])])
            return {
                "command": command_line(out),
                "date": now_utc(),
                "machine": machine_info(),
                "hebo_versions": versions,
                "wall_seconds": time.perf_counter() - t0,
                "config": config,
                "functions": meta_fns,
                "runs": runs,
            }

        def save_partial(runs: list[dict]) -> None:
            (out / "synthetic.partial.json").write_text(json.dumps(page_data(runs)))

        runs = run_all(jobs, args.workers, args.hebo_python, save_partial) + merged_runs
        data = page_data(runs)
        (out / "synthetic.partial.json").unlink(missing_ok=True)
        (out / "synthetic.json").write_text(json.dumps(data))

    summary = summarize(data["runs"], functions, methods)
    plot(data["runs"], functions, methods, out / "synthetic.png")
    write_markdown(
        data,
        summary,
        out / "synthetic.md",
        "synthetic.png",
        rendered_by=command_line(out) if args.from_json else None,
        notes=notes,
    )
    print()
    print("\n".join(summary_table(summary, data)))
    print(f"wall time {data['wall_seconds']:.0f}s; wrote {out}/synthetic.{{json,md,png}}")
    n_failed = sum(bool(r["error"]) for r in data["runs"])
    if n_failed:
        print(f"{n_failed} runs FAILED; see synthetic.md", file=sys.stderr)
    warn = warning_lines(data["runs"])
    if warn:
        print("warnings during the runs:\n" + "\n".join(warn))
    if args.check:
        print("\nmust-show check:")
        print("\n".join(check_lines(summary, data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
