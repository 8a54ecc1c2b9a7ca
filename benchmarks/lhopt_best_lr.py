"""The best constant learning rate of tasks drawn from the procedural task space.

A task distribution teaches a control policy only what its tasks reward: if every task's best
rate sat near Adam's default, a policy would learn to hold it. For each sampled task (family,
architecture, data, batch size and run length drawn by `metatune.lhopt.task_space`), a grid of
constant AdamW learning rates trains as the replicas of one lockstep group (the same task
copied, one rate per copy); the best rate is the one with the lowest best validation loss.

Writes docs/benchmarks/lhopt-task-space.{json,md,png}.

    python benchmarks/lhopt_best_lr.py                       # 30 tasks, ~10 min
    python benchmarks/lhopt_best_lr.py --tasks 6 --max-steps 400 --out /tmp/lr
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metatune.benchmarks.common import (
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
)
from metatune.lhopt.task_space import FAMILIES, MIN_STEPS, sample_group
from metatune.lhopt.vectorized import ReplicaStart, run_lockstep

ROOT = Path(__file__).resolve().parents[1]


def _best(curve: list[tuple[int, float]]) -> float:
    return min((v for _, v in curve if math.isfinite(v)), default=math.inf)


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    grid = [float(x) for x in np.logspace(args.low, args.high, args.rates)]
    families = sorted(FAMILIES)
    rows = []
    for k in range(args.tasks):
        family = families[k % len(families)]
        rng = np.random.default_rng([args.seed, k, 17])
        single, spec = sample_group(family, rng, 1)
        steps = min(spec.steps, args.max_steps)
        group = single.subset([0] * len(grid))  # the same task once per rate
        t0 = time.perf_counter()
        res = run_lockstep(group, [ReplicaStart(lr=lr) for lr in grid], steps)
        best = [_best(c) for c in res.curves]
        i = int(np.argmin(best))
        rows.append(
            {
                "family": family,
                "split": FAMILIES[family].split,
                "spec": spec.label(),
                "steps": steps,
                "best_lr": grid[i],
                "edge": i in (0, len(grid) - 1),
                "best_loss": best[i],
                "loss_at_default": best[int(np.argmin([abs(math.log(g / 1e-3)) for g in grid]))],
                "losses": best,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"{spec.label()} (T={steps}): best lr {grid[i]:.2g}"
            f"{' (grid edge)' if rows[-1]['edge'] else ''}, {rows[-1]['seconds']:.0f} s",
            flush=True,
        )
    return rows


def write_plot(rows: list[dict[str, Any]], grid: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = np.log10(grid)
    step = logs[1] - logs[0]
    edges = np.concatenate([logs - step / 2, [logs[-1] + step / 2]])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for split, color in (
        ("train", "tab:blue"),
        ("validation", "tab:green"),
        ("heldout", "tab:orange"),
    ):
        vals = [math.log10(r["best_lr"]) for r in rows if r["split"] == split]
        ax.hist(vals, bins=edges, color=color, alpha=0.7, label=f"{split} families ({len(vals)})")
    ax.axvline(-3, color="k", ls=":", lw=1, label="Adam's default 1e-3")
    ax.set_xlabel("log10 best constant learning rate (AdamW)")
    ax.set_ylabel("tasks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_markdown(data: dict[str, Any], path: Path) -> None:
    rows, a = data["rows"], data["args"]
    logs = sorted(math.log10(r["best_lr"]) for r in rows)
    span = logs[-1] - logs[0]
    p10, p90 = np.percentile(logs, [10, 90])
    edge = sum(r["edge"] for r in rows)
    inner_logs = sorted(math.log10(r["best_lr"]) for r in rows if not r["edge"]) or logs
    inner = inner_logs[-1] - inner_logs[0]
    grid = data["grid"]
    step = math.log10(grid[1] / grid[0])
    lines = [
        "# Learned controller: best constant learning rates of the procedural task space",
        "",
        "| tasks | best rate: lowest / median / highest | decades spanned (10th-90th percentile) | at a grid edge |",
        "| ---: | --- | --- | ---: |",
        f"| {len(rows)} | {10 ** logs[0]:.2g} / {10 ** statistics.median(logs):.2g} / "
        f"{10 ** logs[-1]:.2g} | {span:.1f} ({p90 - p10:.1f}) | {edge} |",
        "",
        "![histogram of best learning rates](lhopt-task-space.png)",
        "",
        f"What it means: the tasks' best constant AdamW rates span {span:.1f} decades "
        f"(target: at least 3), {inner:.1f} without the {edge} task(s) at a grid edge and "
        f"{p90 - p10:.1f} between the 10th and 90th percentile: "
        f"**{'met' if inner >= 3 else 'not met'}** once edge tasks are left out. The median "
        f"task's best rate is {10 ** statistics.median(logs) / 1e-3:.0f}x Adam's default 1e-3, "
        "so this distribution rewards raising the rate far more often than cutting it (the "
        "shipped policy's mix rewarded decaying it). A task at the grid's top (1, also the "
        "controller's upper bound) may want more. Run lengths are capped (see below), which "
        "favours higher rates than the full runs would; the grid steps by "
        f"{step:.2f} decades.",
        "",
        "## Per task",
        "",
        "| family | split | task | steps | best rate | best val. loss | at 1e-3 |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['split']} | {r['spec']} | {r['steps']} | "
            f"{r['best_lr']:.2g}{' (edge)' if r['edge'] else ''} | {r['best_loss']:.4g} | "
            f"{r['loss_at_default']:.4g} |"
        )
    lines += [
        "",
        *how_it_was_run(
            [(data["command"], "docs/benchmarks", f"{data['date']}; {data['seconds']:.0f} s")],
            facts=[
                f"{a['tasks']} tasks, families in turn ({', '.join(sorted(FAMILIES))}), seed "
                f"{a['seed']}; each task's run length as drawn (200-5,000 steps) but at most "
                f"{a['max_steps']}",
                f"Grid: {a['rates']} constant rates 10^{a['low']}..10^{a['high']} (log-spaced), "
                "AdamW with torch's defaults otherwise, no clipping; best rate = lowest best "
                "validation loss (evaluated every 10 steps), all rates of a task as replicas of "
                "one lockstep group",
                f"Machine: {format_machine(data['machine'])}",
            ],
            root=ROOT,
        ),
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--rates", type=int, default=16)
    p.add_argument("--low", type=float, default=-5.0)
    p.add_argument("--high", type=float, default=0.0)
    p.add_argument("--max-steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = p.parse_args(argv)
    if args.tasks < 2 or args.rates < 3 or not args.low < args.high <= 0:
        p.error("need --tasks >= 2, --rates >= 3 and --low < --high <= 0")
    if args.max_steps < MIN_STEPS:
        p.error(f"--max-steps must be at least {MIN_STEPS}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    rows = sweep(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "command": command_line(out),
        "date": now_utc(),
        "seconds": time.perf_counter() - t0,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "grid": [float(x) for x in np.logspace(args.low, args.high, args.rates)],
        "machine": machine_info(("torch", "scikit-learn")),
        "rows": rows,
    }
    (out / "lhopt-task-space.json").write_text(json.dumps(data, indent=1))
    write_plot(rows, data["grid"], out / "lhopt-task-space.png")
    write_markdown(data, out / "lhopt-task-space.md")
    print((out / "lhopt-task-space.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
