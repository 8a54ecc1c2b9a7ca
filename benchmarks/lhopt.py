"""A learned control policy vs the best of an AdamW grid, on tasks never used in meta-training.

For every held-out task the baseline is AdamW with the best of 5 learning rates x 4 schedules
(constant, cosine, linear decay, step), the best chosen per task by median best validation
loss over seeds. The policy starts AdamW at the task's default learning rate and adjusts it
(and betas, eps, weight decay, clipping) through `metatune.lhopt.Controller`. Reported per task:
the speedup to reach the baseline's best validation loss (T / first step the policy reaches it;
< 1 when it never does, then the ratio of best losses says by how much), best and last losses,
and a recovery check from a learning rate far too high. The grid's runs are cached in a file.

    python benchmarks/lhopt.py                       # the shipped policy
    python benchmarks/lhopt.py --policy metatune-runs/lhopt/policy.pt
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from metatune.benchmarks.common import how_it_was_run, repo_relative, single_thread_torch

# Every task trains on one thread. The held-out tasks are
# metatune.benchmarks.registry.HELD_OUT_TASKS, never among the meta-training families.
single_thread_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from metatune.benchmarks.registry import DEFAULT_HELD_OUT_TASKS, HELD_OUT_TASKS  # noqa: E402
from metatune.lhopt import Controller, Policy  # noqa: E402
from metatune.lhopt.controller import default_policy_path  # noqa: E402
from metatune.lhopt.tasks import TrainingTask  # noqa: E402
from metatune.lhopt.training import best_loss  # noqa: E402

LRS = (0.1, 0.3, 1.0, 3.0, 10.0)  # x the task's default learning rate
SCHEDULES = ("constant", "cosine", "linear", "step")


# --- runs -----------------------------------------------------------------------------------------
def _schedule(name: str, steps: int) -> Callable[[int], float]:
    if name == "constant":
        return lambda t: 1.0
    if name == "cosine":
        return lambda t: 0.5 * (1 + math.cos(math.pi * t / steps))
    if name == "linear":
        return lambda t: 1 - t / steps
    return lambda t: 0.1 ** (t // max(steps // 3, 1))  # step: /10 at 1/3 and 2/3


def baseline_run(
    make: Callable[[int], TrainingTask], seed: int, steps: int, lr_mult: float, schedule: str
):
    task = make(seed)
    opt = torch.optim.AdamW(task.model.parameters(), lr=task.default_lr * lr_mult)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(schedule, steps))
    return task.run(opt, steps, on_step=lambda *a: sched.step())


def policy_run(
    make: Callable[[int], TrainingTask],
    seed: int,
    steps: int,
    policy: Policy,
    lr_mult: float = 1.0,
):
    task = make(seed)
    opt = torch.optim.AdamW(task.model.parameters(), lr=task.default_lr * lr_mult)
    ctl = Controller(opt, steps, policy=policy, seed=seed)
    return task.run(opt, steps, on_step=lambda t, loss, val: ctl.step(loss, val))


def first_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((t for t, v in curve if math.isfinite(v) and v <= target), None)


def existing_notes(page: str) -> str:
    """The body of a page's "## Notes" section (up to "## How it was run"), or ""."""
    if "\n## Notes\n" not in page:
        return ""
    body = page.split("\n## Notes\n", 1)[1]
    return body.split("\n## How it was run\n", 1)[0].strip()


def _cell(values: list[float]) -> str:
    return f"{np.median(values):.4g} [{min(values):.4g}, {max(values):.4g}]"


def what_it_means(speed: float, worst: float) -> str:
    """The verdict on the two targets, then the numbers it is read from."""
    fast, close = speed >= 1.3, worst <= 1.02
    verdict = (
        "both targets are met"
        if fast and close
        else "neither target is met"
        if not fast and not close
        else "the speedup target is not met"
        if not fast
        else "the best-loss target is not met"
    )
    return (
        f"What it means: {verdict}. Median over tasks of the per-task median speedup: "
        f"{speed:.2f} (target >= 1.3); worst per-task median best-loss ratio policy / grid: "
        f"{worst:.3f} (target <= 1.02)."
    )


def write_markdown(
    results: dict[str, dict],
    initial: dict[str, list[float]],
    path: Path,
    *,
    command: str,
    date: str,
    machine: str,
    policy: str,
    seeds: int,
    steps: int,
    high_lr: float,
    notes: str = "",
) -> None:
    """The page: the comparison and recovery tables, what they mean, the notes (`notes`,
    without their heading), then how it was run. `initial`: each task's validation loss before
    training, per seed."""
    lines = [
        "# Learned control policy vs best-of-grid AdamW (held-out tasks)",
        "",
        "| task | best grid (lr x default, schedule) | speedup median [min, max] | best loss: policy | best grid | AdamW default lr, constant | policy / grid: best loss | last loss (medians) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        s = r["speedup"]
        lines.append(
            f"| {name} | x{r['best_grid']['lr_mult']}, {r['best_grid']['schedule']} | "
            f"{np.median(s):.2f} [{min(s):.2f}, {max(s):.2f}] | {_cell(r['best_policy'])} | "
            f"{_cell(r['best_grid_loss'])} | {_cell(r['best_default_adamw'])} | "
            f"{np.median(r['best_ratio']):.3f} | {np.median(r['last_ratio']):.3f} |"
        )
    speed = [float(np.median(r["speedup"])) for r in results.values()]
    worst = max(float(np.median(r["best_ratio"])) for r in results.values())
    lines += [
        "",
        what_it_means(float(np.median(speed)), worst),
        "",
        f"Recovery from a learning rate {high_lr:g}x too high (final validation loss, median "
        "[min, max]):",
        "",
        "| task | policy started at high lr | constant AdamW at high lr | initial loss |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_cell(r['final_high_lr_policy'])} | {_cell(r['final_high_lr_adamw'])} | "
            f"{_cell(initial[name])} |"
        )
    lines += [
        "",
        "![validation loss: best AdamW grid cell vs policy](lhopt.png)",
        "",
        f"Policy: `{policy}`; {seeds} seeds, {steps} steps per run. The grid is "
        f"AdamW with lr x {list(LRS)} of the task's default and schedules {list(SCHEDULES)}; "
        "the best cell per task (median best validation loss) is the baseline. The policy "
        "starts AdamW at the default lr. Validation loss is measured every 10 steps; a run's "
        "loss is its best (what early stopping keeps; the tasks overfit at different speeds, "
        "so the last loss would reward stopping early by luck). Speedup = steps / first step "
        "at which the policy's validation loss reaches the baseline's best (if never, "
        "baseline best / policy best, below 1). Losses: median [min, max] over seeds.",
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes, ""]
    lines += how_it_was_run(
        [(command, repo_relative(path.parent), "")], [f"Date: {date}", f"Machine: {machine}"]
    )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--policy",
        default="default",
        help="'default' (the shipped policy) or a file written by metatune lhopt train",
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--tasks", default=",".join(DEFAULT_HELD_OUT_TASKS))
    ap.add_argument("--out", default="docs/benchmarks")
    ap.add_argument(
        "--grid-cache",
        default="metatune-runs/lhopt-grid.json",
        help="file keeping the AdamW grid's curves, so evaluating another policy is quick",
    )
    ap.add_argument(
        "--high-lr",
        type=float,
        default=30.0,
        help="recovery check: policy and constant AdamW both started at this x default lr",
    )
    ap.add_argument(
        "--notes",
        default="",
        help="a Markdown file for the Notes section (default: keep the existing page's Notes)",
    )
    args = ap.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = sorted(set(tasks) - set(HELD_OUT_TASKS))
    if unknown:
        ap.error(f"unknown tasks {unknown}; available: {HELD_OUT_TASKS.names()}")
    policy = Policy.load(default_policy_path() if args.policy == "default" else args.policy)
    cache_path = Path(args.grid_cache)
    cache: dict[str, list] = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def cached_baseline(name: str, seed: int, m: float, sched: str) -> list[tuple[int, float]]:
        key = f"{name}|{seed}|{args.steps}|{m}|{sched}"
        if key not in cache:
            cache[key] = baseline_run(HELD_OUT_TASKS.get(name), seed, args.steps, m, sched)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache))
        return [tuple(p) for p in cache[key]]

    results: dict[str, dict] = {}
    for name in tasks:
        make = HELD_OUT_TASKS.get(name)
        grid = {
            (m, s): [cached_baseline(name, seed, m, s) for seed in range(args.seeds)]
            for m in LRS
            for s in SCHEDULES
        }
        best = min(grid, key=lambda k: np.median([best_loss(c) for c in grid[k]]))
        base = grid[best]
        pol = [policy_run(make, seed, args.steps, policy) for seed in range(args.seeds)]
        speedups, ratios, last_ratios = [], [], []
        for b, p in zip(base, pol, strict=True):
            target, reached = best_loss(b), best_loss(p)
            reach = first_reach(p, target)
            if reach:
                speedups.append(args.steps / reach)
            else:  # never reached: report how far off it ended, as a ratio below 1
                speedups.append(target / reached if math.isfinite(reached) else 0.0)
            ratios.append(reached / target)
            last_ratios.append(p[-1][1] / b[-1][1])
        high = [
            policy_run(make, seed, args.steps, policy, args.high_lr) for seed in range(args.seeds)
        ]
        high_adamw = [
            cached_baseline(name, seed, args.high_lr, "constant") for seed in range(args.seeds)
        ]
        default = grid[(1.0, "constant")]
        results[name] = {
            "best_grid": {"lr_mult": best[0], "schedule": best[1]},
            "speedup": speedups,
            "best_ratio": ratios,
            "last_ratio": last_ratios,
            "best_policy": [best_loss(c) for c in pol],
            "best_grid_loss": [best_loss(c) for c in base],
            "best_default_adamw": [best_loss(c) for c in default],
            "final_high_lr_policy": [c[-1][1] for c in high],
            "final_high_lr_adamw": [c[-1][1] for c in high_adamw],
            "baseline_curves": base,
            "policy_curves": pol,
            "high_lr_policy_curves": high,
        }
        print(
            f"{name}: best grid lr x{best[0]} {best[1]}; speedup median {np.median(speedups):.2f}; "
            f"best-loss ratio median {np.median(ratios):.3f}",
            flush=True,
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lhopt.json").write_text(json.dumps(results))
    notes = Path(args.notes).read_text().strip() if args.notes else ""
    notes = notes.removeprefix("## Notes").strip()  # the page adds the heading itself
    previous = out / "lhopt.md"
    if not notes and previous.exists():
        notes = existing_notes(previous.read_text())  # keep them on re-runs
    initial = {
        name: [HELD_OUT_TASKS.get(name)(seed).val_loss() for seed in range(args.seeds)]
        for name in results
    }
    write_markdown(
        results,
        initial,
        out / "lhopt.md",
        command="python benchmarks/lhopt.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        date=f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        machine=f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        policy=args.policy,
        seeds=args.seeds,
        steps=args.steps,
        high_lr=args.high_lr,
        notes=notes,
    )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        for curves, label, color in (
            (r["baseline_curves"], "best AdamW grid", "C0"),
            (r["policy_curves"], "policy", "C1"),
            (r["high_lr_policy_curves"], f"policy from {args.high_lr:g}x lr", "C2"),
        ):
            for i, c in enumerate(curves):
                t, v = zip(*c, strict=True)
                v = np.minimum.accumulate(np.nan_to_num(v, nan=np.inf))  # best so far
                ax.plot(t, v, color=color, alpha=0.7, label=label if i == 0 else None)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("best validation loss so far")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "lhopt.png", dpi=120)
    print(f"wrote {out / 'lhopt.md'} and {out / 'lhopt.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
