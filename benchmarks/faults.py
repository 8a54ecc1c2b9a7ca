"""The fault storm on every backend: SQLite and PostgreSQL with 4 ask/tell worker processes, and
4-worker `optimize(n_workers=4)` runs on the process executor (SQLite) and the Ray executor
(PostgreSQL), with processes SIGKILLed at random moments and started again.

Every teller logs what it was told was stored; afterwards the database alone is audited
(metatune.benchmarks.faults): completed trials lost, trial numbers duplicated, points evaluated
twice, trials left RUNNING after the stale sweep. PostgreSQL is a throwaway server started here
(Debian's binaries in a temporary folder, as .ci/run does) unless --postgres-url names one.

Writes docs/benchmarks/faults.{json,md,png}.

    python benchmarks/faults.py                                # 50 kills per backend, ~9 min
    python benchmarks/faults.py --kills 6 --backends sqlite ray --out /tmp/faults
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from metatune.benchmarks.common import (
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    read_notes,
)
from metatune.benchmarks.faults import (
    STALE_AFTER,
    asktell_storm,
    executor_storm,
    passed,
    postgres_server,
)

ROOT = Path(__file__).resolve().parents[1]
_NOT_RECORDED = ("out", "postgres_url", "merge", "notes", "from_json")  # not the storm's settings
REASONS = ("its worker died", "stale: its owner died", "interrupted (Ctrl-C)", "other")
BACKENDS = {
    # name: (what is killed, storage, executor or None for ask/tell worker processes)
    "sqlite": ("ask/tell worker processes", "sqlite", None),
    "postgresql": ("ask/tell worker processes", "postgresql", None),
    "process": ("process-executor workers and the driver", "sqlite", "process"),
    "ray": ("Ray workers and the driver", "postgresql", "ray"),
}


def run(args: argparse.Namespace) -> dict:
    results = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        pg_url = args.postgres_url
        if pg_url is None and any(BACKENDS[b][1] == "postgresql" for b in args.backends):
            pg_url = stack.enter_context(postgres_server())
        for i, name in enumerate(args.backends):
            _, storage, executor = BACKENDS[name]
            folder = tmp / name
            if storage == "sqlite":
                url = f"sqlite:///{folder / 'storm.db'}"
            else:
                url = _fresh_database(pg_url, f"storm_{name}")
            print(f"{name}: {args.kills} kills ...", flush=True)
            if executor is None:
                r = asktell_storm(
                    url, folder, args.workers, args.kills, args.interval, args.seed + i
                )
            else:
                r = executor_storm(
                    url,
                    folder,
                    executor,
                    args.workers,
                    args.kills,
                    args.executor_interval,
                    args.seed + i,
                    args.driver_every,
                )
            r["storage"], r["executor"] = storage, executor
            results[name] = r
            print(f"{name}: {'ok' if passed(r) else 'FAILED'} in {r['seconds']:.0f} s", flush=True)
    return results


def _fresh_database(url: str, name: str) -> str:
    """A new database `name` on the server of `url` (dropped first if it exists)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _postgres_note(args: argparse.Namespace) -> str | None:
    if not any(BACKENDS[b][1] == "postgresql" for b in args.backends):
        return None
    if args.postgres_url:
        return "a server given by --postgres-url"
    return "a throwaway server started by the script (Debian's PostgreSQL, fsync off)"


def write_plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    complete = [results[n]["states"].get("complete", 0) for n in names]
    failed = [results[n]["states"].get("failed", 0) for n in names]
    lost = [len(results[n]["lost"]) for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(names, complete, label="complete", color="#4c72b0")
    ax.bar(names, failed, bottom=complete, label="failed (running when killed)", color="#dd8452")
    for i, n in enumerate(names):
        kills = results[n]["worker_kills"] + results[n]["driver_kills"]
        ax.text(
            i,
            complete[i] + failed[i],
            f"{kills} kills\n{lost[i]} lost",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("trials stored")
    ax.set_title("Fault storm: trials stored per backend")
    ax.margins(y=0.2)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_markdown(data: dict, path: Path) -> None:
    res = data["results"]
    lines = [
        "# Fault storm: SIGKILLs on SQLite, PostgreSQL, processes and Ray",
        "",
        "| backend | storage | killed | worker kills | driver kills | trials stored | "
        "complete | told as stored (complete) | lost | duplicated numbers | evaluated twice | "
        "left RUNNING | verdict |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in res.items():
        lines.append(
            f"| {name} | {r['storage']} | {BACKENDS[name][0]} | {r['worker_kills']} | "
            f"{r['driver_kills']} | {r['trials']} | {r['states'].get('complete', 0)} | "
            f"{r['logged']} ({r['logged_complete']}) | {len(r['lost'])} | "
            f"{r['duplicated_numbers']} | {r['duplicated_params']} | "
            f"{r['running_after_sweep']} | "
            f"{'nothing lost or duplicated' if passed(r) else 'FAILED'} |"
        )
    all_ok = all(passed(r) for r in res.values())
    lines += [
        "",
        "![trials stored per backend](faults.png)",
        "",
        "What it means: "
        + (
            "on every backend, no trial that a worker or driver was told was stored went "
            "missing or changed, no trial number was given twice, no point was evaluated "
            "twice, and no trial was left RUNNING once the study was reopened."
            if all_ok
            else "at least one backend FAILED the audit (see the table)."
        )
        + " The failed trials are the ones running when their process was killed: a killed "
        "ask/tell worker's trial is failed by the next process that opens the study or asks "
        "(its owner provably no longer runs); a killed executor worker's trial is failed by the "
        "driver at once with the reason (`worker process ... died (killed by SIGKILL)`, Ray's "
        "`WorkerCrashedError`; a worker killed between two trials fails none), and the executor "
        "starts a new worker; a killed driver's running "
        f"trials are failed by the restarted driver's stale sweep (owners on other machines "
        f"after {STALE_AFTER:.0f} s without a heartbeat). The last driver is stopped with "
        "SIGINT, which fails its running trials as interrupted.",
        "",
        "Columns: *told as stored* counts the trials a teller logged after `tell` (or the "
        "driver's callback) returned, with how many of them complete; a trial can be stored "
        "but not logged when the kill falls between the two. *Lost*: a logged trial missing "
        "from the database or stored with another state, value or parameters. *Duplicated "
        "numbers*: a number logged twice, or not unique and dense in the database. *Evaluated "
        "twice*: two stored trials with the same parameters (random search gives trial k the "
        "k-th Sobol point). *Left RUNNING*: after reopening the study once every process was "
        "stopped.",
        "",
        "Kills land at random moments: inside ask, inside tell, between them, while a worker "
        "starts, and (for the executors) while the driver waits for results. In an executor "
        f"storm one kill in {data['runs'][-1]['args']['driver_every']} hits the driver; the restarted "
        "driver resumes the same study "
        "from storage. Ray's tasks are not retried (`max_retries=0`), so a killed Ray worker "
        "fails exactly its trial.",
        "",
    ]
    lines += [
        "Why the failed trials failed (from their stored errors):",
        "",
        "| backend | " + " | ".join(REASONS) + " |",
        "| --- | " + " | ".join("---:" for _ in REASONS) + " |",
    ]
    for name, r in res.items():
        why = r["failed_because"]
        other = sum(v for k, v in why.items() if k not in REASONS)
        counts = [why.get(k, 0) for k in REASONS[:-1]] + [other]
        lines.append(f"| {name} | " + " | ".join(str(c) for c in counts) + " |")
    lines.append("")
    if data.get("notes"):
        lines += [data["notes"].strip(), ""]
    crashed = {n: r["crashed"] for n, r in res.items() if r["crashed"]}
    if crashed:
        lines += ["Processes that died by themselves:", ""]
        for n, tails in crashed.items():
            lines += [f"- {n}:", "", "```", *tails, "```", ""]
    a = data["runs"][-1]["args"]
    pg = next((r["postgres"] for r in data["runs"] if r["postgres"]), None)
    lines += how_it_was_run(
        [
            (
                r["command"],
                "docs/benchmarks",
                f"{r['date']}; {', '.join(r['backends'])}; "
                f"{sum(res[b]['seconds'] for b in r['backends']):.0f} s of storms",
            )
            for r in data["runs"]
        ],
        [
            f"{a['workers']} workers per study; a kill about every {a['interval']} s for the "
            f"ask/tell workers and every {a['executor_interval']} s for the executors "
            "(uniform between half and one and a half times that, and only once another "
            "trial was told since the previous kill); random search, trials of a few ms "
            "(ask/tell) or 0.05-0.35 s (executors); the Ray storm on a local Ray with 2 "
            "CPUs, half a CPU per trial",
            *([f"PostgreSQL: {pg}"] if pg else []),
            f"Machine: {format_machine(data['machine'])}",
        ],
    )
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--kills", type=int, default=50, help="kills per backend")
    p.add_argument(
        "--interval", type=float, default=2.0, help="mean seconds between kills of ask/tell workers"
    )
    p.add_argument(
        "--executor-interval",
        type=float,
        default=1.5,
        help="mean seconds between kills in the executor storms",
    )
    p.add_argument(
        "--driver-every",
        type=int,
        default=10,
        help="in the executor storms, every Nth kill hits the driver",
    )
    p.add_argument(
        "--postgres-url",
        default=None,
        help="a server to use (databases storm_* are created and dropped on it); "
        "default: start a throwaway one",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--merge",
        default=None,
        help="an earlier run's faults.json: its backends not run now are kept on the page",
    )
    p.add_argument("--notes", default=None, help="a Markdown file shown after the tables")
    p.add_argument(
        "--from-json",
        default=None,
        help="re-write the page from a run's faults.json (with --notes), running nothing",
    )
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = p.parse_args(argv)
    notes = read_notes(p, args.notes)
    if args.from_json:
        try:
            data = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--from-json: cannot read {args.from_json!r}: {exc}")
        if notes is not None:
            data["notes"] = notes
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "faults.json").write_text(json.dumps(data, indent=1))
        write_plot(data["results"], out / "faults.png")
        write_markdown(data, out / "faults.md")
        return 0 if all(passed(r) for r in data["results"].values()) else 1
    if args.workers < 1 or args.kills < 1 or args.driver_every < 2:
        p.error("--workers and --kills must be positive and --driver-every at least 2")
    if not (args.interval > 0 and args.executor_interval > 0):
        p.error("--interval and --executor-interval must be above 0")
    earlier = None
    if args.merge:
        try:
            earlier = json.loads(Path(args.merge).read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--merge: cannot read {args.merge!r}: {exc}")
        if "runs" not in earlier:  # a page written before runs were listed
            earlier["runs"] = [
                {
                    "command": earlier["command"],
                    "date": earlier["date"],
                    "backends": list(earlier["results"]),
                    "seconds": sum(r["seconds"] for r in earlier["results"].values()),
                    "postgres": earlier.get("postgres"),
                    "args": earlier["args"],
                }
            ]
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run_record = {
        "command": command_line(out),
        "date": now_utc(),
        "backends": list(results),
        "seconds": sum(r["seconds"] for r in results.values()),
        "postgres": _postgres_note(args),
        "args": {k: v for k, v in vars(args).items() if k not in _NOT_RECORDED},
    }
    runs, merged = [run_record], dict(results)
    if earlier is not None:
        kept = {n: r for n, r in earlier["results"].items() if n not in results}
        merged = {n: {**kept, **results}[n] for n in BACKENDS if n in kept or n in results}
        runs = [
            {**r, "backends": [b for b in r["backends"] if b in kept]}
            for r in earlier["runs"]
            if any(b in kept for b in r["backends"])
        ] + runs
    data = {
        "machine": machine_info(("ray", "sqlalchemy", "psycopg")),
        "runs": runs,
        "results": merged,
        "notes": notes,
    }
    results = merged
    (out / "faults.json").write_text(json.dumps(data, indent=1))
    write_plot(results, out / "faults.png")
    write_markdown(data, out / "faults.md")
    print((out / "faults.md").read_text())
    return 0 if all(passed(r) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
