"""A Bayesmark-style suite: metatune's default optimizer vs random search, Optuna's TPE and
GPSampler, HEBO and SMAC3 on scikit-learn tuning problems; same budget, several seeds, one run.

Each (problem, method, seed) job minimizes one problem of
`metatune.benchmarks.bayesmark_tasks` (the 5-fold CV loss of a scikit-learn model on a bundled
dataset) for a fixed number of sequential evaluations, through the ask/tell interface of its
library. The objective is always evaluated here, in metatune's environment. HEBO (NumPy < 1.25)
and SMAC3 run in virtualenvs of their own (`--make-venvs`), each driven over JSON lines by
benchmarks/bayesmark_peer_runner.py. Every finished run is appended to a JSON-lines file at
once (`--results`), and a run already there is not run again, so an interrupted run resumes and
a partial one can be reported (`--report-only`). Writes docs/benchmarks/bayesmark.{json,md,png}.

    python benchmarks/bayesmark.py --make-venvs --seeds 0 --evals 1   # once: the peers' venvs
    python benchmarks/bayesmark.py --seeds 2 --evals 15               # a smoke run
    python benchmarks/bayesmark.py                                    # 10 seeds, 40 evaluations
    python benchmarks/bayesmark.py --report-only --check              # page from what finished
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

# Before anything imports torch, here and in every spawned worker (which re-imports this
# module), so that every method runs single-threaded.
single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
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

from metatune.benchmarks.bayesmark_score import (  # noqa: E402
    best_so_far,
    clipped_gap,
    leaderboard_score,
    normalized_score,
)
from metatune.benchmarks.bayesmark_tasks import (  # noqa: E402
    DEFAULT_PROBLEMS,
    MODELS,
    make_problem,
    problem_names,
)
from metatune.benchmarks.common import (  # noqa: E402
    captured_warnings,
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
from metatune.space import Categorical, Float, Int, Space  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "bayesmark_peer_runner.py"
RUNS_DIR = ROOT / "metatune-runs"
DEFAULT_RESULTS = RUNS_DIR / "bayesmark" / "runs.jsonl"
METHODS = ("metatune", "random", "optuna-tpe", "optuna-gp", "hebo", "smac")
OURS = "metatune"
PEERS = ("optuna-tpe", "optuna-gp", "hebo", "smac")
VENV_METHODS = ("hebo", "smac")  # run in a virtualenv of their own
# How --make-venvs builds each peer's environment (pip arguments, one install each; the torch
# pin comes from constraints.txt, scikit-learn is ours so every environment agrees).
INSTALLS: dict[str, tuple[tuple[str, ...], ...]] = {
    "hebo": (
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
    ),
    "smac": (("-c", "constraints.txt", "smac==2.4.1", "scikit-learn==1.9.1"),),
}
VERSIONS = {
    "hebo": ("HEBO", "numpy", "torch", "pymoo"),
    "smac": ("smac", "ConfigSpace", "numpy", "scikit-learn"),
}
COLORS = {
    "metatune": "tab:blue",
    "random": "tab:gray",
    "optuna-tpe": "tab:orange",
    "optuna-gp": "tab:green",
    "hebo": "tab:red",
    "smac": "tab:purple",
}
_COST = {"hebo": 8, "smac": 3, "metatune": 2, "optuna-gp": 2, "optuna-tpe": 1, "random": 1}


def venv_python(method: str) -> Path:
    return RUNS_DIR / f"venv-{method}" / "bin" / "python"


# Spaces in each library's terms ---------------------------------------------------------------
def space_spec(space: Space) -> list[dict[str, Any]]:
    """The space as the peer runner's parameter list (float / int / cat)."""
    out: list[dict[str, Any]] = []
    for name, p in space.items():
        if isinstance(p, Categorical):
            out.append({"name": name, "type": "cat", "choices": list(p.choices)})
        elif isinstance(p, (Float, Int)):
            kind = "int" if isinstance(p, Int) else "float"
            out.append({"name": name, "type": kind, "low": p.low, "high": p.high, "log": p.log})
        else:
            raise TypeError(f"parameter {name!r}: no peer mapping for {type(p).__name__}")
    return out


def coerce(space: Space, x: dict[str, Any]) -> dict[str, Any]:
    """A peer's suggestion as a point of `space`: ints rounded, numbers clipped to the bounds,
    a categorical value checked, so a peer's float-typed integer evaluates like ours."""
    out: dict[str, Any] = {}
    for name, p in space.items():
        v = x[name]
        if isinstance(p, Categorical):
            if v not in p.choices:
                raise ValueError(f"{name}={v!r} is not among {list(p.choices)}")
            out[name] = v
        elif isinstance(p, Int):
            out[name] = int(min(max(round(float(v)), p.low), p.high))
        else:
            out[name] = float(min(max(float(v), p.low), p.high))
    return out


def _optuna_params(trial: Any, space: Space) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in space.items():
        if isinstance(p, Categorical):
            out[name] = trial.suggest_categorical(name, list(p.choices))
        elif isinstance(p, Int):
            out[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return out


# One job (runs in a worker) ------------------------------------------------------------------
def _init_worker() -> None:
    single_thread_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import optuna
        import optuna._gp.gp  # noqa: F401  (GPSampler imports it lazily)
        import sklearn.ensemble  # noqa: F401

        import metatune
        import metatune.optimizers.gp  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()


class PeerProcess:
    """A peer in its own interpreter: one runner process per run, JSON lines both ways."""

    def __init__(self, python: Path, setup: dict[str, Any]) -> None:
        if not python.exists():
            raise FileNotFoundError(
                f"{setup['library']}'s interpreter {repo_relative(python)} does not exist: run "
                "this script with --make-venvs"
            )
        self.proc = subprocess.Popen(
            [str(python), str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        self.call(setup)

    def call(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:  # skip what the peer's libraries print on standard output
            if line.startswith("@@"):
                reply = json.loads(line[2:])
                if "error" in reply:
                    raise RuntimeError(f"peer runner: {reply['error']}")
                return reply
        err = self.proc.stderr.read() if self.proc.stderr is not None else ""
        raise RuntimeError(f"peer runner exited: {err.strip()[-2000:]}")

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


def _evaluate(problem: Any, params: dict[str, Any], rec: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    y = float(problem(params))
    rec["eval_seconds"].append(time.perf_counter() - t0)
    rec["values"].append(y)
    return y


def _run(problem: Any, method: str, seed: int, n_evals: int, rec: dict[str, Any]) -> None:
    space = problem.space
    if method in ("metatune", "random"):
        import metatune

        # "metatune" is what a user gets without naming an optimizer.
        kwargs = {"optimizer": "random"} if method == "random" else {}
        study = metatune.Study(space, seed=seed, **kwargs)
        rec["optimizer"] = study.optimizer.name
        for _ in range(n_evals):
            t0 = time.perf_counter()
            trial = study.ask()
            rec["ask_seconds"].append(time.perf_counter() - t0)
            study.tell(trial, _evaluate(problem, dict(trial.params), rec))
    elif method in ("optuna-tpe", "optuna-gp"):
        import optuna

        sampler = (
            optuna.samplers.TPESampler(seed=seed)
            if method == "optuna-tpe"
            else optuna.samplers.GPSampler(seed=seed)
        )
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for _ in range(n_evals):
            t0 = time.perf_counter()
            trial = study.ask()  # Optuna samples lazily: the suggest calls are part of the ask
            params = _optuna_params(trial, space)
            rec["ask_seconds"].append(time.perf_counter() - t0)
            study.tell(trial, _evaluate(problem, params, rec))
    elif method in VENV_METHODS:
        setup = {"library": method, "params": space_spec(space), "seed": seed, "n_trials": n_evals}
        peer = PeerProcess(venv_python(method), setup)
        try:
            for _ in range(n_evals):
                t0 = time.perf_counter()
                x = peer.call({"cmd": "suggest"})["x"]
                rec["ask_seconds"].append(time.perf_counter() - t0)
                peer.call({"cmd": "observe", "y": _evaluate(problem, coerce(space, x), rec)})
        finally:
            peer.close()
    else:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def run_job(problem: str, method: str, seed: int, n_evals: int) -> dict[str, Any]:
    """One (problem, method, seed) run; never raises: a failure is recorded in `error`."""
    rec: dict[str, Any] = {
        "problem": problem,
        "method": method,
        "seed": seed,
        "n_evals": n_evals,
        "values": [],
        "ask_seconds": [],
        "eval_seconds": [],
        "wall_seconds": None,
        "error": None,
        "warnings": [],
    }
    t0 = time.perf_counter()
    try:
        with captured_warnings() as captured:
            _run(make_problem(problem), method, seed, n_evals, rec)
    except Exception as exc:
        rec["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    rec["wall_seconds"] = time.perf_counter() - t0
    rec["warnings"] = [f"{msg} (x{n})" for msg, n in Counter(captured).items()]
    return rec


# Results file (resume, merge) ----------------------------------------------------------------
def load_lines(path: Path) -> list[dict]:
    """The records of a JSON-lines file (a torn last line from an interrupted write skipped)."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def load_runs(path: Path) -> list[dict]:
    """Every run recorded in the results file; a later record of the same run replaces an
    earlier one."""
    runs = {(r["problem"], r["method"], r["seed"], r["n_evals"]): r for r in load_lines(path)}
    return list(runs.values())


def commands_file(results: Path) -> Path:
    """Where the commands that ran the runs of `results` are logged (for the page)."""
    return results.with_name(results.stem + ".commands.jsonl")


def append_run(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(rec) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def run_all(jobs: list[tuple[str, str, int, int]], workers: int, results: Path) -> int:
    """Run `jobs` in a pool of `workers` spawned processes, appending each finished run to
    `results` at once; returns the number that failed."""
    start, n_done, n_failed = time.perf_counter(), 0, 0

    def done(rec: dict) -> None:
        nonlocal n_done, n_failed
        n_done += 1
        append_run(results, rec)
        tag = f"{rec['problem']}/{rec['method']}/seed {rec['seed']}"
        ok = not rec["error"] and rec["values"]
        status = f"best {fmt_num(min(rec['values']))}" if ok else "FAILED"
        print(
            f"[{n_done}/{len(jobs)} {time.perf_counter() - start:7.1f}s] {tag}: {status}, "
            f"{rec['wall_seconds']:.1f}s",
            flush=True,
        )
        if rec["error"]:
            n_failed += 1
            print(f"{tag} failed:\n{rec['error']}", file=sys.stderr, flush=True)

    if workers <= 1:
        _init_worker()
        for job in jobs:
            done(run_job(*job))
        return n_failed
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: env set before torch
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        pending: set[Future] = {pool.submit(run_job, *job) for job in jobs}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                done(fut.result())
    return n_failed


# Scores ----------------------------------------------------------------------------------------
def curves_of(runs: list[dict], problem: str, methods: Sequence[str]) -> dict[str, np.ndarray]:
    """Method -> (runs, evaluations) best-so-far losses of its successful runs, by seed."""
    out = {}
    for m in methods:
        ok = sorted(
            (r for r in runs if r["problem"] == problem and r["method"] == m and not r["error"]),
            key=lambda r: r["seed"],
        )
        if ok:
            out[m] = np.stack([best_so_far(r["values"]) for r in ok])
    return out


def seeds_of(runs: list[dict], problem: str, method: str) -> list[int]:
    return sorted(
        r["seed"]
        for r in runs
        if r["problem"] == problem and r["method"] == method and not r["error"]
    )


SPARSE = ("hebo",)  # may run on fewer seeds and problems than the others (time)


def complete_seeds(
    runs: list[dict], problems: Sequence[str], methods: Sequence[str]
) -> tuple[list[dict], int]:
    """The runs of the seeds on which every method not in `SPARSE` finished every problem (so
    the scores compare the same runs), and how many finished runs were left out."""
    dense = [m for m in methods if m not in SPARSE]
    done = {(r["problem"], r["method"], r["seed"]) for r in runs if not r["error"]}
    seeds = {r["seed"] for r in runs}
    keep = {s for s in seeds if all((p, m, s) in done for p in problems for m in dense)}
    kept = [r for r in runs if r["seed"] in keep]
    return kept, sum(not r["error"] for r in runs) - sum(not r["error"] for r in kept)


def _ratio_score(mine: float, ref: float) -> float:
    """Bayesmark's 100 x (1 - gap / random's gap); nan where random's gap is 0."""
    return 100.0 * (1.0 - mine / ref) if ref > 0 else float("nan")


def _spread(values: Sequence[float]) -> dict[str, float]:
    if not len(values):
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan")}
    q25, med, q75 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75)}


def summarize(runs: list[dict], problems: list[str], methods: list[str]) -> dict[str, Any]:
    """Scores per problem and method (final, and the mean curves), and per method over the
    suite: Bayesmark's leaderboard score (clipped gaps) and the mean normalized score."""
    per_problem: dict[str, dict[str, Any]] = {}
    gaps = []
    for p in problems:
        curves = curves_of(runs, p, methods)
        if "random" not in curves:
            continue
        scores = normalized_score(curves)
        gap = clipped_gap(curves)
        gaps.append(gap)
        rand_gap = float(np.mean(gap["random"][:, -1]))
        per_problem[p] = {
            m: {
                "mean": float(np.mean(scores[m][:, -1])),
                "per_seed": dict(zip(seeds_of(runs, p, m), scores[m][:, -1].tolist(), strict=True)),
                "gap_per_seed": dict(
                    zip(seeds_of(runs, p, m), gap[m][:, -1].tolist(), strict=True)
                ),
                "random_gap": rand_gap,
                "bayesmark": _ratio_score(float(np.mean(gap[m][:, -1])), rand_gap),
                "curve": np.mean(scores[m], axis=0).tolist(),
                "gap_curve": np.mean(gap[m], axis=0).tolist(),
                "median_loss": float(np.median(curves[m][:, -1])),
                "runs": int(curves[m].shape[0]),
            }
            for m in curves
        }
    suite: dict[str, dict[str, Any]] = {}
    for m in methods:
        have = [p for p in per_problem if m in per_problem[p]]
        if not have:
            continue
        mine = [per_problem[p][m] for p in have]
        # a seed's suite scores, over the seeds this method ran on every one of its problems
        seeds = sorted(set.intersection(*(set(v["per_seed"]) for v in mine)))
        ref = float(np.mean([v["random_gap"] for v in mine]))
        by_seed = [float(np.mean([v["per_seed"][s] for v in mine])) for s in seeds]
        lb_seed = [
            _ratio_score(float(np.mean([v["gap_per_seed"][s] for v in mine])), ref) for s in seeds
        ]
        best_lb = {
            p: max(
                v["bayesmark"] for v in per_problem[p].values() if v["bayesmark"] == v["bayesmark"]
            )
            for p in have
        }
        suite[m] = {
            "leaderboard": leaderboard_score([g for g in gaps if m in g], m),
            "leaderboard_seeds": _spread(lb_seed),
            "mean": float(np.mean([v["mean"] for v in mine])),
            "mean_seeds": _spread(by_seed),
            "problems": len(have),
            "seeds": len(seeds),
            "runs": sum(v["runs"] for v in mine),
            "ask_s": float(
                np.median(
                    [
                        np.sum(r["ask_seconds"])
                        for r in runs
                        if r["method"] == m and r["problem"] in have and not r["error"]
                    ]
                )
            ),
            "wins": sum(per_problem[p][m]["bayesmark"] >= best_lb[p] for p in have),
            "curve": np.mean([v["curve"] for v in mine], axis=0).tolist(),
            "gap_curve": np.mean([v["gap_curve"] for v in mine], axis=0).tolist(),
        }
    return {"problems": per_problem, "suite": suite}


SCORES = (("leaderboard", "Bayesmark score"), ("mean", "mean normalized score"))


def paired_scores(summary: dict[str, Any], a: str, b: str, key: str) -> tuple[float, float, int]:
    """Method a's and b's suite score on the (problem, seed) runs both have; `key` is
    "leaderboard" (Bayesmark's, against random's mean gap on those problems) or "mean"."""
    pa, pb, ref, n = [], [], [], 0
    for stats in summary["problems"].values():
        if a not in stats or b not in stats:
            continue
        common = sorted(set(stats[a]["per_seed"]) & set(stats[b]["per_seed"]))
        if not common:
            continue
        field = "gap_per_seed" if key == "leaderboard" else "per_seed"
        pa.append(np.mean([stats[a][field][s] for s in common]))
        pb.append(np.mean([stats[b][field][s] for s in common]))
        ref.append(stats[a]["random_gap"])
        n += len(common)
    if not n:
        return float("nan"), float("nan"), 0
    if key == "leaderboard":
        r = float(np.mean(ref))
        return _ratio_score(float(np.mean(pa)), r), _ratio_score(float(np.mean(pb)), r), n
    return float(np.mean(pa)), float(np.mean(pb)), n


def check_lines(summary: dict[str, Any], methods: list[str], n_problems: int) -> list[str]:
    """The must-show, on both scores: metatune's default optimizer above every peer."""
    suite = summary["suite"]
    if OURS not in suite:
        return [f"FAIL: {OURS} has no runs"]
    lines = []
    verdicts = []
    for key, label in SCORES:
        ours, ok = suite[OURS][key], True
        lines.append(f"{label}:")
        for peer in (m for m in PEERS if m in methods):
            if peer not in suite:
                lines.append(f"  {peer}: no successful runs (not compared)")
                ok = False
                continue
            st = suite[peer]
            if st["problems"] < n_problems or st["seeds"] < suite[OURS]["seeds"]:
                # a sparse peer: both methods on the runs the peer has (same problems, seeds)
                mine, theirs, cells = paired_scores(summary, OURS, peer, key)
                where = f" (on the {cells} problem x seed runs {peer} has)"
            else:
                mine, theirs, where = ours, st[key], ""
            above = mine > theirs
            ok = ok and above
            lines.append(
                f"  {OURS} {mine:.2f} vs {peer} {theirs:.2f}{where}: "
                f"{'above' if above else 'NOT above'}"
            )
        verdicts.append(f"{'PASS' if ok else 'FAIL'}: {OURS}'s {label} above every peer's")
    return lines + verdicts


# Page --------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return "" if x != x else f"{x:.1f}"


def _bold_if(x: float, best: float) -> str:
    return f"**{x:.1f}**" if x == best else _fmt(x)


def _spread_text(sp: dict[str, float]) -> str:
    return f"{_fmt(sp['median'])} [{_fmt(sp['q25'])}, {_fmt(sp['q75'])}]"


def summary_table(summary: dict[str, Any], methods: list[str]) -> list[str]:
    suite = summary["suite"]
    n_problems = len(summary["problems"])
    # bold among the methods run on every problem and seed (a sparse one's score is not comparable)
    full = (n_problems, suite[OURS]["seeds"] if OURS in suite else 0)
    others = [
        m for m in suite if m != "random" and (suite[m]["problems"], suite[m]["seeds"]) >= full
    ]
    best_lb = max((suite[m]["leaderboard"] for m in others), default=float("nan"))
    best_mean = max((suite[m]["mean"] for m in others), default=float("nan"))
    lines = [
        "| method | Bayesmark score | per seed: median [q25, q75] | mean normalized score | "
        "per seed: median [q25, q75] | problems best | problems x seeds | ask s per run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in methods:
        if m not in suite:
            lines.append(f"| {m} | did not run | | | | | 0 | |")
            continue
        st = suite[m]
        lines.append(
            f"| {m} | {_bold_if(st['leaderboard'], best_lb)} | "
            f"{_spread_text(st['leaderboard_seeds'])} | {_bold_if(st['mean'], best_mean)} | "
            f"{_spread_text(st['mean_seeds'])} | {st['wins']}/{st['problems']} | "
            f"{st['problems']}{'' if st['problems'] == n_problems else ' (of ' + str(n_problems) + ')'}"
            f" x {st['seeds']} | {st['ask_s']:.3g} |"
        )
    return lines


def problem_tables(summary: dict[str, Any], methods: list[str]) -> list[str]:
    shown = [m for m in methods if any(m in v for v in summary["problems"].values())]
    head = "| problem | " + " | ".join(shown) + " |"
    rule = "| --- |" + " ---: |" * len(shown)
    tables: dict[str, list[str]] = {"bayesmark": [head, rule], "mean": [head, rule]}
    loss_rows = [head, rule]
    for p, stats in summary["problems"].items():
        most = max(v["runs"] for v in stats.values())
        for key, rows in tables.items():
            vals = [v[key] for v in stats.values() if v[key] == v[key]]
            top = max(vals) if vals else float("nan")
            cells = []
            for m in shown:
                v = stats.get(m)
                runs = "" if v is None or v["runs"] == most else f" ({v['runs']})"
                cells.append("" if v is None else _bold_if(v[key], top) + runs)
            rows.append(f"| {p} | " + " | ".join(cells) + " |")
        losses = []
        for m in shown:
            v = stats.get(m)
            runs = "" if v is None or v["runs"] == most else f" ({v['runs']})"
            losses.append("" if v is None else fmt_num(v["median_loss"]) + runs)
        loss_rows.append(f"| {p} | " + " | ".join(losses) + " |")
    return [
        "Bayesmark score per problem, 100 x (1 - mean clipped gap / random's mean clipped gap) "
        "at the last evaluation (bold: highest in the row; a number in brackets where a method "
        "has fewer runs):",
        "",
        *tables["bayesmark"],
        "",
        "Mean normalized score over seeds at the last evaluation, 100 x (1 - (best - opt) / "
        "(random's median best - opt)):",
        "",
        *tables["mean"],
        "",
        "Median best loss over seeds at the last evaluation (nll in nats, mse and mae of the "
        "standardized target):",
        "",
        *loss_rows,
    ]


def problem_info(runs: list[dict], problems: list[str]) -> list[str]:
    lines = [
        "| problem | model | dataset | metric | parameters | median s per 5-fold CV |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for p in problems:
        model, dataset, metric = p.split("-")
        space = MODELS[model].space
        params = ", ".join(
            f"{n} ({type(v).__name__}{', log' if getattr(v, 'log', False) else ''})"
            for n, v in space.items()
        )
        secs = [s for r in runs if r["problem"] == p for s in r["eval_seconds"]]
        med = f"{np.median(secs):.3f}" if secs else ""
        lines.append(f"| {p} | {model} | {dataset} | {metric} | {params} | {med} |")
    return lines


def plot(summary: dict[str, Any], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in methods:
        s = summary["suite"].get(m)
        if s is None:
            continue
        x = np.arange(1, len(s["curve"]) + 1)
        n = len(summary["problems"])
        sparse = s["problems"] < n or (
            OURS in summary["suite"] and s["seeds"] < summary["suite"][OURS]["seeds"]
        )
        label = f"{m} ({s['runs']} run(s) on {s['problems']} of {n} problems)" if sparse else m
        style = "--" if sparse else "-"
        ax1.plot(x, s["curve"], style, color=COLORS.get(m), label=label)
        ax2.plot(x, np.maximum(s["gap_curve"], 1e-4), style, color=COLORS.get(m), label=label)
    ax1.set(
        xlabel="evaluations",
        ylabel="normalized score (random's median = 0)",
        title="mean over problems and seeds",
        ylim=(-100, 105),
    )
    ax2.set(
        xlabel="evaluations",
        ylabel="(best - opt) / (clip - opt), clipped at 1",
        title="Bayesmark's clipped gap, mean (lower is better)",
        yscale="log",
    )
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def warning_lines(runs: list[dict]) -> list[str]:
    seen: dict[str, set[str]] = {}
    for r in runs:
        for w in r["warnings"]:
            seen.setdefault(w.rsplit(" (x", 1)[0], set()).add(r["method"])
    return [f"- {', '.join(sorted(ms))}: `{w}`" for w, ms in sorted(seen.items())][:15]


def write_markdown(data: dict, summary: dict, path: Path, notes: str | None) -> None:
    cfg = data["config"]
    methods, problems, runs = cfg["methods"], cfg["problems"], data["runs"]
    suite = summary["suite"]
    ranked = sorted(suite, key=lambda m: -suite[m]["leaderboard"])
    ranking = ", ".join(f"{m} {suite[m]['leaderboard']:.1f}" for m in ranked)
    check = check_lines(summary, methods, len(summary["problems"]))
    lines = [
        "# Bayesmark-style suite: metatune vs Optuna, HEBO and SMAC3",
        "",
        f"{len(summary['problems'])} scikit-learn tuning problems (model x bundled dataset x "
        f"metric, 5-fold CV loss), {cfg['n_evals']} sequential evaluations per run, seeds "
        f"{_seed_text(cfg)}. Higher is better in both scores; 0 = random search; bold: highest "
        "of the non-random methods run on every problem and seed. Bayesmark score: Bayesmark's own aggregate (gaps to the "
        "best loss found, clipped at random search's first evaluation, relative to random "
        "search's). Mean normalized score: per problem 100 x (1 - (best - opt) / "
        "(random's median best - opt)), mean over seeds and problems. Both are defined below.",
        "",
        *summary_table(summary, methods),
        "",
        f"What it means: ranked by Bayesmark score, {ranking}. {_verdict(check)} The per-seed "
        "columns are the spread: each seed's score over the problems (the same seed's run of "
        "each problem), median and quartiles over seeds. Problems x seeds: how many runs a "
        "method's scores average. Ask s per run: the median over runs of the seconds a "
        "method's asks took (HEBO's and SMAC's in their own process, with the JSON round "
        "trip), on a shared and loaded machine, so only their order of magnitude means "
        "anything.",
        "",
        "## Must-show check",
        "",
        "```",
        *check,
        "```",
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "## Per problem",
        "",
        *problem_tables(summary, methods),
        "",
        "![normalized score over evaluations](bayesmark.png)",
        "",
        "Left: the mean normalized score, with random search's median at each evaluation count "
        "as the reference, mean over problems and seeds (random's median is 0 by construction; "
        "its mean is not). Right: Bayesmark's clipped gap, mean over problems and seeds (lower "
        "is better). A dashed line averages fewer runs (HEBO's), so it is not comparable with "
        "the others.",
        "",
        "## How the score is computed",
        "",
        "For each problem p: S(t) is a run's best-so-far loss after t evaluations; opt_p the "
        "lowest loss any method found in any run on p.",
        "",
        "- Bayesmark score (Bayesmark's own recipe): clip_p = the median over random search's "
        "runs of their first loss; a run's gap g(t) = min((S(t) - opt_p) / (clip_p - opt_p), 1), "
        "in [0, 1]. A method's score = 100 x (1 - G / G_random), G being the mean over its "
        "problems of the mean over its runs of g at the last evaluation, G_random the same for "
        "random search on the same problems. The per-problem table uses one problem's G; the "
        "per-seed spread uses one seed's runs for G (G_random over all of random's runs).",
        "- Mean normalized score: R_p(t) = the median over random search's runs of S(t); a "
        "run's score = 100 x (1 - (S(t) - opt_p) / (R_p(t) - opt_p)) (where R_p(t) = opt_p: 100 "
        "for a run at opt_p, 0 for any other); a method's score on p is the mean over its runs "
        "at the last evaluation, its suite score the mean over problems. It is unbounded below: "
        "on a problem where random search's median already comes within a hair of opt_p, a "
        "loss worse in the third or fourth digit scores -100 or less, and such a problem can "
        "outweigh the others. Bayesmark's clipped gap is scaled by the first evaluation instead "
        "and stays in [0, 1], which is why it is the first column.",
        "",
        "opt_p comes from this run's methods, so adding a method or a seed can move every score.",
        "",
        "## Problems",
        "",
        *problem_info(runs, problems),
        "",
        "How they were chosen, in two steps. First, cost: Bayesmark's models (decision tree, "
        "random forest with 10 trees, kNN, SVM, logistic regression, lasso, MLP, AdaBoost) on "
        "the datasets bundled with scikit-learn, timed at 8 random points each on the shared "
        "machine (19 candidates); kept were those whose 5-fold CV took well under ~0.3 s on "
        "one thread. Out for cost: AdaBoost (0.8-1.9 s per CV), kNN and SVM on digits "
        "(1.3-2.6 s), random forest on digits (0.44 s), and the MLP on wine (0.16 s in the "
        "timing pass, but 60-140 s per 40-evaluation run once the machine was fully loaded); "
        "out because it failed: logistic regression on digits (liblinear has no multinomial "
        "loss in scikit-learn 1.9). Second, whether the problem separates methods at this "
        "budget: on seed 0 of six cheap problems, random search's best after 40 evaluations "
        "was within 0.25% of the best loss any method found on four of them (see the notes "
        "above for their numbers), so every method scores about the same there and the "
        "suite's CPU time went to problems where random search is measurably behind. The "
        "criterion looks at random search only, not at which method wins. This leaves "
        "decision trees and a random forest; Bayesmark's SVM, kNN, linear and lasso problems "
        "are registered (`--problems`) but not in the default set. Spaces follow Bayesmark's "
        "(log scale for C, gamma, tol, alpha, max_iter; its logit-scaled fractions are "
        "linear here); kNN's `weights`, the logistic regression's `solver` and the lasso's "
        "`selection` are categoricals. Features (and the regression target) are standardized "
        "once and the folds fixed (shuffled with seed 0), so every problem is a deterministic "
        "function; a fit that fails scores a fixed bad loss.",
        "",
    ]
    warn = warning_lines(runs)
    if warn:
        lines += ["## Warnings raised during the runs", "", *warn, ""]
    failures = [r for r in runs if r["error"]]
    if failures:
        lines += ["## Failed runs", ""]
        for r in failures:
            last = r["error"].strip().splitlines()[-1]
            lines.append(f"- {r['problem']}/{r['method']}/seed {r['seed']}: {last}")
        lines.append("")
    setup = (
        f"Setup: every method gets the same {cfg['n_evals']} sequential evaluations per run "
        "(one suggestion at a time), the same typed space (floats with their log scale, ints, "
        "categoricals), ask/tell in every library, and the same objective evaluated in "
        "metatune's environment. `metatune` is `metatune.Study(space, seed=seed)` with no "
        "optimizer named (the default optimizer, "
        f"{data.get('default_optimizer') or 'gp'!r}); `random` is "
        '`metatune.Study(space, optimizer="random", seed=seed)`; `optuna-tpe` and `optuna-gp` '
        "are Optuna's `TPESampler(seed=seed)` and `GPSampler(seed=seed)`, default settings; "
        "`hebo` is HEBO 0.3.6's `HEBO(space, scramble_seed=seed)` (numpy and torch seeded "
        "too), default settings, log floats as its `pow` and log ints as `pow_int` types; "
        "`smac` is SMAC3 2.4.1's `HyperparameterOptimizationFacade` (random forest, log EI, "
        "Sobol initial design) with `deterministic=True`, `n_trials` = the budget and its "
        "intensifier at `max_config_calls=1`, through `ask()` / `tell()`. Suggestions from "
        "HEBO and SMAC are rounded (ints) and clipped to the bounds before evaluation. Every "
        "process runs single-threaded."
    )
    envs = (
        "HEBO 0.3.6 needs NumPy < 1.25 and SMAC3 2.4.1 wants its own pins, so each runs in a "
        "virtualenv of its own, made by `python benchmarks/bayesmark.py --make-venvs` "
        "(`python3 -m venv metatune-runs/venv-hebo`, `pip install -c constraints.txt "
        "torch==2.13.0`, `pip install -c constraints.txt 'numpy<1.25' 'pandas<2.3' "
        "'scipy<1.14' scikit-learn==1.9.1 HEBO==0.3.6`; `python3 -m venv "
        "metatune-runs/venv-smac`, `pip install -c constraints.txt smac==2.4.1 "
        "scikit-learn==1.9.1`; SMAC 2.4's random forest is scikit-learn's, so pyrfr is not "
        "needed). Each of their runs starts `benchmarks/bayesmark_peer_runner.py` in that "
        "interpreter and drives it over JSON lines (suggest / observe)."
    )
    here = repo_relative(path.parent)
    commands = [(c["command"], here, c["about"]) for c in data["commands"]]
    facts = [f"Machine: {format_machine(data['machine'])}"]
    facts += [f"{m}'s environment: {v}" for m, v in data.get("peer_versions", {}).items() if v]
    lines += how_it_was_run(commands, facts, [setup, envs])
    path.write_text("\n".join(lines) + "\n")


def _ranges(values: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    parts: list[str] = []
    for v in sorted(values):
        if parts and v == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{v}"
        else:
            parts.append(str(v))
    return ", ".join(parts)


def _seed_text(cfg: dict) -> str:
    seeds = cfg["seeds"]
    text = f"{_ranges(seeds)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"
    full = len(seeds) * len(cfg["problems"])
    short = [f"{m} {n}" for m, n in cfg["run_counts"].items() if n < full]
    if short:
        text += f"; runs per method where fewer than {full}: {', '.join(short)}"
    if cfg.get("left_out_runs"):
        text += (
            f"; {cfg['left_out_runs']} finished runs of seeds that not every dense method "
            "finished are left out"
        )
    return text


def _verdict(check: list[str]) -> str:
    held = [line.split(": ", 1)[1] for line in check if line.startswith("PASS")]
    failed = [line.split(": ", 1)[1] for line in check if line.startswith("FAIL")]
    if not failed:
        return "The must-show holds on both scores: " + "; ".join(held) + "."
    return "The must-show does NOT hold on every score: not met: " + "; ".join(failed) + "."


def peer_versions(methods: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for m in (m for m in VENV_METHODS if m in methods):
        python = venv_python(m)
        if not python.exists():
            out[m] = None
            continue
        code = (
            "import importlib.metadata as md;"
            f"print(', '.join(f'{{p}} {{md.version(p)}}' for p in {VERSIONS[m]!r}))"
        )
        res = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
        out[m] = res.stdout.strip().splitlines()[-1] if res.returncode == 0 and res.stdout else None
    return out


def make_venvs(methods: Sequence[str]) -> None:
    """Create each venv peer's virtualenv (the commands the page names), if missing."""
    for m in (m for m in VENV_METHODS if m in methods):
        venv = venv_python(m).parent.parent
        if venv_python(m).exists():
            continue
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        for args in INSTALLS[m]:
            subprocess.run([str(venv / "bin" / "pip"), "install", *args], check=True, cwd=ROOT)


# CLI -----------------------------------------------------------------------------------------
def _pick(given: str | None, known: Sequence[str], default: Sequence[str], what: str) -> list[str]:
    if not given:
        return list(default)
    out = []
    for name in (s.strip() for s in given.split(",") if s.strip()):
        if name not in known:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--problems", help=f"comma-separated subset of {', '.join(problem_names())}")
    p.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)}")
    p.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    p.add_argument(
        "--method-seeds",
        help="per-method seed caps, e.g. hebo=3 (its runs take far longer); default: all",
    )
    p.add_argument(
        "--seed-order",
        help="run only these seeds (of 0..N-1), in this order, e.g. 9,8,7 (a second process "
        "can then work from the other end; the page takes every seed in the results file)",
    )
    p.add_argument("--evals", type=int, default=40, help="evaluations per run (default 40)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--results", default=str(DEFAULT_RESULTS), help="JSON-lines file of runs")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"), help="output folder")
    p.add_argument("--make-venvs", action="store_true", help="create HEBO's and SMAC's venvs")
    p.add_argument("--report-only", action="store_true", help="run nothing: page from --results")
    p.add_argument("--check", action="store_true", help="print the must-show check")
    p.add_argument("--notes", help="a Markdown file placed on the page after the check")
    args = p.parse_args(argv)
    notes = read_notes(p, args.notes)
    problems = _pick(args.problems, problem_names(), DEFAULT_PROBLEMS, "problem")
    methods = _pick(args.methods, METHODS, METHODS, "method")
    if args.seeds < 1 or args.evals < 1 or args.workers < 1:
        raise SystemExit("--seeds, --evals and --workers must be positive")
    caps: dict[str, int] = {}
    for item in (s for s in (args.method_seeds or "").split(",") if s.strip()):
        name, _, n = item.partition("=")
        if name.strip() not in methods or not n.strip().isdigit():
            raise SystemExit(f"--method-seeds: expected method=N for a chosen method, got {item!r}")
        caps[name.strip()] = min(int(n), args.seeds)
    results, out = Path(args.results), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.make_venvs:
        make_venvs(methods)
    seed_counts = {m: caps.get(m, args.seeds) for m in methods}
    n_failed = 0
    if not args.report_only:
        have = {
            (r["problem"], r["method"], r["seed"])
            for r in load_runs(results)
            if r["n_evals"] == args.evals and not r["error"]
        }
        # seed-major, so a partial run has every method on its first seeds
        order = list(range(args.seeds))
        if args.seed_order:
            try:
                order = [int(x) for x in args.seed_order.split(",") if x.strip()]
            except ValueError:
                raise SystemExit(
                    f"--seed-order: expected seeds like 9,8,7, got {args.seed_order!r}"
                ) from None
            if not all(0 <= x < args.seeds for x in order):
                raise SystemExit(f"--seed-order: seeds must be in 0..{args.seeds - 1}")
        jobs = [
            (pr, m, s, args.evals)
            for s in order
            for pr in problems
            for m in sorted(methods, key=lambda m: -_COST[m])
            if s < seed_counts[m] and (pr, m, s) not in have
        ]
        print(f"{len(jobs)} runs to do ({len(have)} already in {results})", flush=True)
        # logged at the start, so the page names a run that was stopped before the end
        about = f"started {now_utc()}: {len(jobs)} runs to do, {args.workers} worker process(es)"
        append_run(commands_file(results), {"command": command_line(out), "about": about})
        n_failed = run_all(jobs, args.workers, results)
    runs = [
        r
        for r in load_runs(results)
        if r["n_evals"] == args.evals
        and r["problem"] in problems
        and r["method"] in methods
        and r["seed"] < seed_counts[r["method"]]
    ]
    runs, left_out = complete_seeds(runs, problems, methods)
    if not runs:
        raise SystemExit(f"no complete seed with {args.evals} evaluations in {results}")
    seeds = sorted({r["seed"] for r in runs if r["method"] == OURS})
    counts = {m: sum(r["method"] == m for r in runs) for m in methods}
    commands = [c for c in load_lines(commands_file(results)) if c.get("command")]
    if args.report_only:
        commands.append(
            {"command": command_line(out), "about": f"{now_utc()}, the page from {len(runs)} runs"}
        )
    data = {
        "commands": commands,
        "machine": machine_info(),
        "peer_versions": peer_versions(methods),
        "default_optimizer": next(
            (r.get("optimizer") for r in runs if r["method"] == OURS and r.get("optimizer")), None
        ),
        "config": {
            "problems": problems,
            "methods": methods,
            "seeds": seeds,
            "run_counts": counts,
            "left_out_runs": left_out,
            "n_evals": args.evals,
            "workers": args.workers,
        },
        "runs": sorted(runs, key=lambda r: (r["problem"], r["method"], r["seed"])),
    }
    summary = summarize(runs, problems, methods)
    data["summary"] = {
        m: {k: v for k, v in s.items() if "curve" not in k} for m, s in summary["suite"].items()
    }
    (out / "bayesmark.json").write_text(json.dumps(data))
    plot(summary, methods, out / "bayesmark.png")
    write_markdown(data, summary, out / "bayesmark.md", notes)
    print("\n".join(summary_table(summary, methods)))
    check = check_lines(summary, methods, len(summary["problems"]))
    if args.check:
        print("\nmust-show check:\n" + "\n".join(check))
    if n_failed:
        print(f"{n_failed} runs FAILED; see bayesmark.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
