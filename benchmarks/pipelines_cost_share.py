"""How EEIPU's extra candidates follow the cost share of a pipeline's last stage.

A memoizing tuner saves what a cached prefix costs, so its gain in candidates per budget depends
on how much of a fresh run the reusable prefix is. This sweep runs EEIPU, EI and CArBO on the
`hartmann-levy-lastNN` family of benchmarks/pipelines.py (the same two stages with the last stage
at 5-50% of a fresh trial's mean cost, simulated clock, same budget), then writes a summary page
and plot: EEIPU / EI candidates against the share, next to the bound 1 / share that a tuner
reusing the first stage in every trial would approach.

    python benchmarks/pipelines_cost_share.py                    # 5 seeds, every share, ~8 min
    python benchmarks/pipelines_cost_share.py --seeds 2 --shares 0.1,0.5 --out /tmp/cs
    python benchmarks/pipelines_cost_share.py --from docs/benchmarks/pipelines-cost-share/pipelines.json

The per-share tables and best-so-far plots go to the same folder (pipelines.md, via
benchmarks/pipelines.py); the summary is cost-share.md and cost-share.png.
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()  # before torch is imported, here and in the runs started from here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
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
    read_notes,
    repo_relative,
    single_thread_torch,
)
from metatune.benchmarks.methods import COLORS  # noqa: E402
from metatune.benchmarks.registry import COST_SHARES, cost_share_benchmarks  # noqa: E402
from metatune.benchmarks.runs import best_at_costs, summarize_runs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PIPELINES_SCRIPT = Path(__file__).resolve().with_name("pipelines.py")
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "pipelines-cost-share"
DEFAULT_METHODS = ("eeipu", "ei", "carbo")
REGRET_AT = (0.5, 1.0)  # fractions of the budget at which the page compares regret


def share_of(bench: str) -> float | None:
    """The last-stage share of a cost-share benchmark name, or None for another benchmark."""
    return cost_share_benchmarks().get(bench)


def per_seed_ratios(runs: list[dict[str, Any]], bench: str, method: str, base: str) -> list[float]:
    """Candidates of `method` over those of `base`, seed by seed (same warm-up in a seed)."""
    n = {
        (r["method"], r["seed"]): r["n_trials"]
        for r in runs
        if r.get("benchmark") == bench and not r.get("error")
    }
    return [
        n[(method, s)] / n[(base, s)]
        for (m, s) in sorted(n)
        if m == method and (base, s) in n and n[(base, s)] > 0
    ]


def fresh_last_share(runs: list[dict[str, Any]], bench: str) -> float:
    """Measured share of the last stage in trials that ran every stage (all methods pooled)."""
    last, total = 0.0, 0.0
    for r in runs:
        if r.get("benchmark") != bench or r.get("error"):
            continue
        for costs, reused in zip(
            r.get("stage_costs", []), r.get("reused_stages", []), strict=False
        ):
            if reused == 0 and costs and np.all(np.isfinite(costs)):
                last += costs[-1]
                total += sum(costs)
    return last / total if total > 0 else float("nan")


def regrets(runs: list[dict[str, Any]], bench: str, method: str, fraction: float) -> list[float]:
    """Best objective minus the optimum after `fraction` of the budget, one value per seed."""
    out = []
    for r in runs:
        if r.get("benchmark") == bench and r.get("method") == method and not r.get("error"):
            at = np.array([fraction * r["budget"]])
            out.append(
                float(best_at_costs(r["costs"], r["best_so_far"], at)[0]) - r["optimal_value"]
            )
    return out


def summary_rows(runs: list[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    stats = summarize_runs(runs)
    rows = []
    for bench in sorted(stats, key=lambda b: share_of(b) or 0.0):
        share = share_of(bench)
        if share is None:
            continue
        per = stats[bench]
        rows.append(
            {
                "benchmark": bench,
                "share": share,
                "measured_share": fresh_last_share(runs, bench),
                "ratio_by": {
                    m: per_seed_ratios(runs, bench, m, "ei")
                    for m in methods
                    if m in per and m != "ei" and "ei" in per
                },
                "stats": {m: per[m] for m in methods if m in per},
                "regret": {
                    frac: {m: regrets(runs, bench, m, frac) for m in methods if m in per}
                    for frac in REGRET_AT
                },
            }
        )
    return rows


def measure_real_shares(n_trials: int, seed: int = 0) -> list[dict[str, Any]]:
    """Each real pipeline's stage costs over `n_trials` random configurations, all run fresh.

    The cost share of what follows a reusable prefix is what bounds the candidates memoization
    can buy there (see the synthetic sweep), so the page shows where the real pipelines sit.
    """
    from metatune.benchmarks.ml_pipelines import ML_PIPELINES, run_ml_pipeline

    out = []
    load = os.getloadavg()[0]
    for name in ("vision", "language", "vision-post", "language-distill"):
        names = [s.name for s in ML_PIPELINES[name](cache=False).stages]
        run = run_ml_pipeline(name, "random", seed, budget=1e9, max_trials=n_trials)
        costs = np.array(
            [c for c, k in zip(run["stage_costs"], run["reused_stages"], strict=False) if k == 0]
        )
        shares = costs.mean(0) / costs.sum(1).mean()
        out.append(
            {
                "pipeline": name,
                "stages": names,
                "shares": [float(v) for v in shares],
                "mean_cost": float(costs.sum(1).mean()),
                "trials": len(costs),
                "load_average": [load, os.getloadavg()[0]],
            }
        )
        load = os.getloadavg()[0]
    return out


def plot(rows: list[dict[str, Any]], methods: Sequence[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(REGRET_AT), figsize=(5 + 4.2 * len(REGRET_AT), 4.2))
    left = axes[0]
    shares = np.array([r["share"] for r in rows])
    fine = np.linspace(shares.min(), shares.max(), 100)
    left.plot(100 * fine, 1 / fine, color="k", ls=":", lw=1, label="bound: 1 / share")
    left.axhline(2.0, color="gray", ls="--", lw=0.8, label="2x")
    for m in methods:
        have = [r for r in rows if r["ratio_by"].get(m)]
        if not have:
            continue
        med = [float(np.median(r["ratio_by"][m])) for r in have]
        lo = [med[i] - float(np.min(r["ratio_by"][m])) for i, r in enumerate(have)]
        hi = [float(np.max(r["ratio_by"][m])) - med[i] for i, r in enumerate(have)]
        left.errorbar(
            [100 * r["share"] for r in have],
            med,
            yerr=[lo, hi],
            color=COLORS.get(m),
            marker="o",
            capsize=3,
            label=f"{m} / ei (median, min-max)",
        )
    left.set_yscale("log")
    left.set_ylim(0.8, max(25.0, 1.2 / shares.min()))
    left.set_xlabel("last stage's share of a fresh trial's cost (%)")
    left.set_ylabel("candidates relative to EI")
    left.set_title("candidates per budget")
    left.legend(fontsize=8)
    for ax, frac in zip(axes[1:], REGRET_AT, strict=True):
        for m in methods:
            pts = [
                (100 * r["share"], r["regret"][frac][m]) for r in rows if r["regret"][frac].get(m)
            ]
            if not pts:
                continue
            x = [p[0] for p in pts]
            v = [np.maximum(np.asarray(p[1]), 1e-9) for p in pts]  # log scale: floor at 1e-9
            (line,) = ax.plot(
                x, [np.median(a) for a in v], marker="o", color=COLORS.get(m), label=m
            )
            q = np.array([np.percentile(a, [25, 75]) for a in v])
            ax.fill_between(x, q[:, 0], q[:, 1], color=line.get_color(), alpha=0.12)
        ax.set_yscale("log")
        ax.set_xlabel("last stage's share of a fresh trial's cost (%)")
        ax.set_ylabel("best objective - optimum (median, IQR)")
        ax.set_title(f"regret after {100 * frac:g}% of the budget")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def what_it_means(rows: list[dict[str, Any]]) -> str:
    """The page's "What it means" paragraph: EEIPU / EI candidates at the smallest and largest
    share, next to the bound 1 / share."""
    have = [r for r in rows if r["ratio_by"].get("eeipu")]
    if not have:
        return (
            "What it means: the smaller the last stage's share, the more a cached first stage "
            "saves, up to the bound 1 / share."
        )
    ends = [have[0], have[-1]] if len(have) > 1 else have
    said = [
        f"{np.median(r['ratio_by']['eeipu']):.2f}x at {100 * r['share']:g}% "
        f"(bound {1 / r['share']:.1f}x)"
        for r in ends
    ]
    return (
        "What it means: the smaller the last stage's share, the more a cached first stage "
        "saves, up to the bound 1 / share. EEIPU / EI candidates (median of the per-seed ratios): "
        + " and ".join(said)
        + "."
    )


def write_markdown(
    data: dict[str, Any], rows: list[dict[str, Any]], methods: Sequence[str], path: Path
) -> None:
    meta = data["meta"]
    lines = [
        "# EEIPU's extra candidates against the cost share of the last stage",
        "",
        "| last stage (measured) | EEIPU / EI | bound | EEIPU reuse | "
        + " | ".join(f"{m} candidates" for m in methods)
        + "".join(f" | {m} regret {100 * f:g}%" for f in REGRET_AT for m in methods)
        + " |",
        "| --- | ---: | ---: | ---: | "
        + " | ".join(["---:"] * (len(methods) * (1 + len(REGRET_AT))))
        + " |",
    ]
    for r in rows:
        st = r["stats"]
        mine = r["ratio_by"].get("eeipu")
        ratio = f"{np.median(mine):.2f}x [{min(mine):.2f}, {max(mine):.2f}]" if mine else "n/a"
        reuse = f"{100 * st['eeipu']['reuse_median']:.0f}%" if "eeipu" in st else "n/a"
        cands = [f"{st[m]['n_median']:g}" if m in st else "n/a" for m in methods]
        regret = [
            f"{np.median(r['regret'][f][m]):.2g}" if r["regret"][f].get(m) else "n/a"
            for f in REGRET_AT
            for m in methods
        ]
        lines.append(
            f"| {100 * r['share']:g}% ({100 * r['measured_share']:.1f}%) | {ratio} | "
            f"{1 / r['share']:.1f}x | {reuse} | " + " | ".join(cands + regret) + " |"
        )
    lines += [
        "",
        "![EEIPU / EI candidates against the last stage's share](cost-share.png)",
        "",
        what_it_means(rows),
        "",
        "Columns: EEIPU / EI = candidates of EEIPU over those of EI in the same seed (median "
        "[min, max] over seeds); bound = 1 / share, what a tuner that reused a cached first "
        "stage in every trial would approach; reuse = share of EEIPU's trials after warm-up that "
        "took the first stage from the cache (median); candidates: median; regret = best "
        "objective minus the optimum after half and all of the budget (median over seeds).",
        "",
    ]
    real = meta.get("real_shares")
    if real:
        lines += [
            "## Where the real pipelines sit",
            "",
            f"Stage costs of {real[0]['trials']} random configurations of each real pipeline, "
            "every stage run fresh (`--real`), as shares of a fresh trial's mean cost. What a "
            "trial reusing a prefix still pays is the share of the stages after it.",
            *(
                [
                    "",
                    "Load average (1 min) while they ran: "
                    + ", ".join(
                        f"{r['pipeline']} {r['load_average'][0]:.1f}-{r['load_average'][1]:.1f}"
                        for r in real
                    )
                    + f" on {os.cpu_count()} cores: other jobs shared the machine, so the "
                    "seconds are longer than on an idle one; the shares are what the page uses.",
                ]
                if all("load_average" in r for r in real)
                else []
            ),
            "",
            "| pipeline | mean fresh trial (s) | stage shares | still paid when a prefix is cached |",
            "| --- | ---: | --- | --- |",
        ]
        for r in real:
            stages, shares = r["stages"], r["shares"]
            own = ", ".join(f"{n} {100 * v:.0f}%" for n, v in zip(stages, shares, strict=True))
            after = ", ".join(
                f"after {stages[d - 1]}: {100 * sum(shares[d:]):.0f}%"
                for d in range(1, len(stages))
            )
            lines.append(f"| {r['pipeline']} | {r['mean_cost']:.2f} | {own} | {after} |")
        lines += [""]
    if meta.get("notes"):
        lines += [meta["notes"].strip(), ""]
    setup = (
        "Set-up: the `hartmann-levy-lastNN` synthetic pipelines (`metatune.benchmarks.pipelines."
        "cost_share_pipeline`): Hartmann3 then Levy2, objective their sum (optimum -3.863), "
        "logistic stage costs from 0.5x to 1.5x each stage's mean, a fresh trial costing 40 units "
        "on average, of which the last stage is NN%. Budget 2400 units for every share, the same "
        "10 Sobol warm-up points per seed for every method, a cached stage costs 0.1. Per-share "
        "tables and best-so-far plots: [pipelines.md](pipelines.md)."
    )
    here = repo_relative(path.parent)
    own = "rendered pipelines.md from the runs above" if meta.get("render_only") else "runs"
    commands = [(m["command"], None, f"{m['date']}, runs") for m in meta.get("merged", [])]
    commands.append((meta["command"], here, f"{meta['date']}, {own}"))
    commands.append((meta["summary_command"], here, "summarized the runs into this page"))
    facts = [
        f"Machine of the runs of {m['date']}: {m['machine']}"
        for m in meta.get("merged", [])
        if m.get("machine")
    ]
    last = "Machine of the last pipelines.py command" if meta.get("merged") else "Machine"
    facts.append(f"{last}: {meta['machine']}")
    lines += how_it_was_run(commands, facts, [setup])
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument(
        "--shares",
        default=",".join(f"{s:g}" for s in COST_SHARES),
        help=f"last-stage shares to run, from {list(COST_SHARES)}",
    )
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument(
        "--from",
        dest="source",
        default=None,
        metavar="JSON",
        help="summarize an earlier run's pipelines.json instead of running",
    )
    ap.add_argument("--notes", default=None, metavar="MD", help="Markdown appended to the page")
    ap.add_argument(
        "--real",
        type=int,
        default=0,
        metavar="N",
        help="also measure the stage cost shares of the real pipelines (vision, language, "
        "vision-post, language-distill) on N random configurations each (about 3-7 s per "
        "configuration on one core)",
    )
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    if "eeipu" not in methods or "ei" not in methods:
        ap.error(f"--methods must include eeipu and ei (the ratio compares them), got {methods}")
    try:
        shares = [float(s) for s in args.shares.split(",") if s]
    except ValueError:
        ap.error(f"--shares must be comma-separated numbers, got {args.shares!r}")
    unknown = [s for s in shares if s not in COST_SHARES]
    if unknown or not shares:
        ap.error(f"--shares: {unknown or 'none given'}; allowed: {list(COST_SHARES)}")
    notes = read_notes(ap, args.notes)
    if args.real < 0:
        ap.error(f"--real must be a number of configurations >= 0, got {args.real}")
    out = Path(args.out)
    summary_command = command_line(out)
    if args.source is None:
        benches = ",".join(b for b, s in cost_share_benchmarks().items() if s in shares)
        code = subprocess.run(
            [
                sys.executable,
                str(PIPELINES_SCRIPT),
                "--benchmarks",
                benches,
                "--methods",
                ",".join(methods),
                "--seeds",
                str(args.seeds),
                "--workers",
                str(args.workers),
                "--out",
                str(out),
            ]
        ).returncode
        if code == 2:  # benchmarks/pipelines.py refused its arguments (its message is printed)
            raise SystemExit(2)
        if code:
            print("some runs failed; see pipelines.md", file=sys.stderr)
        source = out / "pipelines.json"
    else:
        source = Path(args.source)
        code = 0
    try:
        data = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        ap.error(f"cannot read runs from {str(source)!r}: {exc}")
    data["meta"]["summary_command"] = summary_command
    data["meta"].setdefault("machine", format_machine(machine_info(("torch", "botorch"))))
    data["meta"].setdefault("date", now_utc())
    if notes:
        data["meta"]["notes"] = notes
    if args.real:
        single_thread_torch()
        data["meta"]["real_shares"] = measure_real_shares(args.real)
    rows = summary_rows(data["runs"], methods)
    if not rows:
        ap.error(f"no cost-share runs in {str(source)!r}")
    out.mkdir(parents=True, exist_ok=True)
    plot(rows, methods, out / "cost-share.png")
    write_markdown(data, rows, methods, out / "cost-share.md")
    print(f"wrote {out / 'cost-share.md'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
