"""DARTS on digits, its derived cells looked up in the digits NAS table.

For each order (1: first-order DARTS, 2: second-order, finite-difference hypergradient) and
each search seed, ``metatune.nas.darts.darts_search`` searches the table's own cell space on
the table's training split (weights) and validation split (alpha), with the same settings for
every seed. The derived cell is then looked up in the table (``metatune.nas.tables``): the
table trained every architecture by one protocol, so the lookup is the derived cell retrained
from scratch. Reported per run: the cell, its validation and test accuracy, and where it
stands in the table by each (the share of the table ahead of it, in percent, ties counted
half), plus the median over seeds. Writes docs/benchmarks/nas-darts.json.

    python benchmarks/nas_darts.py                  # 3 seeds, both orders
    python benchmarks/nas_darts.py --reuse          # look the stored cells up again
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from metatune.benchmarks.common import (
    command_line,
    machine_info,
    now_utc,
    repo_relative,
    single_thread_torch,
)

single_thread_torch()

import torch  # noqa: E402

from metatune.nas.darts import darts_search  # noqa: E402
from metatune.nas.networks import digits_splits  # noqa: E402
from metatune.nas.tables import load, load_file  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "nas-darts.json"
# One setting for every seed and both orders, fixed before any lookup: 50 passes over the
# training split (16 batches of 64 each), the weights' SGD and alpha's Adam as DARTS, no
# remedy switched on (the table's space has no skip connection to collapse to). The supernet is
# a proxy, as in DARTS: deeper than the table's networks.
SETTINGS: dict[str, Any] = {
    "steps": 800,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 3e-4,
    "alpha_lr": 3e-3,
    "alpha_weight_decay": 1e-3,
    "warmup_steps": 0,
    "max_skips": None,
    "check_every": 100,
    # the supernet: DARTS searches a proxy network; here 2 stacked cells of 8 channels
    "channels": 8,
    "cells": 2,
}


def search(table, order: int, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    protocol = table.meta["protocol"]
    train, valid, _ = digits_splits(protocol["split_seed"])
    t0 = time.perf_counter()
    result = darts_search(
        table.cell,
        train,
        valid,
        order=order,
        seed=seed,
        **settings,
    )
    return {
        "order": order,
        "seed": seed,
        "value": list(result.value),
        "search_seconds": round(time.perf_counter() - t0, 1),
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "weights": [[round(float(w), 4) for w in row] for row in result.weights()],
        "history": [
            {k: h[k] for k in ("step", "train_loss", "valid_loss", "valid_accuracy", "value")}
            for h in result.history
        ],
    }


def look_up(table, run: dict[str, Any]) -> dict[str, Any]:
    out = dict(run)
    try:
        rec = table.lookup(run["value"])
    except KeyError:  # a partial table (while the table is being built)
        out["in_table"] = False
        return out
    out["in_table"] = True
    out["canonical"] = rec.canonical
    out["params"] = rec.params
    for metric in ("valid", "test"):
        rank = table.rank(run["value"], metric)
        out[f"{metric}_accuracy"] = rec.metric(metric)
        out[f"{metric}_percentile"] = round(rank["percentile"], 3)
        out[f"{metric}_better"] = rank["better"]
        out[f"{metric}_tied"] = rank["tied"]
    return out


def summarize(table, runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for order in sorted({r["order"] for r in runs}):
        rs = [r for r in runs if r["order"] == order and r["in_table"]]
        if not rs:
            continue
        med = {m: statistics.median(r[f"{m}_percentile"] for r in rs) for m in ("valid", "test")}
        summary[f"order_{order}"] = {
            "seeds": [r["seed"] for r in rs],
            "valid_percentiles": [r["valid_percentile"] for r in rs],
            "test_percentiles": [r["test_percentile"] for r in rs],
            "median_valid_percentile": med["valid"],
            "median_test_percentile": med["test"],
            "median_test_accuracy": statistics.median(r["test_accuracy"] for r in rs),
            "in_top_5_percent": {m: med[m] < 5.0 for m in ("valid", "test")},
        }
    accs = {
        m: sorted((r.metric(m) for r in table.values()), reverse=True) for m in ("valid", "test")
    }
    top5 = max(1, int(0.05 * len(table)))
    best_valid = table.optimum("valid")
    summary["table"] = {
        "architectures": len(table),
        "best_valid_accuracy": accs["valid"][0],
        "best_test_accuracy": accs["test"][0],
        "test_accuracy_of_best_by_valid": best_valid.test(),
        "valid_accuracy_at_top_5_percent": accs["valid"][top5 - 1],
        "test_accuracy_at_top_5_percent": accs["test"][top5 - 1],
        "median_valid_accuracy": statistics.median(accs["valid"]),
        "median_test_accuracy": statistics.median(accs["test"]),
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="search seeds 0..n-1 (default 3)")
    ap.add_argument("--orders", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    ap.add_argument("--steps", type=int, default=SETTINGS["steps"])
    ap.add_argument(
        "--warmup-steps",
        type=int,
        default=SETTINGS["warmup_steps"],
        help="weights-only steps before alpha moves (a remedy; default 0)",
    )
    ap.add_argument("--seed-list", type=int, nargs="+", default=None, help="instead of --seeds")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--table", type=Path, default=None, help="a table file (default: the shipped one)"
    )
    ap.add_argument(
        "--reuse", action="store_true", help="keep the searched cells in --out, look them up again"
    )
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    settings = {**SETTINGS, "steps": args.steps, "warmup_steps": args.warmup_steps}
    seeds = args.seed_list if args.seed_list is not None else list(range(args.seeds))
    table = load("digits") if args.table is None else load_file(args.table, "digits")
    old: dict[tuple[int, int], dict[str, Any]] = {}
    if args.reuse and args.out.exists():
        prev = json.loads(args.out.read_text())
        if prev.get("settings") == settings:
            old = {(r["order"], r["seed"]): r for r in prev["runs"]}
        else:
            print("settings differ from the stored run's; searching again", file=sys.stderr)
    runs = []
    for order in args.orders:
        for seed in seeds:
            run = old.get((order, seed)) or search(table, order, seed, settings)
            run = look_up(table, run)
            runs.append(run)
            if not run["in_table"]:
                print(f"order {order} seed {seed}: {run['value']} (not in the table)", flush=True)
                continue
            print(
                f"order {order} seed {seed}: {run['value']}  valid {run['valid_accuracy']:.4f} "
                f"(top {run['valid_percentile']:.1f}%)  test {run['test_accuracy']:.4f} "
                f"(top {run['test_percentile']:.1f}%)  {run['search_seconds']:.0f}s",
                flush=True,
            )
    summary = summarize(table, runs)
    for key, s in summary.items():
        if key.startswith("order_"):
            print(
                f"{key}: median top {s['median_valid_percentile']:.1f}% by validation, "
                f"{s['median_test_percentile']:.1f}% by test"
            )
    payload = {
        "benchmark": "nas-darts",
        "what": "DARTS-derived cells on digits, looked up in the digits NAS table; percentile = "
        "share of the table's architectures ahead of the cell (ties counted half), in percent",
        "table": {"name": "digits", "cell": table.meta["cell"], "protocol": table.meta["protocol"]},
        "settings": settings,
        "summary": summary,
        "runs": runs,
        "command": command_line(repo_relative(args.out.parent)),
        "date": now_utc(),
        "machine": machine_info(packages=("torch",)),
        "torch_threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
