"""Where memoization cannot help: EEIPU, its EI-floor hedge and cost-blind EI, paired by seed.

Two synthetic pipelines of metatune.benchmarks (simulated clock, same budget, the same 10 Sobol
warm-up points per seed for every method): `hartmann-levy-last50`, whose last stage is half of a
fresh trial's cost (a cached first stage saves at most half), and `hartmann-idle-last10`, whose
cheap last stage does not change the objective (re-running it on a cached first stage can never
improve). The page gives, per method, candidates, reuse, regret after a quarter, half and all of
the budget (median and quartiles over seeds), seeds won and lost against EI (ties within 1e-6
relative count as neither) with a two-sided Wilcoxon signed-rank p, and the normalized area
under the log-regret-versus-cost curve. Writes docs/benchmarks/pipelines-hedge/{runs.jsonl,
hedge.md}.

    python benchmarks/pipelines_hedge.py                                  # 10 seeds, ~40 min
    python benchmarks/pipelines_hedge.py --seeds 0-2 --out /tmp/hedge
    python benchmarks/pipelines_hedge.py --from docs/benchmarks/pipelines-hedge/runs.jsonl
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()  # before torch is imported

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
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
from metatune.benchmarks.registry import PIPELINE_BENCHMARKS  # noqa: E402
from metatune.benchmarks.runs import paired_comparison, same_value  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "pipelines-hedge"
DEFAULT_BENCHMARKS = ("hartmann-idle-last10", "hartmann-levy-last50")
DEFAULT_METHODS = ("eeipu", "eeipu+hedge=0.5", "ei")
_RENDERED = "rendered this page from the runs"
AT = (0.25, 0.5, 1.0)  # fractions of the budget at which regret is read
REGRET_FLOOR = 1e-6  # log-regret area: regrets below this count as this


def parse_seeds(text: str) -> list[int]:
    """ "10" -> 0..9; "3-9" -> 3..9; "0,2,5" -> those."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    if "," in text:
        return [int(s) for s in text.split(",")]
    return list(range(int(text)))


def run_one(bench: str, method: str, seed: int) -> dict[str, Any]:
    name, options = parse_method(method)
    start = time.perf_counter()
    run = PIPELINE_BENCHMARKS.get(bench).run(name, seed, optimizer_options=options or None)
    return {
        "bench": bench,
        "method": method,
        "seed": seed,
        "best": run.best,
        "n": run.n_trials,
        "opt": run.optimal_value,
        "budget": run.budget,
        "secs": time.perf_counter() - start,
        "best_so_far": list(run.best_so_far),
        "costs": list(run.costs),
        "reused": sum(1 for r in run.reused_stages[run.n_warmup :] if r),
        "ask_med": float(np.median(run.ask_seconds)) if run.ask_seconds else math.nan,
    }


def regret_at(r: dict[str, Any], frac: float) -> float:
    """Best-so-far minus the optimum once `frac` of the budget is spent (inf before a trial)."""
    spent = frac * r["budget"]
    best = [b for b, c in zip(r["best_so_far"], r["costs"], strict=True) if c <= spent]
    return best[-1] - r["opt"] if best else math.inf


def log_regret_area(r: dict[str, Any], n_grid: int = 200) -> float:
    """Mean of log10(regret) over an even grid of the budget (regret floored at 1e-6): lower is
    better; it rewards finding good values early, not only at the end."""
    grid = np.linspace(0, r["budget"], n_grid + 1)[1:]
    vals = [max(regret_at(r, g / r["budget"]), REGRET_FLOOR) for g in grid]
    finite = [math.log10(v) for v in vals if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _q(vals: Sequence[float]) -> str:
    v = np.asarray(vals, float)
    return f"{np.median(v):.3g} [{np.percentile(v, 25):.2g}, {np.percentile(v, 75):.2g}]"


def _vs(ours: dict[int, float], ei: dict[int, float]) -> str:
    """ "W/L p" of `ours` against EI by seed (lower is better; ties are neither)."""
    common = sorted(set(ours) & set(ei))
    wins = sum(1 for s in common if ours[s] < ei[s] and not same_value(ours[s], ei[s]))
    losses = sum(1 for s in common if ours[s] > ei[s] and not same_value(ours[s], ei[s]))
    _, _, p = paired_comparison(ei, ours)
    return f"{wins}/{losses}" + (f" (p {p:.2g})" if p is not None else "")


def render(data: dict[str, Any]) -> str:
    runs = data["runs"]
    methods = data["methods"]
    lines = ["# Where memoization cannot help: EEIPU, its hedge and cost-blind EI", ""]
    verdicts = []
    for bench in data["benchmarks"]:
        by = {
            m: {r["seed"]: r for r in runs if r["bench"] == bench and r["method"] == m}
            for m in methods
        }
        ei = by.get("ei", {})
        k = len(next(iter(by.values())))
        lines += [
            f"## {bench} ({k} seeds)",
            "",
            "| method | candidates | reuse | regret 25% | regret 50% | regret 100% | vs EI at 50% "
            "| vs EI at 100% | log-regret area | vs EI (area) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for m in methods:
            d = by[m]
            if not d:
                continue
            reg = {f: {s: regret_at(r, f) for s, r in d.items()} for f in AT}
            area = {s: log_regret_area(r) for s, r in d.items()}
            ref = {f: {s: regret_at(r, f) for s, r in ei.items()} for f in AT}
            ref_area = {s: log_regret_area(r) for s, r in ei.items()}
            vs = (
                [_vs(reg[0.5], ref[0.5]), _vs(reg[1.0], ref[1.0]), _vs(area, ref_area)]
                if m != "ei"
                else ["-", "-", "-"]
            )
            lines.append(
                f"| {m} | {np.median([r['n'] for r in d.values()]):.0f} "
                f"| {np.median([r['reused'] for r in d.values()]):.0f} "
                + " ".join(f"| {_q(list(reg[f].values()))}" for f in AT)
                + f" | {vs[0]} | {vs[1]} | {np.median(list(area.values())):.2f} | {vs[2]} |"
            )
            if m != "ei":
                med, ref_med = (
                    np.median(list(reg[1.0].values())),
                    np.median(list(ref[1.0].values())),
                )
                iqr = np.subtract(*np.percentile(list(ref[1.0].values()), [75, 25]))
                if same_value(med, ref_med):
                    word = "a tie with EI's (within 1e-6)"
                elif med < ref_med:
                    word = "below EI's"
                else:
                    word = f"above EI's by {med - ref_med:.2g} (EI's interquartile range {iqr:.2g})"
                verdicts.append(
                    f"{bench}, {m}: median final regret {med:.3g}, {word}, "
                    f"seeds won/lost against EI {_vs(reg[1.0], ref[1.0])}"
                )
        lines.append("")
    lines[2:2] = [
        "What it means: " + "; ".join(verdicts) + ".",
        "",
        "Columns: candidates and reuse (trials after warm-up that took the first stage from the "
        "cache) are medians over seeds; regret = best found minus the optimum after a quarter, "
        "half and all of the budget, median [quartiles]; vs EI = seeds with a lower / higher "
        "regret than EI's in the same seed (ties within 1e-6 relative count as neither) and "
        "a two-sided Wilcoxon signed-rank p of the per-seed differences; log-regret area = "
        "mean of log10(regret) over the budget (floored at 1e-6), lower is better.",
        "",
    ]
    lines += how_it_was_run(
        [(c["command"], c.get("out_dir"), c["about"]) for c in data["commands"]],
        facts=[f"Machine: {format_machine(data['machine'])}"],
        intro=[
            "Synthetic pipelines of `metatune.benchmarks.registry.PIPELINE_BENCHMARKS` at their "
            "default budget (2400 units), simulated clock, a cached stage at 0.1 units; every "
            "method of a seed starts from the same 10 Sobol warm-up points. One run at a time, "
            "one thread."
        ],
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", default=",".join(DEFAULT_BENCHMARKS))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="EI must be one")
    parser.add_argument("--seeds", default="10", help="a count, a range a-b, or a list a,b")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--from", dest="source", help="render from these runs (JSON lines)")
    args = parser.parse_args(argv)
    benches = [b for b in args.benchmarks.split(",") if b]
    methods = [m for m in args.methods.split(",") if m]
    for b in benches:
        PIPELINE_BENCHMARKS.get(b)  # an unknown name fails now
    for m in methods:
        check_method(m)
    if "ei" not in methods:
        parser.error("--methods must include ei, the reference")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "commands.json"
    commands = json.loads(meta_path.read_text()) if meta_path.exists() else []
    start = time.perf_counter()
    if args.source:
        runs = [json.loads(line) for line in Path(args.source).read_text().splitlines() if line]
        about = _RENDERED
    else:
        single_thread_torch()
        runs = []
        with (out / "runs.jsonl").open("a") as fh:
            for bench in benches:
                for seed in parse_seeds(args.seeds):
                    for m in methods:
                        r = run_one(bench, m, seed)
                        print(f"{bench} {m} seed {seed}: regret {r['best'] - r['opt']:.3g}")
                        fh.write(json.dumps(r) + "\n")
                        fh.flush()
        runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
        about = f"{now_utc()}, {(time.perf_counter() - start) / 60:.1f} min, runs"
    entry = {"command": command_line(out), "out_dir": repo_relative(out), "about": about}
    # only the latest render is listed: a re-render replaces the previous one's entry
    if args.source:
        commands = [c for c in commands if c["about"] != _RENDERED]
    commands.append(entry)
    meta_path.write_text(json.dumps(commands, indent=1) + "\n")
    data = {
        "benchmarks": benches,
        "methods": methods,
        "runs": [r for r in runs if r["bench"] in benches and r["method"] in methods],
        "commands": commands,
        "machine": machine_info(),
    }
    (out / "hedge.md").write_text(render(data))
    print(render(data))


if __name__ == "__main__":
    main()
