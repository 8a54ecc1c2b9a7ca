"""Architecture searchers on tabular NAS benchmarks: regret against each table's optimum.

Every searcher (random, regularized evolution, local search, nas-bo) runs through an ordinary
`Study` on a cell space, searching by validation accuracy; after each query the architecture
with the best validation so far is scored by its test accuracy, and its regret is the table's
best test accuracy minus that. Tables: NAS-Bench-Graph (installed with the nas-bench-graph
package; 26,206 GNN architectures per dataset) and the digits table that ships with metatune.
Writes docs/benchmarks/nas.{json,md,png}; runs are cached in --runs, so an interrupted run
continues where it stopped.

    python benchmarks/nas.py                                   # 4 tables, 50 seeds, 150 queries
    python benchmarks/nas.py --seeds 5 --tables cora --out /tmp/nas
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    make_progress,
    now_utc,
    single_thread_torch,
)
from metatune.benchmarks.nas_bench_graph import DATASETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("random", "regularized-evolution", "local-search", "nas-bo")
GRAPH_TABLES = DATASETS  # NAS-Bench-Graph's nine, in its order
TABLES = (*GRAPH_TABLES, "digits")
CHECKPOINTS = (10, 25, 50, 100, 150)
SHOWN = ("nas-bo", "regularized-evolution", "local-search", "random")
COLORS = {"nas-bo": "C3", "regularized-evolution": "C0", "local-search": "C1", "random": "C7"}


# -- one run -----------------------------------------------------------------------------------
def _table(name: str) -> tuple[Any, Callable[[Any], tuple[float, float]], float, float]:
    """(cell, value -> (validation, test), best test and best validation in the table)."""
    if name == "digits":
        from metatune.nas.tables import load

        table = load("digits")

        def score(value: Any) -> tuple[float, float]:
            rec = table.lookup(value)
            return rec.valid(), rec.test()

        best = (max(r.test() for r in table.values()), max(r.valid() for r in table.values()))
        return table.cell, score, *best
    from metatune.benchmarks.nas_bench_graph import load_table

    graph = load_table(name)

    def graph_score(value: Any) -> tuple[float, float]:
        rec = graph.lookup(value)
        return float(rec["valid_perf"]), float(rec["perf"])

    return graph.cell, graph_score, graph.best_test, graph.best_valid


def run_one(table: str, method: str, seed: int, queries: int) -> dict[str, Any]:
    """One search: the regret of the best-by-validation architecture after every query."""
    single_thread_torch()
    import logging

    from metatune import Space, Study

    logging.getLogger("metatune").setLevel(logging.WARNING)
    cell, score, best_test, best_valid_in_table = _table(table)
    tests: dict[int, float] = {}

    def objective(params: dict[str, Any]) -> float:
        number = len(tests)
        tests[number] = float("nan")
        valid, tests[number] = score(params["arch"])  # KeyError (not in the table): a failed trial
        return valid

    study = Study(Space({"arch": cell}), optimizer=method, direction="maximize", seed=seed)
    start = time.process_time()
    study.optimize(objective, n_trials=queries, show_progress=False)
    seconds = time.process_time() - start
    regret, valid_regret, best_valid, best_at = [], [], -np.inf, None
    for i, t in enumerate(study.trials):
        if t.value is not None and t.value > best_valid:
            best_valid, best_at = t.value, i
        regret.append(best_test - tests[best_at] if best_at is not None else float("nan"))
        valid_regret.append(best_valid_in_table - best_valid)
    failed = sum(t.value is None for t in study.trials)
    return {
        "table": table,
        "method": method,
        "seed": seed,
        "regret": regret,
        "valid_regret": valid_regret,
        "failed": failed,
        "cpu_seconds": seconds,
    }


# -- statistics --------------------------------------------------------------------------------
def median_ci(x: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """The median and a distribution-free confidence interval for it (binomial order
    statistics), exact for continuous data and conservative with ties."""
    from scipy.stats import binom

    x = np.sort(np.asarray(x, dtype=float))
    n = len(x)
    lo = int(binom.ppf((1 - level) / 2, n, 0.5))
    hi = int(binom.isf((1 - level) / 2, n, 0.5))
    return float(np.median(x)), float(x[max(lo - 1, 0)]), float(x[min(hi, n - 1)])


def paired_test(ours: np.ndarray, theirs: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value that our regret is lower, paired by seed."""
    from scipy.stats import wilcoxon

    d = np.asarray(ours) - np.asarray(theirs)
    if not np.any(d):
        return 1.0
    return float(wilcoxon(ours, theirs, alternative="less", zero_method="zsplit").pvalue)


METRICS = {
    "regret": "test regret: the table's best test accuracy minus the test accuracy of the "
    "architecture with the best validation accuracy so far",
    "valid_regret": "validation regret: the table's best validation accuracy minus the best "
    "validation accuracy found so far (what every searcher optimizes)",
}


def summarize(runs: Sequence[dict[str, Any]], queries: int) -> dict[str, Any]:
    """metric -> table -> searcher -> statistics, and metric -> table -> "_tests" -> p-values."""
    out: dict[str, Any] = {}
    tables = sorted({r["table"] for r in runs}, key=TABLES.index)
    for metric in METRICS:
        out[metric] = {}
        for table in tables:
            res: dict[str, Any] = {}
            by_method = {
                m: sorted(
                    (r for r in runs if r["table"] == table and r["method"] == m),
                    key=lambda r: r["seed"],
                )
                for m in METHODS
            }
            for m, rs in by_method.items():
                if not rs:
                    continue
                R = np.array([r[metric] for r in rs])
                res[m] = {
                    "seeds": len(rs),
                    "at": {str(k): median_ci(R[:, k - 1]) for k in CHECKPOINTS if k <= queries},
                    "median_curve": np.median(R, axis=0).tolist(),
                    "q25": np.quantile(R, 0.25, axis=0).tolist(),
                    "q75": np.quantile(R, 0.75, axis=0).tolist(),
                    "failed": int(sum(r["failed"] for r in rs)),
                    "cpu_seconds_median": float(np.median([r["cpu_seconds"] for r in rs])),
                }
            ours = by_method.get("nas-bo")
            tests = {}
            if ours:
                for m, rs in by_method.items():
                    if m == "nas-bo" or [r["seed"] for r in rs] != [r["seed"] for r in ours]:
                        continue
                    tests[m] = {
                        str(k): paired_test(
                            np.array([r[metric][k - 1] for r in ours]),
                            np.array([r[metric][k - 1] for r in rs]),
                        )
                        for k in (100, 150)
                        if k <= queries
                    }
            res["_tests"] = tests
            out[metric][table] = res
    return out


# -- page --------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _label(table: str) -> str:
    return "digits (ours)" if table == "digits" else f"NAS-Bench-Graph {table}"


def _summary_table(
    summary: dict[str, Any], q: int
) -> tuple[list[str], list[tuple[str, int, bool]]]:
    """The median [95% interval] at 100 and `q` queries per table and searcher, lowest in bold,
    then the p-values; and (table, queries, nas-bo lowest?) per row."""
    lines = ["| table | queries | " + " | ".join(SHOWN) + " |", "|" + " --- |" * (len(SHOWN) + 2)]
    wins = []
    for table, res in summary.items():
        for k in sorted({100, q}):
            if str(k) not in res.get("nas-bo", {}).get("at", {}):
                continue
            meds = {m: res[m]["at"][str(k)][0] for m in SHOWN if m in res}
            low = min(meds.values())
            cells = []
            for m in SHOWN:
                if m not in res:
                    cells.append("n/a")
                    continue
                med, lo, hi = res[m]["at"][str(k)]
                text = f"{_pct(med)} [{_pct(lo)}, {_pct(hi)}]"
                cells.append(f"**{text}**" if med == low else text)
            lines.append(f"| {_label(table)} | {k} | " + " | ".join(cells) + " |")
            others = [v for m, v in meds.items() if m != "nas-bo"]
            wins.append((table, k, bool(others) and meds["nas-bo"] < min(others)))
    baselines = [m for m in SHOWN if m != "nas-bo"]
    lines += [
        "",
        "p-values of one-sided paired Wilcoxon signed-rank tests (paired by seed) that nas-bo's "
        "regret is lower than each baseline's:",
        "",
        "| table | queries | " + " | ".join(baselines) + " |",
        "|" + " --- |" * (len(baselines) + 2),
    ]
    for table, res in summary.items():
        for k in sorted({100, q}):
            ps = [res["_tests"].get(m, {}).get(str(k)) for m in baselines]
            if all(p is None for p in ps):
                continue
            cells = ["n/a" if p is None else f"{p:.2g}" for p in ps]
            lines.append(f"| {_label(table)} | {k} | " + " | ".join(cells) + " |")
    return lines, wins


def _verdict(wins: list[tuple[str, int, bool]]) -> str:
    won = sum(w for _, _, w in wins)
    lost = [f"{_label(t)} at {k}" for t, k, w in wins if not w]
    text = f"nas-bo has the lowest median in {won} of {len(wins)} table/checkpoint pairs"
    return text + (f"; not in: {', '.join(lost)}." if lost else ".")


def render(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    q = meta["queries"]
    test_lines, test_wins = _summary_table(summary["regret"], q)
    valid_lines, valid_wins = _summary_table(summary["valid_regret"], q)
    lines = [
        "# Architecture search on tabular benchmarks",
        "",
        f"Median regret in accuracy points after 100 and {q} queries, over {meta['seeds']} seeds, "
        "with the 95% interval of the median in brackets (lower is better; the lowest median in "
        "**bold**). Every searcher sees only validation accuracy. First the "
        f"{METRICS['regret']}:",
        "",
        *test_lines,
        "",
        f"And the {METRICS['valid_regret']}:",
        "",
        *valid_lines,
        "",
        "## What it means",
        "",
        f"- Validation regret: {_verdict(valid_wins)}",
        f"- Test regret: {_verdict(test_wins)}",
        "- Among the best architectures of these tables, validation accuracy says little about "
        "test accuracy (the rank correlation of the two within the top 1% by validation is "
        "between -0.2 and 0.3 on NAS-Bench-Graph), so once a searcher is in that top 1% its test "
        "regret is mostly the luck of which near-best architecture it found. A searcher's skill "
        "shows in the validation regret; the test regret is what a user would report.",
        "- The digits table is small (1,948 architectures, accuracy in steps of 1/360): by 100-150 "
        "queries the median run of every searcher but random has found the architecture with the "
        "table's best validation accuracy, so their medians tie and the test regret left is that "
        "architecture's own gap between validation and test.",
        "",
        "![regret against queries](nas.png)",
        "",
    ]
    for metric, title in (("regret", "Test regret"), ("valid_regret", "Validation regret")):
        ks = [k for k in CHECKPOINTS if k <= q]
        lines += [
            f"## {title} at every checkpoint",
            "",
            "| table | searcher | " + " | ".join(map(str, ks)) + " | CPU s per run |",
            "|" + " --- |" * (len(ks) + 3),
        ]
        for table, res in summary[metric].items():
            for m in SHOWN:
                if m in res:
                    cells = [_pct(res[m]["at"][str(k)][0]) for k in ks]
                    cpu = res[m]["cpu_seconds_median"]
                    lines.append(
                        f"| {_label(table)} | {m} | " + " | ".join(cells) + f" | {cpu:.1f} |"
                    )
        lines.append("")
    lines += [
        "## The tables and how our space maps onto them",
        "",
        "- NAS-Bench-Graph: four GNN layers, each reading the input or an earlier layer and "
        "applying one of 9 operations (gat, gcn, gin, cheb, sage, arma, graph, fc, skip); the "
        "output aggregates the layers no other layer reads. Ours: `ChoiceCell(nodes=4, inputs=1, "
        'cell_inputs=1, output="leaves")` over those operations, skip as our identity '
        "(`skip_connect`). Our space holds the 157,464 raw link/operation choices; each is looked "
        "up through the package's own canonicalization (`Arch(link, ops).valid_hash()`), so the "
        "table's 26,206 entries are reached from every isomorphic raw value. The 24 values whose "
        "layers are all skip connections are not in the table; a searcher proposing one gets a "
        "failed trial, which counts as a query.",
        "- digits: every distinct architecture of the `Cell` in the table's metadata, trained by "
        "its fixed protocol on scikit-learn's digits (docs/guide/nas.md); searched by the last "
        "epoch's validation accuracy, scored by its test accuracy.",
        "- Each query is one trial of a `Study` in memory, run as users run it: "
        '`Study(Space({"arch": cell}), optimizer=name, seed=seed)` with default options.',
        "- nas-bo's default encoding (adjacency, one length scale) was chosen on NAS-Bench-Graph "
        "cora, photo and cs with seeds 0-3 and 100 queries, before this run; those seeds are "
        "among the ones reported here.",
        "",
    ]
    lines += how_it_was_run(
        [(meta["command"], meta.get("out"), f"{meta['date']}, {meta['minutes']:.0f} min")],
        facts=[
            f"Seeds 0..{meta['seeds'] - 1} for every searcher and table (paired); {q} queries each.",
            f"Machine: {meta['machine']}; {meta['workers']} worker processes, one torch thread "
            "each, on a machine shared with other jobs (CPU seconds per run are process time; "
            f"{meta['cpu_hours']:.1f} CPU hours in all).",
            *(
                [
                    f"{meta['runs_cached']} of the runs were read from the run cache (`--runs`), "
                    "written by earlier invocations of this script (for subsets of these tables, "
                    "with the same seeds, queries and searcher code); the minutes above are this "
                    "invocation's, the CPU hours those of every run."
                ]
                if meta["runs_cached"]
                else []
            ),
        ],
    )
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = list(summary["regret"])
    fig, axes = plt.subplots(2, len(tables), figsize=(3.6 * len(tables), 6.4), squeeze=False)
    for row, metric in enumerate(("valid_regret", "regret")):
        for ax, table in zip(axes[row], tables, strict=True):
            kind = "validation regret" if metric == "valid_regret" else "test regret"
            _plot_panel(ax, summary[metric][table], f"{_label(table)}: {kind}")
    for row in axes:
        row[0].set_ylabel("regret (accuracy points)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Median regret (band: quartiles over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_panel(ax: Any, res: dict[str, Any], title: str) -> None:
    x = np.arange(1)
    for m in SHOWN:
        if m not in res:
            continue
        r = res[m]
        x = np.arange(1, len(r["median_curve"]) + 1)
        ax.plot(x, 100 * np.array(r["median_curve"]), label=m, lw=1.6, color=COLORS[m])
        ax.fill_between(
            x, 100 * np.array(r["q25"]), 100 * np.array(r["q75"]), alpha=0.12, color=COLORS[m]
        )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("queries")
    ax.set_xlim(10, max(len(x), 11))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, of {TABLES}")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    parser.add_argument(
        "--runs",
        default=str(ROOT / "metatune-runs" / "nas"),
        help="folder of the cached runs (one JSON line per run)",
    )
    args = parser.parse_args(argv)
    tables = [t for t in args.tables.split(",") if t]
    methods = [m for m in args.methods.split(",") if m]
    for t in tables:
        if t not in TABLES:
            parser.error(f"--tables: unknown table {t!r}; known: {', '.join(TABLES)}")
    for m in methods:
        if m not in METHODS:
            parser.error(f"--methods: unknown searcher {m!r}; known: {', '.join(METHODS)}")
    if args.seeds < 1 or args.queries < 10 or args.workers < 1:
        parser.error("--seeds and --workers must be >= 1 and --queries >= 10")

    runs_dir = Path(args.runs)
    runs_dir.mkdir(parents=True, exist_ok=True)
    cache = runs_dir / f"runs-q{args.queries}.jsonl"
    done: dict[tuple[str, str, int], dict[str, Any]] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            done[(r["table"], r["method"], r["seed"])] = r
    jobs = [
        (t, m, s)
        for s in range(args.seeds)
        for t in tables
        for m in methods
        if (t, m, s) not in done
    ]
    cached = set(done)
    started = time.monotonic()
    progress = make_progress(sys.stderr.isatty())
    with ProcessPoolExecutor(args.workers) as pool, cache.open("a") as fh:
        futures = [pool.submit(run_one, t, m, s, args.queries) for t, m, s in jobs]
        task = progress.add_task("NAS searches", total=len(futures), last="") if progress else None
        if progress:
            progress.start()
        try:
            for fut in as_completed(futures):
                r = fut.result()
                done[(r["table"], r["method"], r["seed"])] = r
                fh.write(json.dumps(r) + "\n")
                fh.flush()
                if progress:
                    last = f"{r['table']}/{r['method']}/seed {r['seed']}"
                    progress.update(task, advance=1, last=last)
        finally:
            if progress:
                progress.stop()
    runs = [done[(t, m, s)] for t in tables for m in methods for s in range(args.seeds)]
    summary = summarize(runs, args.queries)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": command_line(out),
        "out": None,
        "date": now_utc(),
        "minutes": (time.monotonic() - started) / 60,
        "seeds": args.seeds,
        "queries": args.queries,
        "workers": args.workers,
        "runs_cached": sum(
            (t, m, sd) in cached for t in tables for m in methods for sd in range(args.seeds)
        ),
        "cpu_hours": sum(r["cpu_seconds"] for r in runs) / 3600,
        "machine": format_machine(machine_info(("torch", "botorch", "nas-bench-graph"))),
    }
    (out / "nas.json").write_text(json.dumps({"meta": meta, "summary": summary}, indent=1) + "\n")
    plot(summary, out / "nas.png")
    (out / "nas.md").write_text(render(summary, meta))
    print(f"wrote {out / 'nas.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
