"""Per-trial cost of a long study: metatune against Optuna, random search, same trial count.

Each run optimizes a cheap 4-dimensional function with random search for --trials trials (ask,
evaluate, tell), on in-memory storage and on a SQLite file, and records the wall time of every
trial. The question is whether a trial costs the same at trial 10,000 as at trial 500: the
table gives the median ms per trial over the first 500 trials and over the last 500, their
ratio, and the spread over seeds. Writes docs/benchmarks/scale.{json,md,png}.

    python benchmarks/scale.py                         # 10,000 trials, 3 seeds
    python benchmarks/scale.py --trials 2000 --seeds 1 --out /tmp/scale
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
)

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 500  # trials at the start and at the end that are compared
METHODS = ("metatune", "optuna")
STORAGES = ("memory", "sqlite")


def _objective(x: Sequence[float]) -> float:
    return float(sum((v - 0.3) ** 2 for v in x))


def _run_metatune(storage: str, seed: int, trials: int, folder: Path) -> list[float]:
    import metatune as mt

    url = None if storage == "memory" else f"sqlite:///{folder / f'mt-{seed}.db'}"
    space = {f"x{i}": mt.Float(0.0, 1.0) for i in range(4)}
    study = mt.Study(space, optimizer="random", storage=url, seed=seed, name=f"scale-{seed}")
    times: list[float] = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = study.ask()
        study.tell(trial, _objective([trial.params[f"x{i}"] for i in range(4)]))
        times.append(time.perf_counter() - start)
    return times


def _run_optuna(storage: str, seed: int, trials: int, folder: Path) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = None if storage == "memory" else f"sqlite:///{folder / f'optuna-{seed}.db'}"
    study = optuna.create_study(
        storage=url, sampler=optuna.samplers.RandomSampler(seed=seed), study_name=f"s{seed}"
    )
    times: list[float] = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = study.ask()
        x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(4)]
        study.tell(trial, _objective(x))
        times.append(time.perf_counter() - start)
    return times


RUNNERS: dict[str, Callable[[str, int, int, Path], list[float]]] = {
    "metatune": _run_metatune,
    "optuna": _run_optuna,
}


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for storage in STORAGES:
        for method in METHODS:
            mine = [r for r in runs if r["method"] == method and r["storage"] == storage]
            if not mine:
                continue
            first = [1e3 * float(np.median(r["seconds"][:WINDOW])) for r in mine]
            last = [1e3 * float(np.median(r["seconds"][-WINDOW:])) for r in mine]
            ratio = [b / a for a, b in zip(first, last, strict=True)]
            rows.append(
                {
                    "storage": storage,
                    "method": method,
                    "first_ms": float(np.median(first)),
                    "last_ms": float(np.median(last)),
                    "ratio": float(np.median(ratio)),
                    "ratio_range": [float(min(ratio)), float(max(ratio))],
                    "seeds": len(mine),
                    "total_s": float(np.median([sum(r["seconds"]) for r in mine])),
                }
            )
    return rows


def write_markdown(data: dict, rows: list[dict], path: Path) -> None:
    trials = data["config"]["trials"]
    lines = [
        "# Per-trial cost of a long study",
        "",
        f"Random search, {trials:,} trials, ask + evaluate + tell, one process; median over "
        "the seeds in the table (range of the ratio in brackets).",
        "",
        f"| storage | library | seeds | ms/trial, trials 1-{WINDOW} | ms/trial, last {WINDOW} | "
        "last / first | total s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lo, hi = r["ratio_range"]
        lines.append(
            f"| {r['storage']} | {r['method']} | {r['seeds']} | {r['first_ms']:.2f} | "
            f"{r['last_ms']:.2f} | "
            f"{r['ratio']:.2f} [{lo:.2f}, {hi:.2f}] | {r['total_s']:.0f} |"
        )
    ours = {r["storage"]: r["ratio"] for r in rows if r["method"] == "metatune"}
    verdict = ", ".join(f"{k} {v:.2f}x" for k, v in ours.items())
    lines += [
        "",
        f"What it means: a metatune trial at trial {trials:,} costs {verdict} what it cost in "
        f"the first {WINDOW} (the target is at most 2x). A study re-reads only the trials from "
        "its first unfinished one on, so storage reads do not grow with the history; what still "
        "grows is handing the optimizer the list of finished trials (a copy of references, "
        "microseconds at 10,000) and the noise of a shared 2-core machine. Per trial, metatune "
        "is slower than Optuna in memory (it draws each point of a scrambled Sobol sequence, "
        "whose set-up dominates) and faster on SQLite (a few short SQLAlchemy Core "
        "transactions per trial).",
        "",
        "![ms per trial](scale.png)",
        "",
        *how_it_was_run(
            [(data["command"], "docs/benchmarks", data["date"])],
            [
                f"Machine: {format_machine(data['machine'])}",
                "Each trial's time includes the objective (a sum of four squares). SQLite runs "
                "use a new file in a temporary folder per run.",
            ],
        ),
    ]
    path.write_text("\n".join(lines) + "\n")


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(STORAGES), figsize=(11, 4), sharey=False)
    colors = {"metatune": "tab:blue", "optuna": "tab:orange"}
    for ax, storage in zip(np.atleast_1d(axes), STORAGES, strict=True):
        for method in METHODS:
            for i, r in enumerate(
                x for x in runs if x["method"] == method and x["storage"] == storage
            ):
                ms = 1e3 * np.asarray(r["seconds"])
                k = max(1, len(ms) // 100)
                smooth = [float(np.median(ms[j : j + k])) for j in range(0, len(ms), k)]
                ax.plot(
                    np.arange(len(smooth)) * k,
                    smooth,
                    color=colors[method],
                    alpha=0.8,
                    label=method if i == 0 else None,
                )
        ax.set_title(f"{storage} storage")
        ax.set_xlabel("trial")
        ax.set_ylabel("ms per trial (median of each 1% of the run)")
        ax.set_yscale("log")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--storages", default=",".join(STORAGES))
    p.add_argument(
        "--seeds-for",
        default="",
        metavar="METHOD:STORAGE=N,...",
        help="fewer seeds for slow combinations, e.g. optuna:sqlite=1",
    )
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = p.parse_args(argv)
    seeds_for: dict[tuple[str, str], int] = {}
    for item in filter(None, args.seeds_for.split(",")):
        combo, _, n = item.partition("=")
        method, _, storage = combo.partition(":")
        if method not in METHODS or storage not in STORAGES or not n.isdigit() or int(n) < 1:
            p.error(f"--seeds-for: bad entry {item!r}; use METHOD:STORAGE=N, e.g. optuna:sqlite=1")
        seeds_for[(method, storage)] = int(n)
    methods = [m for m in args.methods.split(",") if m]
    storages = [s for s in args.storages.split(",") if s]
    bad = [m for m in methods if m not in METHODS] + [s for s in storages if s not in STORAGES]
    if bad or args.trials < 2 * WINDOW or args.seeds < 1:
        p.error(
            f"bad --methods/--storages {bad} (allowed {METHODS}, {STORAGES}), or --trials below "
            f"{2 * WINDOW}, or --seeds below 1"
        )
    logging.getLogger("metatune").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for storage in storages:
            for method in methods:
                for seed in range(seeds_for.get((method, storage), args.seeds)):
                    t0 = time.perf_counter()
                    seconds = RUNNERS[method](storage, seed, args.trials, Path(tmp))
                    runs.append(
                        {"method": method, "storage": storage, "seed": seed, "seconds": seconds}
                    )
                    print(
                        f"{storage:6} {method:8} seed {seed}: {time.perf_counter() - t0:6.1f}s, "
                        f"{1e3 * np.median(seconds[:WINDOW]):.2f} -> "
                        f"{1e3 * np.median(seconds[-WINDOW:]):.2f} ms/trial",
                        flush=True,
                    )
    data = {
        "command": command_line(out),
        "date": now_utc(),
        "machine": machine_info(),
        "config": {"trials": args.trials, "seeds": args.seeds, "seeds_for": args.seeds_for},
        "runs": runs,
    }
    (out / "scale.json").write_text(json.dumps(data))
    rows = summarize(runs)
    plot(runs, out / "scale.png")
    write_markdown(data, rows, out / "scale.md")
    print((out / "scale.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
