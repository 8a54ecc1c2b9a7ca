"""Multi-objective optimization: hypervolume over evaluations, metatune vs Optuna, one run.

Every (problem, method, seed) run minimizes a multi-objective test problem of BoTorch
(botorch.test_functions.multi_objective, noise-free) through the ask/tell interface of its
library; after every evaluation the hypervolume of the Pareto front found so far is computed
with BoTorch's exact Hypervolume against the problem's own reference point. Runs are cached one
JSON file each under --cache, so an interrupted run resumes where it stopped. Writes
docs/benchmarks/multi-objective.{json,md,png}.

    python benchmarks/multi_objective.py                          # 10 seeds x 80 evaluations
    python benchmarks/multi_objective.py --seeds 2 --evals 20 --problems BraninCurrin
    python benchmarks/multi_objective.py --problem-set dev --methods mo-gp,optuna-tpe
    python benchmarks/multi_objective.py --from-json docs/benchmarks/multi-objective.json
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
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait  # noqa: E402
from dataclasses import dataclass  # noqa: E402
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

ROOT = Path(__file__).resolve().parent.parent
PAGE = "multi-objective"
CACHE_VERSION = 1  # bump when a run's recorded content changes meaning


# Problems ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """A BoTorch multi-objective test problem, built in its own (minimization) convention."""

    name: str
    cls: str
    kwargs: tuple[tuple[str, int], ...] = ()

    def make(self) -> Any:
        from botorch.test_functions import multi_objective as mo

        return getattr(mo, self.cls)(negate=False, **dict(self.kwargs))


PROBLEMS = {
    p.name: p
    for p in (
        Problem("BraninCurrin", "BraninCurrin"),
        Problem("ZDT2-6d", "ZDT2", (("dim", 6), ("num_objectives", 2))),
        Problem("DTLZ2-6d", "DTLZ2", (("dim", 6), ("num_objectives", 2))),
        Problem("VehicleSafety", "VehicleSafety"),
        Problem("Penicillin", "Penicillin"),
        # The dev set: problems mo-gp's settings were chosen on, never shown on the page.
        Problem("ZDT1-5d", "ZDT1", (("dim", 5), ("num_objectives", 2))),
        Problem("ZDT3-4d", "ZDT3", (("dim", 4), ("num_objectives", 2))),
        Problem("DTLZ5-5d", "DTLZ5", (("dim", 5), ("num_objectives", 2))),
        Problem("GMM", "GMM", (("num_objectives", 2),)),
        Problem("DTLZ2-4d-3obj", "DTLZ2", (("dim", 4), ("num_objectives", 3))),
    )
}
PROBLEM_SETS = {
    "page": ["BraninCurrin", "ZDT2-6d", "DTLZ2-6d", "VehicleSafety"],
    "dev": ["ZDT1-5d", "ZDT3-4d", "DTLZ5-5d", "GMM", "DTLZ2-4d-3obj"],
}

METHODS = ("mo-gp", "nsga2", "random", "optuna-nsga2", "optuna-tpe")
DEFAULT_METHOD = "mo-gp"  # metatune's default for a study with several directions
PEERS = ("optuna-nsga2", "optuna-tpe")
# Rough relative cost per job, to start the slow jobs first and balance the pool.
_COST = {"mo-gp": 10, "optuna-tpe": 2, "optuna-nsga2": 0, "nsga2": 0, "random": 0}
COLORS = {
    "mo-gp": "tab:blue",
    "nsga2": "tab:cyan",
    "random": "tab:gray",
    "optuna-nsga2": "tab:green",
    "optuna-tpe": "tab:orange",
}
WARMUP = 10  # evaluations before the check: the Sobol/startup trials of mo-gp and of TPE
LAST_ASKS = 10  # s/ask is the median over this many final asks of a run


def problem_info(name: str) -> dict[str, Any]:
    f = PROBLEMS[name].make()
    max_hv = getattr(f, "_max_hv", None)
    return {
        "botorch_class": PROBLEMS[name].cls,
        "dim": int(f.dim),
        "num_objectives": int(f.num_objectives),
        "bounds": f.bounds.T.tolist(),
        "ref_point": [float(v) for v in f._ref_point],
        "max_hv": float(max_hv) if max_hv is not None else None,
    }


# Hypervolume ---------------------------------------------------------------------------------
def hypervolume(losses: Any, ref_point: Sequence[float]) -> float:
    """Hypervolume dominated by the minimized objective vectors `losses` (n, k) and bounded by
    `ref_point` (same convention), computed by BoTorch in its maximization convention: both
    are negated, points that do not dominate the reference point add nothing."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    from botorch.utils.multi_objective.pareto import is_non_dominated

    ref = -torch.as_tensor(list(ref_point), dtype=torch.double)
    Y = -torch.as_tensor(np.asarray(losses, dtype=float), dtype=torch.double).reshape(-1, len(ref))
    Y = Y[(ref < Y).all(dim=-1)]
    if len(Y) == 0:
        return 0.0
    return float(Hypervolume(ref_point=ref).compute(Y[is_non_dominated(Y)]))


def hypervolume_curve(losses: Any, ref_point: Sequence[float]) -> list[float]:
    """The hypervolume of the first 1, 2, ..., n rows of `losses`; recomputed only when a row
    is not dominated by an earlier one (else the front is unchanged)."""
    Y = np.asarray(losses, dtype=float).reshape(len(losses), -1)
    out: list[float] = []
    hv = 0.0
    for i in range(len(Y)):
        earlier = Y[:i]
        dominated = bool(
            len(earlier)
            and np.any(np.all(earlier <= Y[i], axis=1) & np.any(earlier < Y[i], axis=1))
        )
        if not dominated and np.all(Y[i] < np.asarray(ref_point)):
            hv = hypervolume(Y[: i + 1], ref_point)
        out.append(hv)
    return out


# One job (runs in a worker) ------------------------------------------------------------------
class _Capture(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append(f"{record.name}: {record.getMessage()}"[:300])


def _init_worker() -> None:
    single_thread_torch()
    # Import everything up front, so no run's first ask pays for imports.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import botorch.acquisition.multi_objective.logei  # noqa: F401
        import botorch.test_functions.multi_objective  # noqa: F401
        import optuna

        import metatune
        import metatune.optimizers.multi_objective  # noqa: F401
        import metatune.optimizers.nsga2  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()  # warnings are captured per run instead


def _evaluate(f: Any, x: Sequence[float]) -> list[float]:
    import torch

    return [float(v) for v in f.evaluate_true(torch.tensor([list(x)], dtype=torch.double))[0]]


def _run_metatune(
    f: Any,
    optimizer: str,
    seed: int,
    n_evals: int,
    rec: dict[str, Any],
    options: dict[str, Any] | None = None,
) -> None:
    import metatune

    lo, hi = f.bounds[0].tolist(), f.bounds[1].tolist()
    space = metatune.Space({f"x{i}": metatune.Float(lo[i], hi[i]) for i in range(f.dim)})
    study = metatune.Study(
        space,
        directions=["minimize"] * f.num_objectives,
        optimizer=optimizer,
        seed=seed,
        optimizer_options=options or None,
    )
    for _ in range(n_evals):
        t0 = time.perf_counter()
        trial = study.ask()
        rec["ask_seconds"].append(time.perf_counter() - t0)
        y = _evaluate(f, [trial.params[f"x{i}"] for i in range(f.dim)])
        study.tell(trial, y)
        rec["values"].append(y)


def _run_optuna(f: Any, sampler_name: str, seed: int, n_evals: int, rec: dict[str, Any]) -> None:
    import optuna

    if sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    else:
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    study = optuna.create_study(directions=["minimize"] * f.num_objectives, sampler=sampler)
    lo, hi = f.bounds[0].tolist(), f.bounds[1].tolist()
    for _ in range(n_evals):
        t0 = time.perf_counter()
        trial = study.ask()  # Optuna samples lazily: the suggest calls are part of the ask
        x = [trial.suggest_float(f"x{i}", lo[i], hi[i]) for i in range(f.dim)]
        rec["ask_seconds"].append(time.perf_counter() - t0)
        y = _evaluate(f, x)
        study.tell(trial, y)
        rec["values"].append(y)


def run_job(
    problem: str,
    method: str,
    seed: int,
    n_evals: int,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One (problem, method, seed) run; never raises: a failure is recorded in `error`.
    `options`: optimizer_options for a metatune method (a dev-set variant)."""
    rec: dict[str, Any] = {
        "problem": problem,
        "method": method,
        "seed": seed,
        "evals": n_evals,
        "options": options or {},
        "values": [],
        "ask_seconds": [],
        "hypervolume": [],
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
            f = PROBLEMS[problem].make()
            if method in ("mo-gp", "nsga2", "random"):
                _run_metatune(f, method, seed, n_evals, rec, options)
            elif method in ("optuna-tpe", "optuna-nsga2"):
                _run_optuna(f, method.split("-", 1)[1], seed, n_evals, rec)
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
        ref = [float(v) for v in PROBLEMS[problem].make()._ref_point]
        rec["hypervolume"] = hypervolume_curve(rec["values"], ref)
    rec["warnings"] = [f"{msg} (x{n})" for msg, n in Counter(captured).items()]
    return rec


# Running, with one cached file per run -------------------------------------------------------
Job = tuple[str, str, int]  # (problem, method, seed)


def variant_tag(options: dict[str, Any] | None) -> str:
    """A file-name-safe tag of a dev variant's optimizer options ('' for none)."""
    if not options:
        return ""
    return "+" + ",".join(f"{k}={options[k]}" for k in sorted(options)).replace("/", "_")


def cache_path(cache: Path, job: Job, options: dict[str, Any] | None) -> Path:
    problem, method, seed = job
    return cache / f"{problem}__{method}{variant_tag(options)}__seed{seed}.json"


def truncate(rec: dict[str, Any], n_evals: int) -> dict[str, Any]:
    """A run's record cut to its first `n_evals` evaluations. No method is told the budget,
    so these are exactly what a run of `n_evals` evaluations would have done."""
    out = dict(rec, evals=n_evals)
    for key in ("values", "ask_seconds", "hypervolume"):
        out[key] = rec[key][:n_evals]
    return out


def _load_cached(path: Path, n_evals: int) -> dict[str, Any] | None:
    """The cached run at `path` cut to `n_evals`, or None when there is none as long (or it
    failed, or was written by another version of this script)."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("cache_version") != CACHE_VERSION or rec.get("error"):
        return None  # failed runs are tried again
    if len(rec["hypervolume"]) < n_evals:
        return None
    return truncate(rec, n_evals)


def _store(path: Path, rec: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**rec, "cache_version": CACHE_VERSION}))
    tmp.replace(path)  # atomic: a killed run leaves no half-written file


def run_all(
    jobs: list[Job],
    n_evals: int,
    workers: int,
    cache: Path | None,
    options: dict[str, dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Every job's record, from the cache where it has one; `options`: method -> options."""
    options = options or {}
    results: list[dict] = []
    todo: list[Job] = []
    for job in jobs:
        path = cache_path(cache, job, options.get(job[1])) if cache else None
        rec = _load_cached(path, n_evals) if path else None
        if rec is not None:
            results.append(rec)
        else:
            todo.append(job)
    if results:
        log(f"{len(results)} runs read from the cache, {len(todo)} to run")
    progress = make_progress(sys.stderr.isatty())
    start = time.perf_counter()

    def done(rec: dict) -> None:
        if cache is not None:
            job = (rec["problem"], rec["method"], rec["seed"])
            _store(cache_path(cache, job, options.get(rec["method"])), rec)
        results.append(rec)
        tag = f"{rec['problem']}/{rec['method']}/seed {rec['seed']}"
        status = "FAILED" if rec["error"] else f"hv {fmt_num(rec['hypervolume'][-1])}"
        if progress is not None:
            progress.update(task, advance=1, last=f"{tag}: {status}")
        else:
            log(
                f"[{len(results)}/{len(jobs)} {time.perf_counter() - start:7.1f}s] {tag}: "
                f"{status}, {rec['wall_seconds']:.1f}s"
            )
        if rec["error"]:
            print(f"{tag} failed:\n{rec['error']}", file=sys.stderr, flush=True)

    if progress is not None:
        progress.start()
        task = progress.add_task(PAGE, total=len(todo), last="")
    try:
        if workers <= 1 or len(todo) <= 1:
            if todo:
                _init_worker()
            for job in todo:
                done(run_job(*job, n_evals, options.get(job[1])))
        else:
            ctx = multiprocessing.get_context("spawn")  # fresh interpreters: env set pre-torch
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
                pending: set[Future] = {
                    pool.submit(run_job, *job, n_evals, options.get(job[1])) for job in todo
                }
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        done(fut.result())
    finally:
        if progress is not None:
            progress.stop()
    return results


# Summaries -----------------------------------------------------------------------------------
def checkpoints(n_evals: int, every: int = 10) -> list[int]:
    points = list(range(every, n_evals + 1, every))
    return points if points and points[-1] == n_evals else [*points, n_evals]


def log_hv_difference(hv: float, max_hv: float | None) -> float:
    """log10(max_hv - hv); NaN without a max_hv, -inf once the maximum is reached."""
    if max_hv is None:
        return float("nan")
    gap = max_hv - hv
    return math.log10(gap) if gap > 0 else float("-inf")


def summarize(
    runs: list[dict], problems: list[str], methods: list[str], meta: dict, n_evals: int
) -> dict:
    """problem -> method -> {checkpoint -> median/q25/q75 of hypervolume and median log10 HV
    difference}, plus median s/ask and run counts."""
    nan = float("nan")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for pb in problems:
        max_hv = meta[pb]["max_hv"]
        out[pb] = {}
        for m in methods:
            mine = [r for r in runs if r["problem"] == pb and r["method"] == m]
            ok = [r for r in mine if not r["error"] and len(r["hypervolume"]) >= n_evals]
            at: dict[int, dict[str, float]] = {}
            for c in checkpoints(n_evals):
                hv = np.array([r["hypervolume"][c - 1] for r in ok], dtype=float)
                at[c] = {
                    "median": float(np.median(hv)) if len(ok) else nan,
                    "q25": float(np.percentile(hv, 25)) if len(ok) else nan,
                    "q75": float(np.percentile(hv, 75)) if len(ok) else nan,
                    "log_diff": (
                        log_hv_difference(float(np.median(hv)), max_hv) if len(ok) else nan
                    ),
                }
            ask = [float(np.median(r["ask_seconds"][-LAST_ASKS:])) for r in ok]
            out[pb][m] = {
                "at": at,
                "ask_s": float(np.median(ask)) if ask else nan,
                "total_ask_s": (
                    float(np.median([np.sum(r["ask_seconds"]) for r in ok])) if ok else nan
                ),
                "ok": len(ok),
                "runs": len(mine),
            }
    return out


def check(summary: dict, n_evals: int, method: str = DEFAULT_METHOD) -> tuple[bool, list[str]]:
    """The must-show: `method`'s median hypervolume at or above every peer's at every
    checkpoint after the warm-up, on every problem. (passed, one line per problem)."""
    lines: list[str] = []
    passed = True
    after = [c for c in checkpoints(n_evals) if c > WARMUP]
    for pb, stats in summary.items():
        peers = [p for p in PEERS if p in stats and stats[p]["ok"]]
        if method not in stats or not stats[method]["ok"] or not peers:
            lines.append(f"{pb}: not checked (needs {method} and the Optuna samplers)")
            passed = False
            continue
        behind = [
            f"{p} at {c} ({fmt_num(stats[p]['at'][c]['median'])} > "
            f"{fmt_num(stats[method]['at'][c]['median'])})"
            for c in after
            for p in peers
            if stats[method]["at"][c]["median"] < stats[p]["at"][c]["median"]
        ]
        passed = passed and not behind
        lines.append(f"{pb}: " + ("met" if not behind else "NOT MET, behind " + "; ".join(behind)))
    return passed, lines


def warning_lines(runs: list[dict]) -> list[str]:
    per: Counter[tuple[str, str]] = Counter()
    for r in runs:
        for w in r.get("warnings", []):
            per[(r["method"], w.rsplit(" (x", 1)[0])] += 1
    return [f"- {m}: {msg} (in {n} runs)" for (m, msg), n in sorted(per.items())]


def plot(runs: list[dict], problems: list[str], methods: list[str], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(3, len(problems))
    nrows = math.ceil(len(problems) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    for ax, pb in zip(axes.flat, problems, strict=False):
        max_hv = meta[pb]["max_hv"]
        for m in methods:
            curves = [
                r["hypervolume"]
                for r in runs
                if r["problem"] == pb and r["method"] == m and not r["error"] and r["hypervolume"]
            ]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            arr = np.array([c[:n] for c in curves])
            if max_hv is not None:  # log10 HV difference: lower is better
                arr = np.log10(np.maximum(max_hv - arr, max_hv * 1e-9))
            x = np.arange(1, n + 1)
            q25, med, q75 = np.percentile(arr, [25, 50, 75], axis=0)
            ax.plot(x, med, color=COLORS.get(m), label=m, lw=1.8)
            ax.fill_between(x, q25, q75, color=COLORS.get(m), alpha=0.15, lw=0)
        ax.axvline(WARMUP, color="k", lw=0.6, ls=":")
        info = meta[pb]
        ax.set_title(f"{pb} ({info['dim']}d, {info['num_objectives']} objectives)")
        ax.set_xlabel("evaluations")
        ax.set_ylabel("log10 HV difference" if max_hv is not None else "hypervolume")
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(problems) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), frameon=False)
    fig.suptitle("Multi-objective problems: median over seeds, band = quartiles (lower is better)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


# The page ------------------------------------------------------------------------------------
def _hv_cell(s: dict[str, float], max_hv: float | None) -> str:
    if max_hv:
        return f"{100 * s['median'] / max_hv:.1f}%"
    return fmt_num(s["median"])


def summary_table(summary: dict, meta: dict, n_evals: int, methods: list[str]) -> list[str]:
    """Problems as rows, methods as columns: median hypervolume at the checkpoints after the
    warm-up, as a share of the problem's maximum; the best median in bold."""
    shown = [c for c in checkpoints(n_evals) if c > WARMUP]
    lines = [
        "| problem | evals | " + " | ".join(methods) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in methods) + " |",
    ]
    for pb, stats in summary.items():
        max_hv = meta[pb]["max_hv"]
        for c in shown:
            vals = {m: stats[m]["at"][c]["median"] for m in methods if stats[m]["ok"]}
            top = max(vals.values()) if vals else float("nan")
            cells = []
            for m in methods:
                if m not in vals:
                    cells.append("n/a")
                    continue
                cell = _hv_cell(stats[m]["at"][c], max_hv)
                cells.append(f"**{cell}**" if vals[m] >= top else cell)
            lines.append(f"| {pb} | {c} | " + " | ".join(cells) + " |")
    return lines


def detail_tables(summary: dict, meta: dict, n_evals: int, methods: list[str]) -> list[str]:
    lines: list[str] = []
    for pb, stats in summary.items():
        info = meta[pb]
        mhv = info["max_hv"]
        ref = ", ".join(f"{v:g}" for v in info["ref_point"])
        lines += [
            f"### {pb} ({info['dim']}d, {info['num_objectives']} objectives, reference point "
            f"({ref}), max HV {fmt_num(mhv) if mhv else 'not given'})",
            "",
            "Median hypervolume [q25, q75]"
            + (", then the median's log10 HV difference" if mhv else "")
            + ", per checkpoint.",
            "",
            "| method | "
            + " | ".join(str(c) for c in checkpoints(n_evals))
            + " | s/ask | runs ok |",
            "| --- | " + " | ".join("---:" for _ in checkpoints(n_evals)) + " | ---: | ---: |",
        ]
        for m in methods:
            s = stats[m]
            cells = []
            for c in checkpoints(n_evals):
                a = s["at"][c]
                cell = f"{fmt_num(a['median'])} [{fmt_num(a['q25'])}, {fmt_num(a['q75'])}]"
                if mhv:
                    cell += f"; {a['log_diff']:.2f}"
                cells.append(cell)
            lines.append(
                f"| {m} | "
                + " | ".join(cells)
                + f" | {fmt_num(s['ask_s'])} | {s['ok']}/{s['runs']} |"
            )
        lines.append("")
    return lines


def what_it_means(summary: dict, n_evals: int, passed: bool) -> list[str]:
    after = [c for c in checkpoints(n_evals) if c > WARMUP]
    leads = []
    for pb, stats in summary.items():
        ok = {m: s for m, s in stats.items() if s["ok"]}
        if not ok:
            continue
        best = max(ok, key=lambda m: ok[m]["at"][n_evals]["median"])
        leads.append(f"{best} on {pb}")
    return [
        "What it means: each cell is the median hypervolume of the Pareto front found after that "
        "many evaluations, as a share of the problem's largest possible hypervolume (higher is "
        "better; bold: the highest median of the row). "
        f"The highest final median is {', '.join(leads)}. "
        f"The must-show (metatune's default `mo-gp` at or above both Optuna samplers' median at "
        f"every checkpoint after the {WARMUP}-evaluation warm-up, i.e. at "
        f"{', '.join(map(str, after))}, on every problem) is "
        f"**{'met' if passed else 'not met'}**"
        + (" (the lines below say where; the notes say why)." if not passed else "."),
    ]


def write_markdown(
    data: dict, summary: dict, path: Path, png_name: str, rendered_by: str | None = None
) -> None:
    cfg = data["config"]
    meta = data["problems"]
    methods = cfg["methods"]
    n_evals = cfg["evals"]
    passed, check_lines = check(summary, n_evals)
    lines = [
        "# Multi-objective optimization: metatune vs Optuna",
        "",
        *summary_table(summary, meta, n_evals, methods),
        "",
        *what_it_means(summary, n_evals, passed),
        "",
        "```",
        *check_lines,
        "```",
        "",
        f"![log10 hypervolume difference per evaluation]({png_name})",
        "",
        "## Per problem",
        "",
        *detail_tables(summary, meta, n_evals, methods),
        "HV difference = the problem's maximum hypervolume (BoTorch's `max_hv`) minus the "
        "hypervolume found; its log10 is the usual convergence measure (lower is better). "
        f"s/ask = seconds per ask, median over the last {LAST_ASKS} asks of a run, then over "
        "seeds (for Optuna `study.ask()` plus the `suggest_float` calls, since it samples "
        "lazily).",
        "",
    ]
    notes = data.get("notes")
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    warn = warning_lines(data["runs"])
    if warn:
        lines += ["## Warnings raised during the runs", "", *warn, ""]
    failures = [r for r in data["runs"] if r["error"]]
    if failures:
        lines += ["## Failed runs", ""]
        for r in failures:
            last = r["error"].strip().splitlines()[-1]
            lines.append(f"- {r['problem']}/{r['method']}/seed {r['seed']}: {last}")
        lines.append("")
    first = cfg.get("first_seed", 0)
    setup = (
        f"Setup: {cfg['seeds']} seeds ({first}..{first + cfg['seeds'] - 1}) x {n_evals} evaluations per "
        "(problem, method), noise-free (`evaluate_true`), every objective minimized in the "
        "problem's own convention, the same Float space x0..x{d-1} on the problem's bounds for "
        "every method, ask/tell in both libraries. Hypervolume: "
        "`botorch.utils.multi_objective.hypervolume.Hypervolume` with the problem's `ref_point`, "
        "in BoTorch's maximization convention (objective values and reference point negated), "
        "over the non-dominated points found so far. Methods: `mo-gp`, `nsga2` and `random` are "
        '`metatune.Study(space, directions=["minimize", ...], optimizer=name, seed=seed)` with '
        "default options (mo-gp: a GP per objective and qLogEHVI; nsga2: 20 per generation); "
        "`optuna-nsga2` and `optuna-tpe` are Optuna's `NSGAIISampler(seed=seed)` (50 per "
        "generation) and `TPESampler(seed=seed)` with default settings. Every run is "
        "single-threaded (torch, OpenMP, MKL: 1 thread). Runs are cached one file each and "
        "resumed where a run stopped; a cached run longer than the budget is cut to its first "
        "evaluations (no method is told the budget, so that is the run it would have been)."
    )
    here = repo_relative(path.parent)
    cached = data.get("cached_runs", 0)
    about = (
        f"{data['date']}, {data['wall_seconds'] / 60:.1f} min with {cfg['workers']} worker "
        f"process{'es' if cfg['workers'] > 1 else ''}; the runs' own wall-clock times add up to {data.get('run_seconds', 0.0) / 60:.0f} min"
    )
    if cached:
        about += (
            f"; {cached} of {len(data['runs'])} runs were read from the cache, written by "
            "earlier invocations of this command on subsets of the problems and methods"
        )
    commands = [(data["command"], here, about)]
    if rendered_by:
        commands.append((rendered_by, here, "rendered this page again from the run's JSON"))
    machine = (
        f"{'Machine of the run' if rendered_by else 'Machine'}: {format_machine(data['machine'])}"
    )
    facts = [machine]
    if data.get("notes"):
        facts.append("The notes were written for this run and read from a `--notes` file.")
    lines += how_it_was_run(commands, facts, [setup])
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
    p.add_argument("--problems", help=f"comma-separated subset of {', '.join(PROBLEMS)}")
    p.add_argument(
        "--problem-set",
        choices=sorted(PROBLEM_SETS),
        default="page",
        help="the problems when --problems is not given (default: page)",
    )
    p.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds, 0..N-1 (default 10)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1 (default 0)")
    p.add_argument("--evals", type=int, default=80, help="evaluations per run (default 80)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--mo-gp-options",
        metavar="JSON",
        help="optimizer_options for mo-gp (a dev variant; cached under its own name)",
    )
    p.add_argument(
        "--cache",
        default=str(ROOT / "metatune-runs" / PAGE),
        help="folder of cached runs, one JSON file each ('' for none)",
    )
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"), help="output folder")
    p.add_argument("--notes", help="a Markdown file whose text goes in the page's Notes section")
    p.add_argument(
        "--from-json", metavar="PATH", help="skip running: rebuild the page from a saved JSON"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    notes = Path(args.notes).read_text() if args.notes else None

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        if notes is not None:
            data["notes"] = notes
        problems = list(data["config"]["problems"])
        methods = list(data["config"]["methods"])
    else:
        problems = (
            _pick(args.problems, PROBLEMS, "problem")
            if args.problems
            else list(PROBLEM_SETS[args.problem_set])
        )
        methods = _pick(args.methods, METHODS, "method")
        if args.seeds < 1 or args.evals < 1 or args.workers < 1 or args.first_seed < 0:
            raise SystemExit("--seeds, --evals and --workers must be positive, --first-seed >= 0")
        options = {}
        if args.mo_gp_options:
            try:
                options["mo-gp"] = json.loads(args.mo_gp_options)
            except ValueError as exc:
                raise SystemExit(f"--mo-gp-options is not JSON: {exc}") from None
        meta = {pb: problem_info(pb) for pb in problems}
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        jobs = [(pb, m, s) for pb in problems for m in methods for s in seeds]
        jobs.sort(key=lambda j: (-_COST[j[1]], -meta[j[0]]["num_objectives"], -meta[j[0]]["dim"]))
        print(
            f"{len(jobs)} runs: {len(problems)} problems x {len(methods)} methods x "
            f"{args.seeds} seeds, {args.evals} evaluations each, {args.workers} workers",
            flush=True,
        )
        t0 = time.perf_counter()
        cache = Path(args.cache) if args.cache else None
        runs = run_all(jobs, args.evals, args.workers, cache, options)
        wall = time.perf_counter() - t0
        order = {
            job: i
            for i, job in enumerate(
                sorted(jobs, key=lambda j: (problems.index(j[0]), methods.index(j[1]), j[2]))
            )
        }
        runs.sort(key=lambda r: order[(r["problem"], r["method"], r["seed"])])
        data = {
            "command": command_line(out),
            "date": now_utc(),
            "machine": machine_info(),
            "wall_seconds": wall,
            "run_seconds": float(sum(r["wall_seconds"] or 0.0 for r in runs)),
            "cached_runs": sum("cache_version" in r for r in runs),
            "config": {
                "problems": problems,
                "methods": methods,
                "seeds": args.seeds,
                "first_seed": args.first_seed,
                "evals": args.evals,
                "workers": args.workers,
                "mo_gp_options": options.get("mo-gp", {}),
            },
            "problems": meta,
            "notes": notes,
            "runs": runs,
        }
        (out / f"{PAGE}.json").write_text(json.dumps(data))

    summary = summarize(data["runs"], problems, methods, data["problems"], data["config"]["evals"])
    plot(data["runs"], problems, methods, data["problems"], out / f"{PAGE}.png")
    write_markdown(
        data,
        summary,
        out / f"{PAGE}.md",
        f"{PAGE}.png",
        rendered_by=command_line(out) if args.from_json else None,
    )
    passed, lines = check(summary, data["config"]["evals"])
    print("\n".join(summary_table(summary, data["problems"], data["config"]["evals"], methods)))
    print("\n".join(lines))
    print(f"must-show {'met' if passed else 'NOT met'}; wrote {out}/{PAGE}.{{json,md,png}}")
    n_failed = sum(bool(r["error"]) for r in data["runs"])
    if n_failed:
        print(f"{n_failed} runs FAILED; see {PAGE}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
