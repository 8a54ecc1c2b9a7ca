"""Goodput benchmark, time to target: adaptive batch size against fixed total batches.

Every run trains one model of `metatune.benchmarks.goodput_tasks` on the teacher-student data
(300,000 training examples, 20,000 for validation) with the learning rate on a cosine schedule
written in M0-equivalent steps: the goodput controller's progress counts steps at a larger
batch by their statistical gain, so a schedule written for M0 keeps its meaning at any batch.
Arms: fixed total batches M0..16 M0 (through the same controller with adaptation off, so they
pay the same measurement cost and get their learning rate from the same rule) and the adaptive
controller with its defaults. One process (this thread's CPU time) and 2-process gloo DDP
(rank 0's wall time). Time to a target validation loss, evaluation excluded.

Writes docs/benchmarks/goodput-time-to-target.md, .json and .png.
Run: .venv/bin/python benchmarks/goodput_time_to_target.py  (about an hour on one free core)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from metatune.benchmarks.common import single_thread_env  # noqa: E402

single_thread_env()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    fmt_num,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    run_on_gloo,
    single_thread_torch,
)
from metatune.benchmarks.goodput_tasks import (  # noqa: E402
    TIME_TO_TARGET_TASKS,
    TimeToTargetTask,
    teacher_classification,
)
from metatune.goodput import GoodputController  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
NAME = "goodput-time-to-target"
M0 = 16
SCALES = (1, 2, 4, 8, 16)
LABELS = (*(f"{k}M0" for k in SCALES), "adaptive")
EVAL_EVERY = 8000  # training examples between validation losses
# Targets, fixed before the first run: from the fixed batches' best validation losses (median
# over seeds per batch size), `loose` = TARGET_SLACK x the worst batch size's (every fixed batch
# gets there in the median), `tight` = TARGET_SLACK x the median batch size's.
TARGET_SLACK = 1.02
MAX_SECONDS = 300.0  # a run that has not finished its schedule by then stops (a miss)


def run(
    task: TimeToTargetTask,
    train,
    val,
    seed: int,
    fixed: int | None,
    clock_fn: Callable[[], float],
) -> dict:
    """Train through the task's schedule (or MAX_SECONDS); the validation curve every
    EVAL_EVERY examples, with the training time so far. Under torch.distributed rank 0's clock
    is broadcast at each evaluation, so every rank records the same times."""
    import torch.distributed as dist

    agree = dist.is_available() and dist.is_initialized()
    torch.manual_seed(seed)
    model = task.make_model()
    opt = task.make_optimizer(model)
    length = float(task.schedule_steps)

    def cosine(progress: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(progress / length, 1.0)))

    ctl = GoodputController(
        model,
        opt,
        batch_size=M0,
        max_batch_size=SCALES[-1] * M0,
        lr_rule=task.lr_rule,
        lr_schedule=cosine,
        adaptive=fixed is None,
        clock=clock_fn,
    )
    loader = ctl.loader(torch.utils.data.TensorDataset(*train), seed=seed)
    if fixed is not None:
        ctl.set_plan(fixed)
    clock, next_eval, curve, done = 0.0, EVAL_EVERY, [], False

    def sync(value: float) -> float:
        if not agree:
            return value
        c = torch.tensor([value], dtype=torch.float64)
        dist.broadcast(c, src=0)
        return float(c)

    while not done:
        t0 = clock_fn()
        for (xb, yb), _ in loader:
            ctl.step(F.cross_entropy(ctl.model(xb), yb))
            end = ctl.progress >= length
            if loader.current.last and (ctl.examples >= next_eval or end):
                clock = sync(clock + clock_fn() - t0)
                next_eval += EVAL_EVERY
                with torch.no_grad():
                    v = float(F.cross_entropy(model(val[0]), val[1]))
                curve.append((round(clock, 4), round(v, 5), ctl.plan.total))
                done = end or clock >= MAX_SECONDS
                if done:
                    break
                t0 = clock_fn()
        else:
            clock = sync(clock + clock_fn() - t0)
    totals = [t for _, _, t in curve]
    return {
        "curve": curve,
        "steps": ctl.steps,
        "finished": ctl.progress >= length,
        "best": min(v for _, v, _ in curve),
        "median_total": float(np.median(totals)),
        "plans": [[h[0], h[2] * (h[3] + 1) * ctl.world_size] for h in ctl.history],
    }


def _fixed_of(label: str) -> int | None:
    return None if label == "adaptive" else int(label[:-2]) * M0


def bench_one_process(tasks: list[str], seeds: range, progress) -> list[dict]:
    train, val, _ = teacher_classification()
    rows = []
    for name in tasks:
        task = TIME_TO_TARGET_TASKS[name]
        for seed in seeds:
            for label in LABELS:
                r = run(task, train, val, seed, _fixed_of(label), time.thread_time)
                rows.append({"task": name, "config": label, "seed": seed, **r})
                progress(f"one process {name} seed {seed} {label}: best {r['best']:.4f}")
    return rows


def _ddp_worker(rank: int, job: dict) -> list[dict]:
    train, val, _ = teacher_classification()
    rows = []
    for name in job["tasks"]:
        task = TIME_TO_TARGET_TASKS[name]
        for seed in job["seeds"]:
            for label in LABELS:
                r = run(task, train, val, seed, _fixed_of(label), time.perf_counter)
                rows.append({"task": name, "config": label, "seed": seed, **r})
                if rank == 0:
                    print(f"ddp {name} seed {seed} {label}: best {r['best']:.4f}", flush=True)
    return rows


def bench_ddp(tasks: list[str], seeds: range) -> list[dict]:
    """2 gloo processes on this machine, rank 0's wall time."""
    return run_on_gloo(_ddp_worker, {"tasks": tasks, "seeds": list(seeds)})


# --- analysis ------------------------------------------------------------------------------
def time_to(curve: list, target: float) -> float:
    """Training time at the first evaluation at or below `target` (inf: never)."""
    for clock, v, _ in curve:
        if v <= target:
            return clock
    return math.inf


def targets_for(rows: list[dict], task: str) -> dict[str, float]:
    per = [
        statistics.median(r["best"] for r in rows if r["task"] == task and r["config"] == lab)
        for lab in LABELS[:-1]
    ]
    return {"loose": TARGET_SLACK * max(per), "tight": TARGET_SLACK * statistics.median(per)}


def summarize(rows: list[dict], kind: str) -> dict[str, dict]:
    """Per task: the target, median time per arm (with range and misses) and the two ratios
    the must-show asks for (adaptive over the best and over the median fixed batch)."""
    out = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        target = targets_for(rows, task)[kind]
        cells = {}
        for lab in LABELS:
            ts = [
                time_to(r["curve"], target)
                for r in rows
                if r["task"] == task and r["config"] == lab
            ]
            fin = [t for t in ts if math.isfinite(t)]
            cells[lab] = {
                "median": statistics.median(ts),
                "times": ts,
                "missed": len(ts) - len(fin),
            }
        fixed = [cells[lab]["median"] for lab in LABELS[:-1]]
        best, median = min(fixed), statistics.median(fixed)
        ad = cells["adaptive"]["median"]
        out[task] = {
            "target": target,
            "cells": cells,
            "vs_best": ad / best if math.isfinite(best) else math.nan,
            "vs_median": ad / median
            if math.isfinite(median)
            else (0.0 if math.isfinite(ad) else math.nan),
            "best_over_median": best / median if math.isfinite(median) else math.nan,
        }
    return out


def met(s: dict) -> bool:
    return s["vs_best"] <= 1.1 and s["vs_median"] <= 0.7


# --- page ----------------------------------------------------------------------------------
def _cell(c: dict) -> str:
    fin = [t for t in c["times"] if math.isfinite(t)]
    if not math.isfinite(c["median"]):
        text = f"missed ({c['missed']} of {len(c['times'])})"
        return text
    text = fmt_num(c["median"])
    if len(fin) > 1:
        text += f" ({fmt_num(min(fin))}-{fmt_num(max(fin))})"
    if c["missed"]:
        text += f", {c['missed']} of {len(c['times'])} missed"
    return text


def _table(summary: dict) -> list[str]:
    lines = [
        "| task | target | " + " | ".join(LABELS) + " | adaptive / best | adaptive / median | "
        "best / median |",
        "|" + " --- |" * (len(LABELS) + 5),
    ]
    for task, s in summary.items():
        lines.append(
            f"| {task} | {s['target']:.4f} | "
            + " | ".join(_cell(s["cells"][lab]) for lab in LABELS)
            + f" | {fmt_num(s['vs_best'])} | {fmt_num(s['vs_median'])} | "
            f"{fmt_num(s['best_over_median'])} |"
        )
    return lines


def _plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in ("one_process", "ddp") if data.get(m)]
    tasks = list(dict.fromkeys(r["task"] for m in modes for r in data[m]))
    fig, axes = plt.subplots(
        len(modes), len(tasks), figsize=(4.2 * len(tasks), 3.6 * len(modes)), squeeze=False
    )
    for i, mode in enumerate(modes):
        rows = data[mode]
        for j, task in enumerate(tasks):
            ax = axes[i, j]
            sub = [r for r in rows if r["task"] == task]
            if not sub:
                ax.axis("off")
                continue
            for k, lab in enumerate(LABELS):
                runs = [r for r in sub if r["config"] == lab]
                for n, r in enumerate(runs):
                    t = [c[0] for c in r["curve"]]
                    v = [c[1] for c in r["curve"]]
                    color = "k" if lab == "adaptive" else f"C{k}"
                    ax.plot(
                        t,
                        v,
                        color=color,
                        lw=1.4 if lab == "adaptive" else 0.8,
                        alpha=0.9,
                        label=lab if n == 0 else None,
                    )
            target = targets_for(rows, task)["loose"]
            ax.axhline(target, color="gray", ls="--", lw=0.8)
            lows = [r["best"] for r in sub]
            ax.set_ylim(min(lows) - 0.01, min(lows) + 0.15)
            ax.set_xscale("log")
            ax.set_title(f"{task}, {'one process' if mode == 'one_process' else '2-process DDP'}")
            ax.set_xlabel("training seconds" + (" (CPU)" if mode == "one_process" else " (wall)"))
            ax.set_ylabel("validation loss")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def render(data: dict, out: Path) -> None:
    lines = ["# Goodput: time to a target validation loss, adaptive against fixed batches", ""]
    summary = [
        "| setting | task | target | adaptive / best fixed | adaptive / median fixed | met? |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    tables = {}
    for mode, title in (("one_process", "one process"), ("ddp", "2-process gloo DDP")):
        if not data.get(mode):
            continue
        for kind in ("loose", "tight"):
            s = summarize(data[mode], kind)
            tables[(mode, kind)] = s
            for task, v in s.items():
                summary.append(
                    f"| {title} | {task} | {kind} | {fmt_num(v['vs_best'])} | "
                    f"{fmt_num(v['vs_median'])} | {'yes' if met(v) else 'no'} |"
                )
    lines += [
        "Must show: adaptive time to target at most 1.1x the best fixed total batch and at most "
        "0.7x the median one (M0 .. 16 M0), for each model, in one process and under 2-process "
        "DDP, with no per-model tuning.",
        "",
        *summary,
        "",
    ]
    notes = out / f"{NAME}-notes.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    tasks = {r["task"] for m in ("one_process", "ddp") for r in data.get(m, [])}
    lines += [
        "## Protocol",
        "",
        f"Data: {data['data']}. Tasks: "
        + "; ".join(
            f"**{t.name}**: {t.about}, cosine schedule over {t.schedule_steps:,} M0-equivalent "
            "steps"
            for t in TIME_TO_TARGET_TASKS.values()
            if t.name in tasks
        )
        + f". M0 = {M0}, the largest batch 16 M0 for every arm, the adaptive controller with its "
        "defaults (the same for every task). A run ends when its schedule does; the validation "
        f"loss is measured every {EVAL_EVERY:,} training examples and its time excluded. Time "
        "to target: the training time at the first evaluation at or below the target. Targets "
        f"(rule fixed before the first run): {TARGET_SLACK} x the worst fixed batch's best loss "
        f"(**loose**; median over seeds per batch size) and {TARGET_SLACK} x the median fixed "
        "batch's (**tight**). One process: this thread's CPU time (torch on one thread), so "
        "that another job on the machine does not stretch a run; DDP: rank 0's wall time "
        "(the waits in the all-reduce are part of the cost), with M0 = 16 in total (8 per "
        "process). Cells: median seconds over seeds (range); `best / median`: how far apart "
        "the best and the median fixed batch are, which bounds what 0.7x the median asks.",
        "",
    ]
    for (mode, kind), s in tables.items():
        title = "One process" if mode == "one_process" else "Two processes (gloo DDP)"
        seeds = len({r["seed"] for r in data[mode]})
        lines += [f"## {title}, {kind} target ({seeds} seeds)", "", *_table(s), ""]
    lines += [f"![time to target]({NAME}.png)", ""]
    lines += how_it_was_run(
        [
            (r["command"], "docs/benchmarks", f"{r['date']}, {r['minutes']:.0f} min, {r['parts']}")
            for r in data["runs"]
        ],
        [f"Machine: {data['machine']}", "torch on one thread per process (benchmarks.common)."],
    )
    (out / f"{NAME}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ddp-seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds start here (dev runs)")
    ap.add_argument("--parts", default="one_process,ddp", help="one_process and/or ddp")
    ap.add_argument("--tasks", default=",".join(TIME_TO_TARGET_TASKS))
    ap.add_argument("--ddp-tasks", default=",".join(TIME_TO_TARGET_TASKS))
    ap.add_argument(
        "--schedule-factor", type=float, default=1.0, help="scale every schedule (smoke runs)"
    )
    ap.add_argument("--from-json", action="store_true", help="re-render from the saved JSON")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{NAME}.json"
    parts = set(args.parts.split(","))
    unknown = parts - {"one_process", "ddp"}
    if unknown:
        ap.error(f"--parts: unknown {sorted(unknown)}; allowed: one_process, ddp")
    for flag, value in (("--tasks", args.tasks), ("--ddp-tasks", args.ddp_tasks)):
        bad = [t for t in value.split(",") if t not in TIME_TO_TARGET_TASKS]
        if bad:
            ap.error(f"{flag}: unknown {bad}; allowed: {', '.join(TIME_TO_TARGET_TASKS)}")
    if args.schedule_factor <= 0:
        ap.error(f"--schedule-factor must be positive, got {args.schedule_factor}")
    for name, task in list(TIME_TO_TARGET_TASKS.items()):
        steps = max(int(task.schedule_steps * args.schedule_factor), 1)
        TIME_TO_TARGET_TASKS[name] = dataclasses.replace(task, schedule_steps=steps)
    data = json.loads(path.read_text()) if path.exists() else {}
    if not args.from_json:
        single_thread_torch()
        start = time.time()

        def progress(msg: str) -> None:
            print(msg, flush=True)

        if "one_process" in parts:
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            data["one_process"] = bench_one_process(args.tasks.split(","), seeds, progress)
        if "ddp" in parts:
            seeds = range(args.first_seed, args.first_seed + args.ddp_seeds)
            data["ddp"] = bench_ddp(args.ddp_tasks.split(","), seeds)
        _, _, floor = teacher_classification()
        data.setdefault("runs", []).append(
            {
                "command": command_line(out),
                "date": now_utc(),
                "minutes": (time.time() - start) / 60,
                "parts": ", ".join(sorted(parts)),
            }
        )
        data.update(
            {
                "machine": format_machine(machine_info(("torch", "scipy"))),
                "data": "teacher-student classification (metatune.benchmarks.goodput_tasks): "
                "32 Gaussian inputs, 10 classes drawn from a fixed random tanh network's "
                f"softmax; 300,000 training and 20,000 validation examples; loss floor (the "
                f"teacher's entropy) {floor:.3f}",
                "load_average": os.getloadavg(),
            }
        )
        path.write_text(json.dumps(data))
    _plot(data, out / f"{NAME}.png")
    render(data, out)


if __name__ == "__main__":
    main()
