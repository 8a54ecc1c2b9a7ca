"""How long one ask takes: EEIPU against cost-blind EI at 25, 50 and 100 trials.

Each (method, seed) run drives a synthetic pipeline of metatune.benchmarks.pipelines on its
simulated clock with a budget too large to spend (so EEIPU's cost term is on at every ask, its
slowest case) for 100 trials and more, single-threaded, one run at a time. The ask time at n
trials is the median of the asks made with n-2 .. n+2 trials told; the page gives the median
and spread over seeds and the median of the per-seed ratios EEIPU / EI. Writes
docs/benchmarks/pipelines-ask-time.{json,md}.

    python benchmarks/pipelines_ask_time.py                       # 5 seeds, ~4 min
    python benchmarks/pipelines_ask_time.py --seeds 2 --out /tmp/ask
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()  # before torch is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    repo_relative,
    single_thread_torch,
)
from metatune.benchmarks.methods import check_method, parse_method  # noqa: E402
from metatune.benchmarks.pipelines import run_synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "benchmarks"
AT_TRIALS = (25, 50, 100)
WINDOW = 2  # asks made with n - WINDOW .. n + WINDOW trials told
NEVER_SPENT = 1e9  # a budget no run spends: eta stays near 1, the cost term always on


def ask_times_at(ask_seconds: list[float], at: tuple[int, ...] = AT_TRIALS) -> dict[int, float]:
    """Median ask time with about n trials told, for each n in `at` the run reached."""
    out = {}
    for n in at:
        window = ask_seconds[max(n - WINDOW, 0) : n + WINDOW + 1]
        if len(ask_seconds) > n + WINDOW:
            out[n] = float(np.median(window))
    return out


def run_one(method: str, seed: int, pipeline: str, n_trials: int) -> dict[str, Any]:
    name, options = parse_method(method)
    start = time.perf_counter()
    run = run_synthetic(
        name,
        seed,
        NEVER_SPENT,
        pipeline=pipeline,
        optimizer_options=options or None,
        max_trials=n_trials,
    )
    return {
        "method": method,
        "seed": seed,
        "pipeline": pipeline,
        "ask_seconds": list(run.ask_seconds),
        "best": run.best,
        "seconds": time.perf_counter() - start,
    }


def summarize(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Per method and n: median [min, max] over seeds of the ask time; per variant, the median
    of its per-seed ratios to the last method (the reference, EI)."""
    ref = methods[-1]
    by = {(r["method"], r["seed"]): ask_times_at(r["ask_seconds"]) for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    out: dict[str, Any] = {}
    for m in methods:
        for n in AT_TRIALS:
            vals = [by[(m, s)][n] for s in seeds if n in by.get((m, s), {})]
            if not vals:
                continue
            row = {"median": float(np.median(vals)), "min": min(vals), "max": max(vals)}
            if m != ref:
                ratios = [
                    by[(m, s)][n] / by[(ref, s)][n]
                    for s in seeds
                    if n in by.get((m, s), {}) and n in by.get((ref, s), {})
                ]
                if ratios:
                    row["ratio"] = float(np.median(ratios))
                    row["ratio_max"] = float(max(ratios))
            out[f"{m}@{n}"] = row
    return out


def render(data: dict[str, Any]) -> str:
    methods, summary = data["methods"], data["summary"]
    ref = methods[-1]
    header = "| trials told | " + " | ".join(f"{m} ask (s)" for m in methods)
    header += " | " + " | ".join(f"{m} / {ref}" for m in methods[:-1]) + " |"
    lines = [
        "# Ask time of the pipeline optimizers",
        "",
        header,
        "| ---: | " + " | ".join("---:" for _ in range(2 * len(methods) - 1)) + " |",
    ]
    for n in AT_TRIALS:
        cells = []
        for m in methods:
            row = summary.get(f"{m}@{n}")
            cells.append(
                f"{row['median']:.3f} [{row['min']:.3f}, {row['max']:.3f}]" if row else "-"
            )
        for m in methods[:-1]:
            row = summary.get(f"{m}@{n}", {})
            cells.append(
                f"{row['ratio']:.2f}x (max {row['ratio_max']:.2f}x)" if "ratio" in row else "-"
            )
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    target = summary.get(f"{methods[0]}@100", {})
    verdict = (
        f"At 100 trials {methods[0]}'s ask takes {target['ratio']:.2f}x {ref}'s (median over "
        f"seeds of the per-seed ratio; the worst seed {target['ratio_max']:.2f}x): the issue "
        f"asks for at most 2x, which is {'met' if target['ratio'] <= 2 else 'not met'}."
        if "ratio" in target
        else "No run reached 100 trials."
    )
    lines += [
        "",
        "What it means: " + verdict + " Cells: median [min, max] over "
        f"{len(data['seeds'])} seeds of the median of the 5 asks made with n-2 .. n+2 trials "
        "told; the ratio column is the median of the per-seed ratios (and the largest). The "
        f"pipeline is `{data['pipeline']}` on its simulated clock with a budget no run spends, "
        "so EEIPU's cost term and prefix pool are on at every ask (its slowest case).",
        "",
    ]
    lines += how_it_was_run(
        [(data["command"], data.get("out_dir"), f"{data['date']}, {data['minutes']:.1f} min")],
        facts=[
            f"Machine: {format_machine(data['machine'])}",
            "One run at a time, one thread"
            + (
                f"; load average of the machine at the end of the runs {data['load']:.1f} (other "
                "jobs on the same cores: the times are inflated, the ratios less so)."
                if "load" in data
                else "."
            ),
        ],
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", default="eeipu,ei", help="comma-separated; the last is the reference"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pipeline", default="branin-hartmann-ackley")
    parser.add_argument("--trials", type=int, default=103, help="trials per run")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--from", dest="source", help="re-render the page from this JSON")
    args = parser.parse_args(argv)
    if args.source:
        data = json.loads(Path(args.source).read_text())
        Path(args.out, "pipelines-ask-time.md").write_text(render(data))
        return
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        check_method(m)
    single_thread_torch()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        for m in methods:
            r = run_one(m, seed, args.pipeline, args.trials)
            print(f"{m} seed {seed}: {ask_times_at(r['ask_seconds'])} ({r['seconds']:.0f} s)")
            runs.append(r)
    data = {
        "methods": methods,
        "seeds": list(range(args.seeds)),
        "pipeline": args.pipeline,
        "summary": summarize(runs, methods),
        "runs": runs,
        "command": command_line(out),
        "out_dir": repo_relative(out),
        "date": now_utc(),
        "minutes": (time.perf_counter() - start) / 60,
        "machine": machine_info(),
        "load": os.getloadavg()[0],
    }
    (out / "pipelines-ask-time.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / "pipelines-ask-time.md").write_text(render(data))
    print(render(data))


if __name__ == "__main__":
    main()
