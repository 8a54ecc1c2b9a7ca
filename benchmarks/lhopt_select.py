"""Choose a meta-training run's policy by the rule of docs/lhopt-selection-rule.md.

Every snapshot of each run (and the policy it started from) is scored on the validation suite
(`metatune.benchmarks.lhopt_suite.VALIDATION_SUITES`, `--suite`: families never trained on and never
reported as held-out results): the median over tasks of the median speedup to the best cell of
the AdamW grid, ties broken by the number of tasks more than 2% off that cell's loss, then by the
later iteration; with several runs, the best of their picks wins (ties: the run named first).
The shipped policy is scored the same way, for the rule's last condition. `--copy-to` copies
the winner there when it scores above the shipped policy.

    python benchmarks/lhopt_select.py metatune-runs/lhopt-vec metatune-runs/lhopt-vec-b
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
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

single_thread_torch()

import numpy as np  # noqa: E402

from metatune.benchmarks.lhopt_suite import (  # noqa: E402
    LRS,
    SCHEDULES,
    VALIDATION_SUITES,
    evaluate,
    suite_score,
)
from metatune.lhopt import Policy  # noqa: E402
from metatune.lhopt.controller import default_policy_path  # noqa: E402

SEEDS = (0, 1, 2)


def candidates(run: Path, init: str) -> list[tuple[str, int, Path]]:
    """(label, iteration, file): the run's start policy (iteration 0), then its snapshots."""
    found = [(f"start ({init})", 0, Path(init))] if init else []
    for f in sorted((run / "snapshots").glob("policy-*.pt")):
        m = re.fullmatch(r"policy-(\d+)\.pt", f.name)
        if m:
            found.append((f"iteration {int(m.group(1))}", int(m.group(1)), f))
    return found


def score(policy: Policy, cache: dict[str, list], suite: str = "v1") -> dict[str, Any]:
    results = {}
    for task in VALIDATION_SUITES[suite]:
        _, _, r = evaluate(task, policy, SEEDS, cache)
        results[task.name] = {k: r[k] for k in ("best_cell", "speedup", "best_ratio")}
    speed, far = suite_score(results)
    return {"score": speed, "far": far, "tasks": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+", help="metatune lhopt train --out folders (with snapshots/)")
    ap.add_argument("--out", default="docs/benchmarks")
    ap.add_argument("--grid-cache", default="metatune-runs/lhopt-validation-grid.json")
    ap.add_argument(
        "--suite",
        choices=sorted(VALIDATION_SUITES),
        default="v1",
        help="validation suite: v1 (rule 1), v2 (rule 2) of docs/lhopt-selection-rule.md",
    )
    ap.add_argument(
        "--copy-to", default="", help="copy the winner here if it beats the shipped policy"
    )
    args = ap.parse_args(argv)
    import torch

    found: list[tuple[str, str, int, Path]] = []
    for run in map(Path, args.runs):
        ckpt = run / "checkpoint.pt"
        if not ckpt.exists():
            ap.error(f"{run} is not a meta-training folder (no checkpoint.pt)")
        config = torch.load(ckpt, map_location="cpu", weights_only=True)["config"]
        found += [(run.name, *c) for c in candidates(run, config.get("init_policy", ""))]
    cache_path = Path(args.grid_cache)
    cache: dict[str, list] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    rows, scored = [], {}
    for run_name, label, iteration, path in found:
        key = str(path.resolve())
        if key not in scored:  # runs started from the same policy share its score
            scored[key] = score(Policy.load(path), cache, args.suite)
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache))
        s = scored[key]
        rows.append(
            {"run": run_name, "label": f"{run_name}: {label}", "iteration": iteration,
             "file": str(path), **s}
        )  # fmt: skip
        print(f"{run_name}: {label}: score {s['score']:.3f}, {s['far']} tasks > 1.02", flush=True)
    shipped_key = str(default_policy_path().resolve())  # often also a run's start policy
    if shipped_key not in scored:
        scored[shipped_key] = score(Policy.load(default_policy_path()), cache, args.suite)
    shipped = scored[shipped_key]
    order = [Path(r).name for r in args.runs]
    picks = [
        max(
            (r for r in rows if r["run"] == name),
            key=lambda r: (r["score"], -r["far"], r["iteration"]),
        )
        for name in order
    ]
    pick = max(picks, key=lambda r: (r["score"], -r["far"], r["iteration"], -order.index(r["run"])))
    beats = pick["score"] > shipped["score"]
    if beats and args.copy_to:
        shutil.copyfile(pick["file"], args.copy_to)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lhopt-selection.json").write_text(
        json.dumps(
            {
                "candidates": rows,
                "shipped": shipped,
                "picks": [p["label"] for p in picks],
                "pick": pick["label"],
                "beats_shipped": beats,
            },
            indent=1,
        )
    )
    names = [t.name for t in VALIDATION_SUITES[args.suite]]
    lines = [
        f"# Choosing a policy on the validation families ({', '.join(order)})",
        "",
        "| candidate | score (median speedup) | tasks > 2% off | "
        + " | ".join(f"{n}: speedup / best-loss ratio" for n in names)
        + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for r in [*rows, {"label": "shipped `default`", **shipped}]:
        cells = [
            f"{np.median(r['tasks'][n]['speedup']):.2f} / {np.median(r['tasks'][n]['best_ratio']):.3f}"
            for n in names
        ]
        lines.append(
            f"| {r['label']} | {r['score']:.2f} | {r['far']} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "What it means: each run's pick: "
        + ", ".join(f"{p['label']} ({p['score']:.2f})" for p in picks)
        + f". The rule picks **{pick['label']}** (score {pick['score']:.2f}); "
        + (
            f"it scores above the shipped policy ({shipped['score']:.2f}), so it may replace "
            "it if the recovery tests pass."
            if beats
            else f"it does not score above the shipped policy ({shipped['score']:.2f}), so "
            "the shipped policy stays."
        ),
        "",
        "The rule: docs/lhopt-selection-rule.md. Validation tasks (3 seeds each; grid AdamW "
        f"x {list(LRS)} with {list(SCHEDULES)}): "
        + "; ".join(f"{t.name}: {t.describe()}" for t in VALIDATION_SUITES[args.suite])
        + ".",
        "",
    ]
    lines += how_it_was_run(
        [
            (
                "python benchmarks/lhopt_select.py "
                + shlex.join(argv if argv is not None else sys.argv[1:]),
                repo_relative(out),
                "",
            )
        ],
        [f"Date: {now_utc()}", f"Machine: {format_machine(machine_info(packages=('torch',)))}"],
    )
    (out / "lhopt-selection.md").write_text("\n".join(lines) + "\n")
    print(f"pick: {pick['label']} ({pick['file']}); beats the shipped policy: {beats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
