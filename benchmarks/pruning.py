"""Pruning and multi-fidelity on learning curves: metatune's pruners and mf-gp vs Optuna's.

Every trial trains a small MLP on scikit-learn's digits epoch by epoch (SGD with momentum; the
learning rate, width, weight decay and batch size are searched) and reports the validation
loss after every epoch; a pruner may stop it. Each (method, seed) run asks trials until it has
spent its epoch budget; no pruning gets `--trials` full trials, a pruning method a third of
that. The score of a run at a budget is the best validation loss of the trials completed
within it. Writes docs/benchmarks/pruning.{json,md,png}.

A configuration's learning curve is a deterministic function of it (its seed is its hash) and
is cached on disk as it is trained (`--cache`), so a rerun trains nothing it trained before;
sampling is never replaced by a table: every method trains whatever it asks for.

    python benchmarks/pruning.py                         # 10 seeds, every method
    python benchmarks/pruning.py --seeds 2 --trials 12 --methods none-gp asha-mf-gp
    python benchmarks/pruning.py --from-json docs/benchmarks/pruning.json
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()  # before torch is imported, here and in every spawned worker

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
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
    read_notes,
    repo_relative,
    single_thread_torch,
)

ROOT = Path(__file__).resolve().parent.parent
DIVERGED = 10.0  # the loss recorded for a diverged run (chance level is log 10 = 2.30)


@dataclass(frozen=True)
class Method:
    """One row: a library, its sampler or optimizer, its pruner and options, its budget."""

    library: str  # "metatune" or "optuna"
    optimizer: str  # metatune optimizer name, or "tpe"
    pruner: str  # pruner name in its library ("none" for none)
    options: tuple[tuple[str, Any], ...] = ()
    full_budget: bool = False  # True: --trials full trials; else a third of that
    label: str = ""
    optimizer_options: tuple[tuple[str, Any], ...] = ()


def _methods(max_epochs: int) -> dict[str, Method]:
    band = (("min_resource", 1), ("max_resource", max_epochs), ("reduction_factor", 3))
    sha = (("min_resource", 1), ("reduction_factor", 3))
    return {
        "none-gp": Method("metatune", "gp", "none", (), True, "metatune gp, no pruning"),
        "median-gp": Method("metatune", "gp", "median", (), False, "metatune gp + median"),
        "asha-gp": Method("metatune", "gp", "successive-halving", sha, False, "metatune gp + ASHA"),
        "hyperband-gp": Method(
            "metatune", "gp", "hyperband", band, False, "metatune gp + Hyperband"
        ),
        "median-mf-gp": Method("metatune", "mf-gp", "median", (), False, "metatune mf-gp + median"),
        "asha-mf-gp": Method(
            "metatune", "mf-gp", "successive-halving", sha, False, "metatune mf-gp + ASHA"
        ),
        "hyperband-mf-gp": Method(
            "metatune", "mf-gp", "hyperband", band, False, "metatune mf-gp + Hyperband"
        ),
        "asha-mf-gp-joint": Method(
            "metatune",
            "mf-gp",
            "successive-halving",
            sha,
            False,
            "metatune mf-gp (joint model, no random share) + ASHA",
            (("model", "joint"), ("random_fraction", 0.0)),
        ),
        "optuna-none": Method("optuna", "tpe", "none", (), True, "Optuna TPE, no pruning"),
        "optuna-median": Method("optuna", "tpe", "median", (), False, "Optuna TPE + MedianPruner"),
        "optuna-sha": Method(
            "optuna", "tpe", "sha", sha, False, "Optuna TPE + SuccessiveHalvingPruner"
        ),
        "optuna-hyperband": Method(
            "optuna", "tpe", "hyperband", band, False, "Optuna TPE + HyperbandPruner"
        ),
    }


DEFAULT_METHODS = (
    "none-gp",
    "median-gp",
    "asha-gp",
    "hyperband-gp",
    "asha-mf-gp",
    "hyperband-mf-gp",
    "asha-mf-gp-joint",
    "optuna-median",
    "optuna-sha",
    "optuna-hyperband",
)
COLORS = {
    "none-gp": "black",
    "median-gp": "tab:cyan",
    "asha-gp": "tab:blue",
    "hyperband-gp": "tab:purple",
    "median-mf-gp": "tab:olive",
    "asha-mf-gp": "tab:green",
    "hyperband-mf-gp": "tab:red",
    "asha-mf-gp-joint": "yellowgreen",
    "optuna-none": "tab:gray",
    "optuna-median": "tab:pink",
    "optuna-sha": "tab:orange",
    "optuna-hyperband": "tab:brown",
}

# The search space, the same in both libraries.
LR = (1e-3, 1.0)
WIDTH = (16, 512)
WEIGHT_DECAY = (1e-6, 1e-1)
BATCH = (16, 256)


# The learning-curve problem ---------------------------------------------------------------------
class Data:
    """Digits, scaled to [0, 1], split 60/20/20 into train, validation and test (fixed)."""

    def __init__(self) -> None:
        import torch
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
        X_tr, X_rest, y_tr, y_rest = train_test_split(
            X, y, test_size=0.4, random_state=0, stratify=y
        )
        X_va, X_te, y_va, y_te = train_test_split(
            X_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest
        )
        f32 = torch.float32
        self.X_tr, self.y_tr = torch.tensor(X_tr, dtype=f32), torch.tensor(y_tr)
        self.X_va, self.y_va = torch.tensor(X_va, dtype=f32), torch.tensor(y_va)
        self.X_te, self.y_te = torch.tensor(X_te, dtype=f32), torch.tensor(y_te)


def canonical(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "lr": float(params["lr"]),
        "width": int(params["width"]),
        "weight_decay": float(params["weight_decay"]),
        "batch_size": int(params["batch_size"]),
    }


def config_key(params: dict[str, Any]) -> str:
    text = json.dumps(canonical(params), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class CurveCache:
    """Learning curves by configuration, one JSON file each, written atomically."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def load(self, key: str) -> dict[str, list[float]] | None:
        if self.folder is None:
            return None
        try:
            with open(self.folder / f"{key}.json", encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def store(self, key: str, params: dict[str, Any], val: list[float], test: list[float]):
        if self.folder is None:
            return
        old = self.load(key)
        if old is not None and len(old["val"]) >= len(val):
            return
        tmp = self.folder / f".{key}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"params": canonical(params), "val": val, "test": test}, fh)
        os.replace(tmp, self.folder / f"{key}.json")


class Run:
    """One configuration trained epoch by epoch; cached epochs are read, not retrained."""

    def __init__(self, params: dict[str, Any], data: Data, cache: CurveCache) -> None:
        self.params = canonical(params)
        self.key = config_key(self.params)
        self.data = data
        self.cache = cache
        cached = cache.load(self.key) or {"val": [], "test": []}
        self.val: list[float] = list(cached["val"])
        self.test: list[float] = list(cached["test"])
        self.epoch = 0  # epochs reported so far
        self.trained = 0  # epochs the model in memory has been trained
        self.model: Any = None
        self.train_seconds = 0.0

    def _build(self) -> None:
        import torch

        seed = int(self.key[:8], 16)
        torch.manual_seed(seed)
        w = self.params["width"]
        self.model = torch.nn.Sequential(
            torch.nn.Linear(64, w),
            torch.nn.ReLU(),
            torch.nn.Linear(w, w),
            torch.nn.ReLU(),
            torch.nn.Linear(w, 10),
        )
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=self.params["lr"],
            momentum=0.9,
            weight_decay=self.params["weight_decay"],
        )
        self.gen = torch.Generator().manual_seed(seed)
        self.diverged = False

    def _train_one(self) -> tuple[float, float]:
        import torch
        from torch.nn.functional import cross_entropy

        if self.model is None:
            self._build()
        d, bs = self.data, self.params["batch_size"]
        if not self.diverged:
            self.model.train()
            perm = torch.randperm(len(d.X_tr), generator=self.gen)
            for i in range(0, len(perm), bs):
                idx = perm[i : i + bs]
                loss = cross_entropy(self.model(d.X_tr[idx]), d.y_tr[idx])
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
        self.trained += 1
        if self.diverged:
            return DIVERGED, DIVERGED
        self.model.eval()
        with torch.no_grad():
            va = float(cross_entropy(self.model(d.X_va), d.y_va))
            te = float(cross_entropy(self.model(d.X_te), d.y_te))
        if not (math.isfinite(va) and math.isfinite(te)) or va > DIVERGED:
            self.diverged = True
            return DIVERGED, DIVERGED
        return va, te

    def next_epoch(self) -> float:
        """The validation loss after one more epoch (from the cache when it has it)."""
        self.epoch += 1
        if self.epoch > len(self.val):
            t0 = time.process_time()
            while self.trained < self.epoch:  # replays cached epochs only past the cache
                va, te = self._train_one()
                if self.trained > len(self.val):
                    self.val.append(va)
                    self.test.append(te)
            self.train_seconds += time.process_time() - t0
        return self.val[self.epoch - 1]

    def close(self) -> None:
        self.cache.store(self.key, self.params, self.val, self.test)


# One job: a (method, seed) run ------------------------------------------------------------------
def _init_worker() -> None:
    single_thread_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import optuna

        import metatune  # noqa: F401
        import metatune.optimizers.multi_fidelity  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)


class Ledger:
    """The epoch budget of a run and what it bought: completions and epochs."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.trials = 0
        self.pruned = 0
        self.completed: list[tuple[int, float, float]] = []  # (epochs used, val, test)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.budget


def _metatune_run(method: Method, seed: int, max_epochs: int, ledger: Ledger, train) -> None:
    import metatune

    space = metatune.Space(
        {
            "lr": metatune.Float(*LR, log=True),
            "width": metatune.Int(*WIDTH, log=True),
            "weight_decay": metatune.Float(*WEIGHT_DECAY, log=True),
            "batch_size": metatune.Int(*BATCH, log=True),
        }
    )
    study = metatune.Study(
        space,
        optimizer=method.optimizer,
        optimizer_options=dict(method.optimizer_options),
        pruner=method.pruner,
        pruner_options=dict(method.options),
        seed=seed,
    )
    while not ledger.exhausted:
        trial = study.ask()
        run = train(trial.params)
        ledger.trials += 1
        state = "complete"
        for epoch in range(1, max_epochs + 1):
            if ledger.exhausted:
                state = "cut"
                break
            value = run.next_epoch()
            ledger.used += 1
            study.report(trial, value, epoch)
            if epoch < max_epochs and study.should_prune(trial):
                state = "pruned"
                break
        run.close()
        if state == "complete":
            study.tell(trial, value)
            ledger.completed.append((ledger.used, value, run.test[max_epochs - 1]))
        else:
            ledger.pruned += state == "pruned"
            study.tell(trial, state="pruned")


def _optuna_pruner(method: Method) -> Any:
    import optuna

    opts = dict(method.options)
    if method.pruner == "none":
        return optuna.pruners.NopPruner()
    if method.pruner == "median":
        return optuna.pruners.MedianPruner()
    if method.pruner == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(**opts)
    if method.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(**opts)
    raise ValueError(f"unknown Optuna pruner {method.pruner!r}")


def _optuna_run(method: Method, seed: int, max_epochs: int, ledger: Ledger, train) -> None:
    import optuna

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=_optuna_pruner(method),
    )
    while not ledger.exhausted:
        trial = study.ask()
        params = {
            "lr": trial.suggest_float("lr", *LR, log=True),
            "width": trial.suggest_int("width", *WIDTH, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *WEIGHT_DECAY, log=True),
            "batch_size": trial.suggest_int("batch_size", *BATCH, log=True),
        }
        run = train(params)
        ledger.trials += 1
        state = "complete"
        for epoch in range(1, max_epochs + 1):
            if ledger.exhausted:
                state = "cut"
                break
            value = run.next_epoch()
            ledger.used += 1
            trial.report(value, epoch)
            if epoch < max_epochs and trial.should_prune():
                state = "pruned"
                break
        run.close()
        if state == "complete":
            study.tell(trial, value)
            ledger.completed.append((ledger.used, value, run.test[max_epochs - 1]))
        else:
            ledger.pruned += state == "pruned"
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)


_DATA: Data | None = None


def run_job(
    name: str, seed: int, max_epochs: int, budget: int, cache_dir: str | None
) -> dict[str, Any]:
    """One (method, seed) run; never raises: a failure is recorded in `error`."""
    global _DATA
    method = _methods(max_epochs)[name]
    rec: dict[str, Any] = {"method": name, "seed": seed, "budget": budget, "error": None}
    ledger = Ledger(budget)
    cache = CurveCache(Path(cache_dir) if cache_dir else None)
    runs: list[Run] = []
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if _DATA is None:
            _DATA = Data()

        def train(params: dict[str, Any]) -> Run:
            runs.append(Run(params, _DATA, cache))
            return runs[-1]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method.library == "metatune":
                _metatune_run(method, seed, max_epochs, ledger, train)
            else:
                _optuna_run(method, seed, max_epochs, ledger, train)
    except Exception as exc:
        rec["error"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    train_s = sum(r.train_seconds for r in runs)
    rec.update(
        epochs_used=ledger.used,
        trials=ledger.trials,
        pruned=ledger.pruned,
        completed=ledger.completed,
        wall_seconds=time.perf_counter() - t0,
        cpu_seconds=time.process_time() - c0,
        train_cpu_seconds=train_s,
    )
    return rec


def run_all(jobs: list[tuple], workers: int) -> list[dict]:
    progress = make_progress(sys.stderr.isatty())
    results: list[dict] = []
    start = time.perf_counter()
    task = None

    def done(rec: dict) -> None:
        results.append(rec)
        tag = f"{rec['method']}/seed {rec['seed']}"
        best = min((v for _, v, _ in rec["completed"]), default=math.nan)
        status = "FAILED" if rec["error"] else f"best {fmt_num(best)}"
        if progress is not None:
            progress.update(task, advance=1, last=f"{tag}: {status}")
        else:
            print(
                f"[{len(results)}/{len(jobs)} {time.perf_counter() - start:7.1f}s] {tag}: "
                f"{status}, {rec['trials']} trials, {rec['epochs_used']} epochs, "
                f"{rec['cpu_seconds']:.1f} cpu s",
                flush=True,
            )
        if rec["error"]:
            print(f"{tag} failed:\n{rec['error']}", file=sys.stderr, flush=True)

    if progress is not None:
        progress.start()
        task = progress.add_task("pruning", total=len(jobs), last="")
    try:
        if workers <= 1:
            _init_worker()
            for job in jobs:
                done(run_job(*job))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
                pending: set[Future] = {pool.submit(run_job, *job) for job in jobs}
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        done(fut.result())
    finally:
        if progress is not None:
            progress.stop()
    return results


# Summaries --------------------------------------------------------------------------------------
def best_at(rec: dict, budget: int, key: int = 1) -> float:
    """The best validation (key 1) or test (key 2, of the best by validation) loss of the
    trials completed within `budget` epochs."""
    done = [c for c in rec["completed"] if c[0] <= budget]
    if not done:
        return math.nan
    best = min(done, key=lambda c: (c[1], c[0]))
    return float(best[key])


def _stats(xs: list[float]) -> dict[str, float]:
    a = np.asarray([x for x in xs if not math.isnan(x)], dtype=float)
    if not len(a):
        return {"median": math.nan, "q25": math.nan, "q75": math.nan, "n": 0}
    q25, med, q75 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "n": int(len(a))}


def summarize(runs: list[dict], methods: list[str], budgets: dict[str, int]) -> dict:
    out = {}
    short = budgets["pruned"]
    for m in methods:
        ok = [r for r in runs if r["method"] == m and not r["error"]]
        out[m] = {
            "at_third": _stats([best_at(r, short) for r in ok]),
            "at_full": _stats([best_at(r, budgets["full"]) for r in ok]),
            "test_at_own": _stats([best_at(r, r["budget"], 2) for r in ok]),
            "epochs": _stats([float(r["epochs_used"]) for r in ok]),
            "trials": _stats([float(r["trials"]) for r in ok]),
            "completed": _stats([float(len(r["completed"])) for r in ok]),
            "cpu_s": _stats([float(r["cpu_seconds"]) for r in ok]),
            "budget": max((r["budget"] for r in ok), default=0),
            "ok": len(ok),
            "runs": sum(r["method"] == m for r in runs),
        }
    return out


def checks(summary: dict, labels: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    """The two must-shows, as page lines and as data."""
    ours = [m for m in summary if not m.startswith("optuna") and m != "none-gp"]
    peers = [m for m in summary if m.startswith("optuna") and m != "optuna-none"]
    if "none-gp" not in summary or not ours or not peers:
        return ["The checks need none-gp, one of our pruning rows and one of Optuna's."], {}
    base = summary["none-gp"]["at_full"]
    best_ours = min(ours, key=lambda m: summary[m]["at_third"]["median"])
    best_peer = min(peers, key=lambda m: summary[m]["at_third"]["median"])
    o, p = summary[best_ours], summary[best_peer]
    within = o["at_third"]["median"] <= base["q75"]
    third = o["epochs"]["median"] <= summary["none-gp"]["epochs"]["median"] / 3 + 1e-9
    beats = o["at_third"]["median"] <= p["at_third"]["median"]
    lines = [
        f"- Within the spread of no pruning with at most a third of the epochs: "
        f"**{'met' if within and third else 'not met'}**. {labels[best_ours]} reaches a median "
        f"best validation loss of {fmt_num(o['at_third']['median'])} with "
        f"{o['epochs']['median']:.0f} epochs; no pruning reaches "
        f"{fmt_num(base['median'])} [{fmt_num(base['q25'])}, {fmt_num(base['q75'])}] with "
        f"{summary['none-gp']['epochs']['median']:.0f}.",
        f"- At least as good as Optuna's best pruner at the same epoch budget: "
        f"**{'met' if beats else 'not met'}**. {labels[best_ours]} "
        f"{fmt_num(o['at_third']['median'])} against {labels[best_peer]} "
        f"{fmt_num(p['at_third']['median'])} (medians at {o['budget']} epochs).",
    ]
    data = {
        "best_ours": best_ours,
        "best_peer": best_peer,
        "within_spread": bool(within),
        "at_most_a_third": bool(third),
        "beats_best_peer": bool(beats),
    }
    return lines, data


def plot(runs: list[dict], methods: list[str], budgets: dict[str, int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 4.8))
    for m in methods:
        ok = [r for r in runs if r["method"] == m and not r["error"]]
        if not ok:
            continue
        top = max(r["budget"] for r in ok)
        xs = np.unique(np.linspace(27, top, 60).astype(int))
        arr = np.array([[best_at(r, int(x)) for x in xs] for r in ok])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q25, med, q75 = np.nanpercentile(arr, [25, 50, 75], axis=0)
        ax.plot(xs, med, color=COLORS.get(m), label=m, lw=1.8)
        ax.fill_between(xs, q25, q75, color=COLORS.get(m), alpha=0.12, lw=0)
    ax.axvline(budgets["pruned"], color="gray", ls="--", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("epochs used")
    ax.set_ylabel("best validation loss of completed trials")
    ax.set_title("MLP on digits: median over seeds, band = quartiles")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_markdown(data: dict, summary: dict, path: Path, png: str) -> None:
    cfg = data["config"]
    labels = {m: _methods(cfg["max_epochs"])[m].label for m in summary}
    full, short = cfg["budgets"]["full"], cfg["budgets"]["pruned"]
    check_lines, _ = checks(summary, labels)
    lines = [
        "# Pruning and multi-fidelity on learning curves: metatune vs Optuna",
        "",
        f"An MLP trained on digits epoch by epoch (up to {cfg['max_epochs']} epochs a trial); "
        f"{cfg['seeds']} seeds. No pruning spends {full} epochs ({cfg['trials']} full trials); "
        f"every pruning method spends {short}, a third. Best validation loss: the lowest final "
        "validation loss among the trials completed within the budget (lower is better).",
        "",
        f"| method | best val loss at {short} epochs: median | [q25, q75] "
        f"| at {full} epochs | epochs used | trials | completed | test loss of the best |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m, s in summary.items():
        a, f = s["at_third"], s["at_full"]
        at_full = fmt_num(f["median"]) if s["budget"] >= full else "-"
        lines.append(
            f"| {labels[m]} | {fmt_num(a['median'])} | [{fmt_num(a['q25'])}, {fmt_num(a['q75'])}] "
            f"| {at_full} | {s['epochs']['median']:.0f} | {s['trials']['median']:.0f} "
            f"| {s['completed']['median']:.0f} | {fmt_num(s['test_at_own']['median'])} |"
        )
    lines += [
        "",
        f"The first column is every method at {short} epochs (for no pruning: the first "
        f"{short // cfg['max_epochs']} of its trials). Epochs used, trials, completed trials and "
        "the test loss are medians over the seeds of each method's own run (its full budget); "
        "the test loss is that of the trial with the best validation loss.",
        "",
        "## What it means",
        "",
        *check_lines,
        "",
        *data.get("notes", []),
        "",
        f"![best validation loss against epochs used]({png})",
        "",
    ]
    failed = [r for r in data["runs"] if r["error"]]
    if failed:
        lines += [
            f"{len(failed)} run(s) failed: "
            + ", ".join(f"{r['method']}/seed {r['seed']}" for r in failed),
            "",
        ]
    m_all = _methods(cfg["max_epochs"])
    intro = [
        "The problem: scikit-learn's digits (1,797 8x8 images, 10 classes), scaled to [0, 1] "
        "and split 60/20/20 into train, validation and test once (stratified, fixed seed). A "
        "trial trains a 64-w-w-10 ReLU MLP with SGD (momentum 0.9) on the training set and "
        "reports the cross-entropy on the validation set after every epoch; the trial's value "
        f"is its validation loss after epoch {cfg['max_epochs']}. Searched: learning rate "
        f"[{LR[0]:g}, {LR[1]:g}] (log), width [{WIDTH[0]}, {WIDTH[1]}] (log, integer), weight "
        f"decay [{WEIGHT_DECAY[0]:g}, {WEIGHT_DECAY[1]:g}] (log), batch size "
        f"[{BATCH[0]}, {BATCH[1]}] (log, integer). A diverged run scores {DIVERGED:g}. A "
        "configuration's initial weights and batch order come from its hash, so its learning "
        "curve is a function of it, and curves are cached on disk as they are trained; every "
        "method still trains (or reads) whatever configurations it asks for.",
        "Budgets: a run asks trials one at a time until it has used its epochs; a trial still "
        "running when the budget runs out is stopped and told as pruned. metatune runs through "
        "`Study(..., optimizer=..., pruner=..., pruner_options=...)` with `study.report` and "
        "`study.should_prune` (ask/tell); Optuna through `study.ask` / `trial.report` / "
        "`trial.should_prune` with its default sampler, TPE.",
        "Pruner settings (the same on both sides where both have the option): "
        + "; ".join(
            f"{m_all[m].label}: "
            + (", ".join(f"{k}={v}" for k, v in m_all[m].options) or "defaults")
            for m in summary
            if m_all[m].pruner != "none"
        )
        + ". metatune's median pruner and Optuna's MedianPruner both use their defaults "
        "(5 startup trials, no warm-up steps).",
    ]
    facts = [f"Machine: {format_machine(data['machine'])}"]
    facts.append(
        f"Total CPU time of the runs: {data['total_cpu_seconds'] / 60:.1f} min "
        f"({data['workers']} worker processes, one torch thread each); wall time "
        f"{data['wall_seconds'] / 60:.1f} min; of the CPU time, training epochs that were not "
        f"in the curve cache: {sum(r['train_cpu_seconds'] for r in data['runs']) / 60:.1f} min."
    )
    commands = [(data["command"], repo_relative(path.parent), f"{data['date']}")]
    if data.get("rendered_by"):
        commands.append((data["rendered_by"], repo_relative(path.parent), "page re-rendered"))
    lines += how_it_was_run(
        commands,
        facts,
        intro,
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=36, help="full trials of no pruning")
    ap.add_argument("--max-epochs", type=int, default=27)
    ap.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    ap.add_argument(
        "--cache",
        default=str(ROOT / "metatune-runs" / "pruning-curves"),
        help="folder of cached learning curves ('' for none)",
    )
    ap.add_argument("--from-json", help="re-render the page from a JSON this script wrote")
    ap.add_argument("--notes", help="a Markdown file added to the page's 'What it means'")
    args = ap.parse_args(argv)
    notes = read_notes(ap, args.notes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    known = _methods(args.max_epochs)
    bad = [m for m in args.methods if m not in known]
    if bad:
        ap.error(f"--methods: unknown {bad}; known: {sorted(known)}")
    if args.seeds < 1 or args.trials < 3 or args.max_epochs < 1:
        ap.error("--seeds >= 1, --trials >= 3 and --max-epochs >= 1 are needed")

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
    else:
        full = args.trials * args.max_epochs
        budgets = {"full": full, "pruned": full // 3}
        jobs = [
            (
                m,
                seed,
                args.max_epochs,
                budgets["full" if known[m].full_budget else "pruned"],
                args.cache or None,
            )
            for seed in range(args.seeds)
            for m in args.methods
        ]
        # the long runs first, so the pool is not left with one straggler
        jobs.sort(key=lambda j: (-j[3], j[0] != "hyperband-mf-gp", j[1]))
        t0 = time.perf_counter()
        runs = run_all(jobs, args.workers)
        data = {
            "config": {
                "seeds": args.seeds,
                "trials": args.trials,
                "max_epochs": args.max_epochs,
                "methods": args.methods,
                "budgets": budgets,
            },
            "command": command_line(out),
            "date": now_utc(),
            "machine": machine_info(("torch", "botorch", "optuna", "scikit-learn")),
            "workers": args.workers,
            "wall_seconds": time.perf_counter() - t0,
            "total_cpu_seconds": sum(r["cpu_seconds"] for r in runs),
            "runs": sorted(runs, key=lambda r: (args.methods.index(r["method"]), r["seed"])),
        }
    if notes is not None:
        data["notes"] = notes.strip().splitlines()
    if args.from_json:
        data["rendered_by"] = command_line(out)
    cfg = data["config"]
    summary = summarize(data["runs"], cfg["methods"], cfg["budgets"])
    labels = {m: known[m].label for m in summary}
    _, data["checks"] = checks(summary, labels)
    data["summary"] = summary
    (out / "pruning.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    plot(data["runs"], cfg["methods"], cfg["budgets"], out / "pruning.png")
    write_markdown(data, summary, out / "pruning.md", "pruning.png")
    for line in checks(summary, labels)[0]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
