"""Cluster simulator benchmark: average JCT and makespan of the fixed, las and goodput
allocators (metatune.goodput.sim) at three loads, 5 seeds each, on 16 nodes x 4 GPUs.

The job types are the package's measured traces (benchmarks/goodput_traces.py). The loads
were fixed before any run: 0.5, 1.0 and 1.5 times the cluster's capacity in GPU-seconds
requested at the jobs' own configurations; the middle load, 1.0, is the one where the
requested demand equals the capacity.

Writes docs/benchmarks/goodput-cluster.md, goodput-cluster.json and goodput-cluster.png.
Run: nice -n 10 .venv/bin/python benchmarks/goodput_cluster.py   (about 10 minutes, one core)
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
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    read_notes,
)
from metatune.goodput.sim import (  # noqa: E402
    Cluster,
    generate_workload,
    load_job_types,
    simulate,
)

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
LOADS = (0.5, 1.0, 1.5)
MIDDLE = 1.0
# (label, allocator, options): the three of the must-show, and `fixed` with the goodput-best
# batch for its requested replicas (what a single-job adaptive controller gives on a scheduler
# that knows nothing of goodput), which separates the batch choice from the allocation.
RUNS = (
    ("fixed", "fixed", {}),
    ("las", "las", {}),
    ("goodput", "goodput", {}),
    ("fixed+batch", "fixed", {"batch": "goodput"}),
)
ALLOCS = tuple(label for label, _, _ in RUNS)
TARGET = 0.30  # must-show: at least 30% lower average JCT than fixed at the middle load
# The measured job types scale poorly (two gloo processes on a shared CPU: the all-reduce
# costs several steps' compute); a second run divides their sync terms by 10, to show how much
# of the result rests on that.
VARIANTS = {"measured": 1.0, "sync/10": 0.1}


def scaled_sync(types: dict, factor: float) -> dict:
    """The job types with their sync parameters (alpha_r, beta_r, alpha_n, beta_n) x factor."""
    if factor == 1.0:
        return types
    out = {}
    for name, jt in types.items():
        p = jt.params
        params = dataclasses.replace(
            p,
            alpha_r=p.alpha_r * factor,
            beta_r=p.beta_r * factor,
            alpha_n=p.alpha_n * factor,
            beta_n=p.beta_n * factor,
        )
        out[name] = dataclasses.replace(jt, params=params)
    return out


def run(
    loads, seeds: int, num_jobs: int, cluster: Cluster, interval: float, penalty: float
) -> list[dict]:
    rows = []
    for variant, factor in VARIANTS.items():
        types = scaled_sync(load_job_types(), factor)
        rows += _run_variant(variant, types, loads, seeds, num_jobs, cluster, interval, penalty)
    return rows


def _run_variant(variant, types, loads, seeds, num_jobs, cluster, interval, penalty) -> list[dict]:
    rows = []
    for load in loads:
        for seed in range(seeds):
            jobs = generate_workload(
                types, load=load, num_jobs=num_jobs, seed=seed, cluster=cluster
            )
            for label, name, options in RUNS:
                t0 = time.process_time()
                r = simulate(
                    jobs,
                    name,
                    allocator_options=options,
                    cluster=cluster,
                    job_types=types,
                    interval=interval,
                    restart_penalty=penalty,
                )
                rows.append(
                    {
                        "variant": variant,
                        "load": load,
                        "seed": seed,
                        "allocator": label,
                        "average_jct": r.average_jct,
                        "median_jct": r.median_jct,
                        "p90_jct": float(np.percentile([j.jct for j in r.jobs], 90)),
                        "makespan": r.makespan,
                        "restarts": sum(j.restarts for j in r.jobs),
                        "gpu_hours": r.gpu_seconds / 3600,
                        "rounds": r.rounds,
                        "cpu_s": time.process_time() - t0,
                        "jct_by_type": {
                            t: float(np.mean([j.jct for j in r.jobs if j.job_type == t]))
                            for t in sorted({j.job_type for j in r.jobs})
                        },
                    }
                )
                print(
                    f"{variant} load {load} seed {seed} {label}: avg JCT {r.average_jct / 3600:.2f} h, "
                    f"makespan {r.makespan / 3600:.1f} h ({rows[-1]['cpu_s']:.1f} s)",
                    flush=True,
                )
    return rows


# --- summaries -------------------------------------------------------------------------------
def _pick(rows, load, name, key, variant="measured"):
    return [
        r[key]
        for r in sorted(rows, key=lambda r: r["seed"])
        if r["load"] == load and r["allocator"] == name and r.get("variant", "measured") == variant
    ]


def _med_range(xs: list[float], scale: float = 1.0, digits: int = 2) -> str:
    xs = [x / scale for x in xs]
    return f"{statistics.median(xs):.{digits}f} [{min(xs):.{digits}f}, {max(xs):.{digits}f}]"


def reductions(rows, load, base: str, variant: str = "measured") -> list[float]:
    """Per seed: 1 - goodput's average JCT / `base`'s (same workload)."""
    g = _pick(rows, load, "goodput", "average_jct", variant)
    b = _pick(rows, load, base, "average_jct", variant)
    return [1.0 - x / y for x, y in zip(g, b, strict=True)]


def _plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, loads = data["rows"], data["loads"]
    variants = [v for v in VARIANTS if _pick(rows, loads[0], "fixed", "average_jct", v)]
    fig, axes = plt.subplots(len(variants), 2, figsize=(11, 4.2 * len(variants)), squeeze=False)
    panels = [("average_jct", "average JCT (h)"), ("makespan", "makespan (h)")]
    for ax, variant in zip(axes, variants, strict=True):
        for a, (key, label) in zip(ax, panels, strict=True):
            _panel(a, rows, loads, key, label, variant)
        ax[0].set_title(f"average JCT, {data['seeds']} seeds ({variant} job types)")
        ax[1].set_title(f"makespan ({variant} job types)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _panel(a, rows, loads, key: str, label: str, variant: str) -> None:
    for i, name in enumerate(ALLOCS):
        vals = [np.array(_pick(rows, ld, name, key, variant)) / 3600 for ld in loads]
        a.plot(loads, [np.median(v) for v in vals], "o-", c=f"C{i}", label=name)
        a.fill_between(
            loads, [v.min() for v in vals], [v.max() for v in vals], color=f"C{i}", alpha=0.2
        )
        for ld, v in zip(loads, vals, strict=True):
            a.scatter([ld] * len(v), v, c=f"C{i}", s=8, alpha=0.6)
    a.set_xlabel("load (requested GPU-seconds / capacity)")
    a.set_ylabel(label + ", median; band: min-max over seeds")
    a.set_yscale("log")
    a.set_xticks(loads)
    a.legend()


def _tables(rows, loads, variant: str) -> list[str]:
    lines = [
        "| load | allocator | average JCT (h) | median JCT (h) | 90th pct JCT (h) | makespan (h) "
        "| restarts | GPU-hours |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ld in loads:
        for name in ALLOCS:
            pick = lambda key, ld=ld, name=name: _pick(rows, ld, name, key, variant)  # noqa: E731
            lines.append(
                f"| {ld:g} | {name} | {_med_range(pick('average_jct'), 3600)} "
                f"| {_med_range(pick('median_jct'), 3600)} "
                f"| {_med_range(pick('p90_jct'), 3600)} "
                f"| {_med_range(pick('makespan'), 3600)} "
                f"| {statistics.median(pick('restarts')):.0f} "
                f"| {statistics.median(pick('gpu_hours')):.0f} |"
            )
    lines += ["", "goodput's average JCT against the baselines, per seed on the same workload:", ""]
    lines += ["| load | vs fixed | vs las |", "| --- | --- | --- |"]
    for ld in loads:
        rf, rl = reductions(rows, ld, "fixed", variant), reductions(rows, ld, "las", variant)
        lines.append(f"| {ld:g} | {_pct(rf)} lower | {_pct(rl)} lower |")
    return lines + [""]


def _pct(xs: list[float]) -> str:
    return f"{100 * statistics.median(xs):.0f}% [{100 * min(xs):.0f}%, {100 * max(xs):.0f}%]"


def render(data: dict, out: Path, notes: str | None, rendered: str | None = None) -> None:
    rows = data["rows"]
    loads = data["loads"]
    mid = data["middle"]
    red_fixed = reductions(rows, mid, "fixed")
    red_las = reductions(rows, mid, "las")
    met_fixed = statistics.median(red_fixed) >= TARGET
    met_las = statistics.median(red_las) > 0
    lines = [
        "# Cluster simulator: goodput-aware allocation (metatune.goodput.sim)",
        "",
        f"{data['num_jobs']} jobs per workload on a simulated {data['nodes']} x "
        f"{data['gpus_per_node']}-GPU cluster, {data['seeds']} seeds per load, the allocators "
        "side by side on the same workloads: `fixed`, `las` and `goodput` for the must-show, "
        "and `fixed+batch` (fixed's queue and replicas, goodput's batch) to tell the batch "
        "choice from the allocation. Times in hours; median over seeds [min, max].",
        "",
        "## Must-show target",
        "",
        "| target | measured (median over seeds [min, max]) | met? |",
        "| --- | --- | --- |",
        f"| average JCT at least 30% lower than `fixed` at the middle load ({mid:g}) "
        f"| {_pct(red_fixed)} lower | {'yes' if met_fixed else 'no'} |",
        f"| ... and ahead of the least-attained-service baseline (`las`) "
        f"| {_pct(red_las)} lower | {'yes' if met_las else 'no'} |",
        "",
    ]
    if notes:  # what the numbers mean, written after the run (--notes)
        lines += [notes.strip(), ""]
    lines += ["## Average JCT and makespan by load (measured job types)", ""]
    lines += _tables(rows, loads, "measured")
    lines += ["![average JCT and makespan by load](goodput-cluster.png)", ""]
    if _pick(rows, loads[0], "fixed", "average_jct", "sync/10"):
        lines += [
            "## The same workloads with the sync costs divided by 10",
            "",
            "The job types measured here scale poorly: their all-reduce between two gloo "
            "processes on a shared CPU costs several steps' compute. To see how much of the "
            "result rests on that, the same seeds were run with every type's sync parameters "
            "(alpha_r, beta_r, alpha_n, beta_n) divided by 10, a job mix that scales better "
            "(the workload's requested run times are the same; the work they convert to "
            "follows the changed model).",
            "",
        ]
        lines += _tables(rows, loads, "sync/10")
    lines += ["## Job types", ""]
    lines += [
        "Measured here on CPU by `benchmarks/goodput_traces.py` (stored in the package as "
        "`metatune/goodput/sim/job_types.json`): wall times of plain training steps by "
        "per-replica micro-batch in one process and in two gloo DDP processes (20th "
        "percentile of 60 steps: other jobs shared the 2 cores), Pollux's step-time model "
        "fitted to them (more than two replicas, and several nodes, are the model's "
        "prediction with the sync slopes and cross-node terms at their priors: not "
        "measured), the noise scale while training at M0 at 24 geometric points (at fixed "
        "parameters, metatune.goodput.noise's estimator over 16 steps of 8 pieces x 32 "
        "examples; a running median of 3 over the points), and the M0 steps to within 5% of the run's best validation loss. The "
        "noise trace is indexed by the share of those steps done; a simulated job's size "
        "comes from the workload, which stretches the trace (these models train in seconds "
        "on a CPU, cluster jobs in hours).",
        "",
        "| type | model | M0 | step at m=16, 1 / 2 replicas (ms) | fit RMSLE | noise scale at 0 / 25 / 50 / 75 / 100% | M0 steps to target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in data["job_types"]:
        lines.append(
            f"| {t['name']} | {t['about']} | {t['base_batch']} | {t['step_1']:.2f} / {t['step_2']:.2f} "
            f"| {100 * t['fit_rmsle']:.1f}% | {' / '.join(f'{x:.0f}' for x in t['phi_at'])} | {t['steps_to_target']} |"
        )
    lines += [
        "",
        "## Set-up",
        "",
        f"- Cluster: {data['nodes']} nodes x {data['gpus_per_node']} GPUs; a round every "
        f"{data['interval']:.0f} s; a job whose replica count changes (its first start too) "
        f"loses {data['restart_penalty']:.0f} s.",
        f"- Workload: {data['num_jobs']} jobs, Poisson arrivals; the job mix uniform over the "
        "four types; requested replicas 1, 2, 4, 8, 16 with probabilities 0.4, 0.25, 0.2, 0.1, "
        "0.05; requested total batch M0 per requested replica (capped at 64 M0); a job's run "
        "time on its requested configuration log-uniform in [5 min, 5 h], converted to the "
        "M0-equivalent steps it must make through its type's model. Load: arrivals per second "
        "x expected requested GPU-seconds per job / the cluster's GPUs.",
        "- `fixed`: strict FIFO on the requested replicas and batch, no preemption. `las`: "
        "Tiresias-like, queues at 1 and 8 attained GPU-hours, FIFO within a queue, "
        "preemptive, requested replicas and batch, a job that does not fit is skipped. "
        "`fixed+batch`: `fixed` with each job's batch the goodput-best for its requested "
        "replicas, re-chosen every round (not part of the must-show). "
        "`goodput`: every round, each job's best plan (batch, accumulation) and learning-rate "
        "factor for each replica count from its goodput model at its point of training, "
        "replica counts maximizing the harmonic mean (p = -1) of speedups over one replica, "
        "a change discounted by the restart penalty over a 600 s horizon, SciPy's MILP.",
        "- What the allocators know: `goodput` is given each job type's model (the "
        "measured traces) and the job's true progress; Pollux fits its models online from "
        "the job's own measurements, so this is the best case for it. `fixed` and `las` run "
        "the batch the user asked for, which grows with the replicas they asked for.",
        "",
    ]
    lines += how_it_was_run(
        [
            (r["command"], "docs/benchmarks", f"{r['date']}, {r['minutes']:.0f} min")
            for r in data["runs"]
        ],
        [
            f"Machine: {data['machine']}",
            f"Traces: measured {data['traces_date']} by `python benchmarks/goodput_traces.py` "
            f"on {data['traces_machine']}; noise points re-derived from the raw estimates by "
            "`python benchmarks/goodput_traces.py --rederive` (running median of 3).",
            *([f"Page written again from the JSON: `{rendered}`."] if rendered else []),
        ],
    )
    (out / "goodput-cluster.md").write_text("\n".join(lines) + "\n")


def _type_rows() -> tuple[list[dict], dict]:
    from importlib import resources

    raw = json.loads(resources.files("metatune.goodput.sim").joinpath("job_types.json").read_text())
    out = []
    for t in raw["job_types"]:
        meas = {(m, s, k): v for m, s, k, v in t["step_time"]["measured"]}
        phi = t["noise"]["noise_scale"]
        out.append(
            {
                "name": t["name"],
                "about": t["about"],
                "base_batch": t["base_batch"],
                "step_1": 1e3 * meas.get((16, 0, 1), float("nan")),
                "step_2": 1e3 * meas.get((16, 0, 2), float("nan")),
                "fit_rmsle": t["step_time"]["fit_rmsle"],
                "phi_at": [
                    float(np.exp(np.interp(f, t["noise"]["fraction"], np.log(phi))))
                    for f in (0.0, 0.25, 0.5, 0.75, 1.0)
                ],
                "steps_to_target": t["steps_to_target"],
            }
        )
    return out, raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=160)
    ap.add_argument("--loads", default=",".join(str(x) for x in LOADS))
    ap.add_argument("--from-json", default=None, help="re-render from an earlier JSON")
    ap.add_argument("--notes", default=None, help="Markdown placed after the summary table")
    args = ap.parse_args()
    notes = read_notes(ap, args.notes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
    else:
        cluster = Cluster(16, 4)
        loads = [float(x) for x in args.loads.split(",")]
        start = time.time()
        rows = run(loads, args.seeds, args.jobs, cluster, 60.0, 30.0)
        types, raw = _type_rows()
        data = {
            "rows": rows,
            "loads": loads,
            "middle": MIDDLE if MIDDLE in loads else loads[len(loads) // 2],
            "seeds": args.seeds,
            "num_jobs": args.jobs,
            "nodes": cluster.nodes,
            "gpus_per_node": cluster.gpus_per_node,
            "interval": 60.0,
            "restart_penalty": 30.0,
            "job_types": types,
            "traces_date": raw["date"],
            "traces_machine": raw["machine"],
            "machine": format_machine(machine_info(("numpy", "scipy"))),
            "runs": [
                {
                    "command": command_line(out),
                    "date": now_utc(),
                    "minutes": (time.time() - start) / 60,
                }
            ],
        }
        (out / "goodput-cluster.json").write_text(json.dumps(data, indent=1) + "\n")
    _plot(data, out / "goodput-cluster.png")
    render(data, out, notes, command_line(out) if args.from_json else None)


if __name__ == "__main__":
    main()
