"""A learned control policy vs a tuned AdamW grid, on tasks never used in meta-training.

For every held-out task (`metatune.benchmarks.registry.HELD_OUT_TASKS`) the baseline is the best
cell of an AdamW grid: 5 learning rates x 3 schedules (constant, cosine, warm-up+cosine), the best
chosen per task by median best validation loss over seeds. The policy starts AdamW at the task's
default learning rate and adjusts it (and betas, eps, weight decay, clipping) through
`metatune.lhopt.Controller`. Scored as `metatune.benchmarks.lhopt_suite` defines it: the speedup
to the best cell's best loss, the best-loss ratio to that cell and to AdamW with cosine at the
default rate, and a recovery check from a learning rate far too high. The grid's runs are
cached in a file, so evaluating another policy only runs the policy.

    python benchmarks/lhopt.py --seeds 5                          # the shipped policy
    python benchmarks/lhopt.py --policy metatune-runs/lhopt/policy.pt --compare base=base
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from metatune.benchmarks.common import (
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    repo_relative,
    single_thread_torch,
)

single_thread_torch()  # every task trains on one thread

import numpy as np  # noqa: E402

from metatune.benchmarks.lhopt_suite import (  # noqa: E402
    LRS,
    SCHEDULES,
    SuiteTask,
    grid_curves,
    policy_curve,
)
from metatune.benchmarks.lhopt_suite import evaluate as evaluate_task  # noqa: E402
from metatune.benchmarks.registry import DEFAULT_HELD_OUT_TASKS, HELD_OUT_TASKS  # noqa: E402
from metatune.lhopt import Policy  # noqa: E402
from metatune.lhopt.controller import SHIPPED_POLICIES, default_policy_path  # noqa: E402
from metatune.lhopt.training import best_loss  # noqa: E402


def load_policy(spec: str) -> Policy:
    """A shipped policy by name ('default', 'base') or a file written by metatune lhopt train."""
    return Policy.load(default_policy_path(spec) if spec in SHIPPED_POLICIES else spec)


def existing_notes(page: str) -> str:
    """The body of a page's "## Notes" section (up to "## How it was run"), or ""."""
    if "\n## Notes\n" not in page:
        return ""
    body = page.split("\n## Notes\n", 1)[1]
    return body.split("\n## How it was run\n", 1)[0].strip()


def _cell(values: list[float]) -> str:
    return f"{np.median(values):.4g} [{min(values):.4g}, {max(values):.4g}]"


def verdict(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The must-show's three numbers: median speedup, the share of tasks within 2% of the best
    cell's loss, the worst median ratio to AdamW with cosine at the default rate."""
    speed = float(np.median([np.median(r["speedup"]) for r in results.values()]))
    within = sum(float(np.median(r["best_ratio"])) <= 1.02 for r in results.values())
    worst_cosine = max(float(np.median(r["cosine_ratio"])) for r in results.values())
    return {
        "median_speedup": speed,
        "within_2pct": within,
        "tasks": len(results),
        "worst_cosine_ratio": worst_cosine,
        "met": speed >= 1.3 and within >= 0.8 * len(results) and worst_cosine <= 1.02,
    }


def what_it_means(v: dict[str, Any]) -> str:
    parts = [
        f"median speedup {v['median_speedup']:.2f} (target >= 1.3)",
        f"best loss within 2% of the best cell on {v['within_2pct']} of {v['tasks']} tasks "
        f"(target >= 80%)",
        f"worst ratio to AdamW with cosine at the default rate {v['worst_cosine_ratio']:.3f} "
        "(target <= 1.02)",
    ]
    head = "the targets are met" if v["met"] else "the targets are **not met**"
    return f"What it means: {head}: " + "; ".join(parts) + "."


def write_markdown(
    results: dict[str, dict[str, Any]],
    compared: dict[str, dict[str, Any]],
    path: Path,
    *,
    command: str,
    date: str,
    machine: str,
    policy: str,
    seeds: int,
    high_lr: float,
    notes: str = "",
) -> None:
    """The page: the comparison table and what it means, the policies side by side, recovery,
    the notes (`notes`, without their heading), then how it was run."""
    lines = [
        "# Learned control policy vs a tuned AdamW grid (held-out tasks)",
        "",
        "| task | steps | best grid cell (lr x default, schedule) | speedup median [min, max] | "
        "best loss: policy | best grid cell | AdamW cosine, default lr | policy / best cell | "
        "policy / cosine default |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        s = r["speedup"]
        cell = r["best_cell"]
        lines.append(
            f"| {name} | {r['steps']} | x{cell['lr_mult']:g}, {cell['schedule']} | "
            f"{np.median(s):.2f} [{min(s):.2f}, {max(s):.2f}] | {_cell(r['best_policy'])} | "
            f"{_cell(r['best_grid_loss'])} | {_cell(r['best_cosine_default'])} | "
            f"{np.median(r['best_ratio']):.3f} | {np.median(r['cosine_ratio']):.3f} |"
        )
    lines += ["", what_it_means(verdict(results)), ""]
    lines += [
        "Policies side by side (same tasks, seeds and grid):",
        "",
        "| policy | median speedup | tasks within 2% of the best cell | worst ratio to cosine "
        "default | targets |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, res in {policy: results, **compared}.items():
        v = verdict(res)
        lines.append(
            f"| `{label}` | {v['median_speedup']:.2f} | {v['within_2pct']} of {v['tasks']} | "
            f"{v['worst_cosine_ratio']:.3f} | {'met' if v['met'] else 'not met'} |"
        )
    lines += [
        "",
        f"Recovery from a learning rate {high_lr:g}x too high (best validation loss, median "
        "[min, max]):",
        "",
        "| task | policy started at high lr | constant AdamW at high lr | best grid cell |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_cell(r['best_high_lr_policy'])} | {_cell(r['best_high_lr_adamw'])} | "
            f"{_cell(r['best_grid_loss'])} |"
        )
    lines += [
        "",
        "![best validation loss so far: best AdamW grid cell vs policy](lhopt.png)",
        "",
        f"Policy: `{policy}`; {seeds} seeds per task. The grid is AdamW with lr x {list(LRS)} "
        f"of the task's default and schedules {list(SCHEDULES)} (warm-up: the first 5% of the "
        "run, linear); the best cell per task (median best validation loss) is the baseline. "
        "Validation loss is measured every 10 steps; a run's loss is its best (what early "
        "stopping keeps). Speedup = steps / first step at which the policy's validation loss "
        "reaches the best cell's best (if never, best cell / policy, below 1). Tasks of the "
        "task space run their grid in lockstep (equal to torch's AdamW within float32 "
        "rounding); every policy run is `Controller` on one model, as a user runs it. Tasks: "
        + "; ".join(f"{n}: {r['describe']}" for n, r in results.items())
        + ".",
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes, ""]
    lines += how_it_was_run(
        [(command, repo_relative(path.parent), "")], [f"Date: {date}", f"Machine: {machine}"]
    )
    path.write_text("\n".join(lines) + "\n")


def evaluate(
    task: SuiteTask,
    policy: Policy,
    seeds: list[int],
    cache: dict[str, list],
    high_lr: float | None,
) -> dict[str, Any]:
    grid, curves, out = evaluate_task(task, policy, seeds, cache)
    out.update(steps=task.steps, describe=task.describe(), policy_curves=curves)
    best = (out["best_cell"]["lr_mult"], out["best_cell"]["schedule"])
    out["baseline_curves"] = grid[best]
    if high_lr is not None:
        high = [policy_curve(task, s, policy, high_lr) for s in seeds]
        adamw = grid_curves(task, seeds, [(high_lr, "constant")], cache)[(high_lr, "constant")]
        out["high_lr_policy_curves"] = high
        out["best_high_lr_policy"] = [best_loss(c) for c in high]
        out["best_high_lr_adamw"] = [best_loss(c) for c in adamw]
    return out


def write_plot(results: dict[str, dict[str, Any]], path: Path, high_lr: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(results))
    rows = -(-len(results) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(results) :]:
        ax.axis("off")
    for ax, (name, r) in zip(axes.flat, results.items(), strict=False):
        for curves, label, color in (
            (r["baseline_curves"], "best AdamW grid cell", "C0"),
            (r["policy_curves"], "policy", "C1"),
            (r.get("high_lr_policy_curves", []), f"policy from {high_lr:g}x lr", "C2"),
        ):
            for i, c in enumerate(curves):
                t, v = zip(*c, strict=True)
                v = np.minimum.accumulate(np.nan_to_num(v, nan=np.inf))  # best so far
                ax.plot(t, v, color=color, alpha=0.6, lw=1, label=label if i == 0 else None)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("best validation loss so far")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--policy",
        default="default",
        help="'default' or 'base' (shipped policies) or a file written by metatune lhopt train",
    )
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=POLICY",
        help="another policy for the side-by-side table (repeatable)",
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tasks", default=",".join(DEFAULT_HELD_OUT_TASKS))
    ap.add_argument(
        "--steps",
        type=int,
        default=400,
        help="run length for a registered task that does not fix its own",
    )
    ap.add_argument("--out", default="docs/benchmarks")
    ap.add_argument(
        "--grid-cache",
        default="metatune-runs/lhopt-grid-v2.json",
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
    if not 1 <= args.seeds <= 10:
        ap.error(f"--seeds must be in [1, 10], got {args.seeds}")
    compare = {}
    for item in args.compare:
        label, sep, spec = item.partition("=")
        if not sep or not label or not spec:
            ap.error(f"--compare takes LABEL=POLICY, got {item!r}")
        compare[label] = load_policy(spec)
    policy = load_policy(args.policy)
    cache_path = Path(args.grid_cache)
    cache: dict[str, list] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    seeds = list(range(args.seeds))

    def suite_task(name: str) -> SuiteTask:
        entry = HELD_OUT_TASKS.get(name)
        return entry if isinstance(entry, SuiteTask) else SuiteTask(name, entry, args.steps)

    results: dict[str, dict[str, Any]] = {}
    compared: dict[str, dict[str, dict[str, Any]]] = {label: {} for label in compare}
    for name in tasks:
        task = suite_task(name)
        results[name] = evaluate(task, policy, seeds, cache, args.high_lr)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache))
        for label, other in compare.items():
            compared[label][name] = evaluate(task, other, seeds, cache, None)
        r = results[name]
        print(
            f"{name}: best cell x{r['best_cell']['lr_mult']:g} {r['best_cell']['schedule']}; "
            f"speedup median {np.median(r['speedup']):.2f}; best-loss ratio median "
            f"{np.median(r['best_ratio']):.3f}; vs cosine default "
            f"{np.median(r['cosine_ratio']):.3f}",
            flush=True,
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "policy": args.policy,
        "verdict": verdict(results),
        "compared": {label: verdict(res) for label, res in compared.items()},
        "tasks": results,
    }
    (out / "lhopt.json").write_text(json.dumps(summary))
    notes = Path(args.notes).read_text().strip() if args.notes else ""
    notes = notes.removeprefix("## Notes").strip()  # the page adds the heading itself
    previous = out / "lhopt.md"
    if not notes and previous.exists():
        notes = existing_notes(previous.read_text())  # keep them on re-runs
    write_markdown(
        results,
        compared,
        out / "lhopt.md",
        command="python benchmarks/lhopt.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        date=now_utc(),
        machine=format_machine(machine_info(packages=("torch",))),
        policy=args.policy,
        seeds=args.seeds,
        high_lr=args.high_lr,
        notes=notes,
    )
    write_plot(results, out / "lhopt.png", args.high_lr)
    print(f"wrote {out / 'lhopt.md'} and {out / 'lhopt.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
