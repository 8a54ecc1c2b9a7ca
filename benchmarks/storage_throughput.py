"""Storage throughput: asks + tells per second of N worker processes on one study, metatune
against Optuna's RDB storage, on a SQLite file and on a PostgreSQL server; and the GP's ask time
with 8 concurrent workers.

Every worker process opens the study on its own and, after a common start, runs ask + tell with
random search and an instant objective (4 float parameters) for --seconds; throughput is the
trials finished by all workers divided by the time from the start to the last one. metatune
(optimizer="random") and Optuna (RDBStorage, RandomSampler) run on the same server, each run on
a fresh database (a new SQLite file, a new PostgreSQL database). Without --postgres-url the
script starts a throwaway PostgreSQL (Debian's initdb / pg_ctl, as the postgres user, in a
temporary folder, on 127.0.0.1 only) and removes it afterwards.
Writes docs/benchmarks/storage-throughput.{json,md,png}.

    python benchmarks/storage_throughput.py                      # 1/4/8 workers, 3 repeats
    python benchmarks/storage_throughput.py --repeats 1 --seconds 2 --out /tmp/st
"""

from __future__ import annotations

from metatune.benchmarks.common import single_thread_env

single_thread_env()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from metatune.benchmarks.common import (  # noqa: E402
    command_line,
    fmt_num,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
    read_notes,
    single_thread_torch,
)

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("metatune", "optuna")
DATABASES = ("sqlite", "postgresql")
N_PARAMS = 4
GP_WORKERS = 8
GP_PREFILL = 12  # random trials before the GP asks (past its start-up Sobol trials)
GP_ASKS = 4  # GP asks per worker

# --- a throwaway PostgreSQL server ---------------------------------------------------------------


def _pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb) found: install Debian's postgresql package "
            "or pass --postgres-url"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: str) -> None:
    if os.geteuid() == 0:  # the server refuses to run as root
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", cmd], check=True)
    else:
        subprocess.run(["/bin/sh", "-c", cmd], check=True)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[tuple[str, str]]:
    """(admin URL, server version) of a PostgreSQL server started for this run and removed
    afterwards; default settings (fsync on), listening on 127.0.0.1 only."""
    bin_dir = _pg_bin()
    folder = tempfile.mkdtemp(prefix="metatune-bench-pg.")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data = os.path.join(folder, "data")
    port = _free_port()
    started = False
    try:
        _as_postgres(f"'{bin_dir}/initdb' -D '{data}' -A trust -U postgres >/dev/null")
        _as_postgres(
            f"'{bin_dir}/pg_ctl' -D '{data}' -l '{folder}/log' -o \"-k '{folder}' -p {port} "
            f'-c listen_addresses=127.0.0.1 -c max_connections=200" -w start >/dev/null'
        )
        started = True
        version = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", version
    finally:
        if started:
            _as_postgres(f"'{bin_dir}/pg_ctl' -D '{data}' -m fast -w stop >/dev/null")
        shutil.rmtree(folder, ignore_errors=True)


class Databases:
    """Fresh databases for each run: SQLite files in a temporary folder, PostgreSQL databases
    created on the server (and dropped after the run)."""

    def __init__(self, folder: Path, postgres_admin: str | None) -> None:
        self.folder = folder
        self.admin = postgres_admin

    @contextlib.contextmanager
    def fresh(self, kind: str, label: str) -> Iterator[str]:
        name = f"{label}_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            path = self.folder / f"{name}.db"
            try:
                yield f"sqlite:///{path}"
            finally:
                for p in self.folder.glob(f"{name}.db*"):
                    p.unlink()
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        assert self.admin is not None
        engine = create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(self.admin).set(database=name).render_as_string(hide_password=False)
        finally:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            engine.dispose()


# --- the workers ---------------------------------------------------------------------------------


def _objective(params: dict[str, float]) -> float:
    return float(sum((v - 0.3) ** 2 for v in params.values()))


def _create_study(library: str, url: str, name: str) -> None:
    """Create the study once, before the workers start (they all open it)."""
    if library == "metatune":
        import metatune as mt

        space = {f"x{i}": mt.Float(0.0, 1.0) for i in range(N_PARAMS)}
        study = mt.Study(space, optimizer="random", storage=url, name=name, seed=0)
        study.storage.close()
    else:
        import optuna

        storage = optuna.storages.RDBStorage(url)
        optuna.create_study(storage=storage, study_name=name)
        storage.remove_session()
        storage.engine.dispose()


def _throughput_worker(
    library: str, url: str, name: str, seconds: float, rank: int, barrier: Any, queue: Any
) -> None:
    """Open the study, wait for the others, then ask + tell until `seconds` have passed."""
    logging.getLogger("metatune").setLevel(logging.ERROR)
    errors: list[str] = []
    count = 0
    if library == "metatune":
        import metatune as mt

        study = mt.Study(name=name, storage=url, optimizer="random")

        def one() -> None:
            trial = study.ask()
            study.tell(trial, _objective(trial.params))

    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        ostudy = optuna.load_study(
            study_name=name,
            storage=optuna.storages.RDBStorage(url),
            sampler=optuna.samplers.RandomSampler(seed=rank),
        )

        def one() -> None:
            trial = ostudy.ask()
            params = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(N_PARAMS)}
            ostudy.tell(trial, _objective(params))

    barrier.wait()
    start = time.perf_counter()
    deadline = start + seconds
    end = start
    while time.perf_counter() < deadline:
        try:
            one()
            count += 1
        except Exception as exc:  # e.g. "database is locked": counted, the worker goes on
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        end = time.perf_counter()
    queue.put({"rank": rank, "count": count, "seconds": end - start, "errors": errors})


def _gp_worker(url: str, name: str, asks: int, rank: int, barrier: Any, queue: Any) -> None:
    single_thread_torch()
    logging.getLogger("metatune").setLevel(logging.ERROR)
    import metatune as mt

    study = mt.Study(name=name, storage=url, optimizer="gp")
    barrier.wait()
    times = []
    for _ in range(asks):
        t0 = time.perf_counter()
        trial = study.ask()
        times.append(time.perf_counter() - t0)
        study.tell(trial, _objective(trial.params))
    queue.put({"rank": rank, "ask_seconds": times})


def _run_workers(target: Any, n: int, args: tuple) -> list[dict]:
    ctx = mp.get_context("fork")  # the parent has imported everything once already
    barrier = ctx.Barrier(n)
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, rank, barrier, queue)) for rank in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise RuntimeError(f"a worker exited with status {p.exitcode}")
    return sorted(results, key=lambda r: r["rank"])


def run_throughput(
    dbs: Databases, library: str, kind: str, workers: int, seconds: float
) -> dict[str, Any]:
    with dbs.fresh(kind, f"{library}_{workers}") as url:
        name = "throughput"
        _create_study(library, url, name)
        load = os.getloadavg()[0]
        results = _run_workers(_throughput_worker, workers, (library, url, name, seconds))
    total = sum(r["count"] for r in results)
    elapsed = max(r["seconds"] for r in results)
    errors = [e for r in results for e in r["errors"]]
    return {
        "library": library,
        "database": kind,
        "workers": workers,
        "trials": total,
        "seconds": elapsed,
        "per_second": total / elapsed if elapsed > 0 else float("nan"),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "load_before": load,
    }


def run_gp(dbs: Databases, kind: str, workers: int, asks: int) -> dict[str, Any]:
    import metatune as mt

    with dbs.fresh(kind, f"gp_{workers}") as url:
        name = "gp-asks"
        space = {f"x{i}": mt.Float(0.0, 1.0) for i in range(N_PARAMS)}
        study = mt.Study(space, optimizer="random", storage=url, name=name, seed=0)
        for _ in range(GP_PREFILL):
            trial = study.ask()
            study.tell(trial, _objective(trial.params))
        study.storage.close()
        load = os.getloadavg()[0]
        results = _run_workers(_gp_worker, workers, (url, name, asks))
    return {
        "database": kind,
        "workers": workers,
        "asks": sum(len(r["ask_seconds"]) for r in results),
        "ask_seconds": [t for r in results for t in r["ask_seconds"]],
        "first_ask_seconds": [r["ask_seconds"][0] for r in results],
        "later_ask_seconds": [t for r in results for t in r["ask_seconds"][1:]],
        "load_before": load,
    }


def count_round_trips(dbs: Databases, library: str, kind: str, trials: int = 30) -> dict:
    """Transactions committed and statements executed per ask + tell, in this process (the
    explanation of the throughput: on a database that syncs every commit to disk, commits
    dominate)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts = {"commits": 0, "statements": 0}

    def on_commit(conn: Any) -> None:
        counts["commits"] += 1

    def on_execute(*_: Any) -> None:
        counts["statements"] += 1

    with dbs.fresh(kind, f"count_{library}") as url:
        _create_study(library, url, "count")
        if library == "metatune":
            import metatune as mt

            study = mt.Study(name="count", storage=url, optimizer="random")

            def one() -> None:
                trial = study.ask()
                study.tell(trial, _objective(trial.params))

            one()  # warm up: the first ask reads the study
        else:
            import optuna

            ostudy = optuna.load_study(
                study_name="count",
                storage=optuna.storages.RDBStorage(url),
                sampler=optuna.samplers.RandomSampler(seed=0),
            )

            def one() -> None:
                trial = ostudy.ask()
                params = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(N_PARAMS)}
                ostudy.tell(trial, _objective(params))

            one()
        event.listen(Engine, "commit", on_commit)
        event.listen(Engine, "before_cursor_execute", on_execute)
        try:
            for _ in range(trials):
                one()
        finally:
            event.remove(Engine, "commit", on_commit)
            event.remove(Engine, "before_cursor_execute", on_execute)
        if library == "metatune":
            study.storage.close()
        else:
            ostudy._storage.remove_session()
    return {
        "library": library,
        "database": kind,
        "commits_per_trial": counts["commits"] / trials,
        "statements_per_trial": counts["statements"] / trials,
    }


# --- summary, page, plot -------------------------------------------------------------------------


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for kind in DATABASES:
        for workers in sorted({r["workers"] for r in runs}):
            row: dict[str, Any] = {"database": kind, "workers": workers}
            for library in LIBRARIES:
                mine = [
                    r
                    for r in runs
                    if (r["database"], r["workers"], r["library"]) == (kind, workers, library)
                ]
                if not mine:
                    continue
                rates = [r["per_second"] for r in mine]
                row[library] = {
                    "median": float(np.median(rates)),
                    "min": float(min(rates)),
                    "max": float(max(rates)),
                    "repeats": len(rates),
                    "errors": int(sum(r["errors"] for r in mine)),
                }
            if "metatune" in row and "optuna" in row:
                row["ratio"] = row["metatune"]["median"] / row["optuna"]["median"]
            if len(row) > 2:
                rows.append(row)
    return rows


def summarize_gp(gp_runs: list[dict]) -> list[dict]:
    rows = []
    for r in gp_runs:
        for which, key in (("first", "first_ask_seconds"), ("later", "later_ask_seconds")):
            t = np.asarray(r[key])
            if not t.size:
                continue
            rows.append(
                {
                    "database": r["database"],
                    "workers": r["workers"],
                    "which": which,
                    "asks": int(t.size),
                    "median": float(np.median(t)),
                    "p10": float(np.percentile(t, 10)),
                    "p90": float(np.percentile(t, 90)),
                    "max": float(t.max()),
                }
            )
    return rows


_DB_LABEL = {"sqlite": "SQLite (file)", "postgresql": "PostgreSQL"}


def _cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "n/a"
    cell = f"{fmt_num(stats['median'])} [{fmt_num(stats['min'])}, {fmt_num(stats['max'])}]"
    if stats["errors"]:
        cell += f" ({stats['errors']} errors)"
    return cell


def write_markdown(data: dict, rows: list[dict], gp_rows: list[dict], path: Path) -> None:
    cfg = data["config"]
    lines = [
        "# Storage throughput: many workers on one study",
        "",
        f"Asks + tells per second of all workers together on one study (random search, an "
        f"instant objective, {N_PARAMS} float parameters), each worker a process of its own, "
        f"{cfg['seconds']:g} s per run; median over {cfg['repeats']} repeats, range in "
        'brackets. metatune: `optimizer="random"` on its SQL storage; Optuna: `RDBStorage` '
        "with `RandomSampler`; same server, a fresh database per run.",
        "",
        "| database | workers | metatune trials/s | Optuna trials/s | metatune / Optuna |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "n/a"
        lines.append(
            f"| {_DB_LABEL[r['database']]} | {r['workers']} | {_cell(r.get('metatune'))} | "
            f"{_cell(r.get('optuna'))} | {ratio} |"
        )
    lines += [""]
    lines += data.get("meaning", [])
    if data.get("notes"):
        lines += ["", data["notes"].strip()]
    if gp_rows:
        lines += [
            "",
            f"## The GP's ask time with {GP_WORKERS} concurrent workers",
            "",
            f'Seconds per `study.ask()` with `optimizer="gp"` ({N_PARAMS} parameters, the '
            f"study started with {GP_PREFILL} random trials, {GP_ASKS} asks per worker; each "
            "ask fits the GP on the finished trials and treats the running ones as pending "
            "points). A worker's first ask fits the GP from scratch in a fresh process; later "
            "asks warm-start the fit. 1 worker is the reference; the workers share the "
            "machine's cores.",
            "",
            "| database | workers | asks | n | median s | p10 s | p90 s | max s |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for g in gp_rows:
            lines.append(
                f"| {_DB_LABEL[g['database']]} | {g['workers']} | {g['which']} | {g['asks']} | "
                f"{fmt_num(g['median'])} | {fmt_num(g['p10'])} | {fmt_num(g['p90'])} | "
                f"{fmt_num(g['max'])} |"
            )
        lines += [""]
        lines += data.get("gp_meaning", [])
    loads = [r["load_before"] for r in data["runs"] + data["gp_runs"]]
    lines += [
        "",
        "![trials per second](storage-throughput.png)",
        "",
        *how_it_was_run(
            [(data["command"], "docs/benchmarks", f"{data['date']}, {data['minutes']:.1f} min")],
            [
                f"Machine: {format_machine(data['machine'])}; shared with other work: the "
                f"1-minute load average before the runs was {min(loads):.1f} to "
                f"{max(loads):.1f} (median {float(np.median(loads)):.1f}) on "
                f"{data['machine']['cpu_count']} CPUs, so workers beyond the cores compete "
                "with each other and with that load.",
                f"PostgreSQL: {data['postgres']}, started by the script for this run in a "
                "temporary folder with the server's default settings (fsync on), listening "
                "on 127.0.0.1; clients connect over TCP (psycopg 3); a new database per run.",
                "SQLite: a new file per run in a temporary folder, each library with its own "
                "settings (metatune switches the file to WAL and waits on a busy timeout; "
                "Optuna's RDBStorage uses SQLAlchemy's defaults).",
                "Workers are forked from one parent that imported both libraries, open the "
                "study on their own, then start together (a barrier); a run's rate is its "
                "finished trials over the time from that start to the last worker's last "
                "finish. An exception in a worker is counted as an error and the worker goes on.",
                f"Run order: for each database, worker count and repeat, metatune then Optuna. "
                f"Versions: psycopg {data['versions'].get('psycopg')}, SQLAlchemy "
                f"{data['versions'].get('sqlalchemy')}.",
            ],
        ),
    ]
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], gp_runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in DATABASES if any(r["database"] == k for r in rows)]
    fig, axes = plt.subplots(1, len(kinds) + bool(gp_runs), figsize=(5 * (len(kinds) + 1), 4))
    axes = np.atleast_1d(axes)
    colors = {"metatune": "tab:blue", "optuna": "tab:orange"}
    for ax, kind in zip(axes, kinds, strict=False):
        mine = [r for r in rows if r["database"] == kind]
        x = np.arange(len(mine))
        for j, library in enumerate(LIBRARIES):
            med = np.array([r[library]["median"] if library in r else np.nan for r in mine])
            lo = np.array([r[library]["min"] if library in r else np.nan for r in mine])
            hi = np.array([r[library]["max"] if library in r else np.nan for r in mine])
            ax.bar(
                x + (j - 0.5) * 0.38,
                med,
                0.38,
                yerr=[med - lo, hi - med],
                capsize=3,
                color=colors[library],
                label=library,
            )
        ax.set_xticks(x, [f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}" for r in mine])
        ax.set_ylabel("asks + tells per second (all workers)")
        ax.set_title(_DB_LABEL[kind])
        ax.legend()
    if gp_runs:
        ax = axes[-1]
        labels = [f"{_DB_LABEL[g['database']]}\n{g['workers']} worker(s)" for g in gp_runs]
        ax.boxplot(
            [g["ask_seconds"] for g in gp_runs],
            tick_labels=labels,
            showfliers=True,
        )
        ax.set_yscale("log")
        ax.set_ylabel("seconds per GP ask (log scale)")
        ax.set_title("metatune GP ask time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gp_meaning(gp_rows: list[dict]) -> list[str]:
    later = {(g["database"], g["workers"]): g["median"] for g in gp_rows if g["which"] == "later"}
    parts = [
        f"{_DB_LABEL[kind]} {later[(kind, GP_WORKERS)] / later[(kind, 1)]:.1f}x"
        for kind in DATABASES
        if (kind, 1) in later and (kind, GP_WORKERS) in later
    ]
    if not parts:
        return []
    return [
        f"With {GP_WORKERS} workers a warm GP ask takes longer than alone by "
        + ", ".join(parts)
        + " (medians): the fit and the acquisition search are CPU work, and "
        f"{GP_WORKERS} workers share the machine's cores with each other and with its other "
        "load (the storage's share of an ask is the tens of milliseconds per trial of the "
        "first table). A worker's first ask is slower still: it fits the GP from scratch and "
        "is the first GP ask of its process, and with several workers they all do it at once."
    ]


def _meaning(rows: list[dict], round_trips: Sequence[dict] = ()) -> list[str]:
    out = []
    contested = [r for r in rows if "ratio" in r and r["workers"] >= 4]
    if contested:
        behind = [r for r in contested if r["ratio"] < 1]
        parts = ", ".join(
            f"{_DB_LABEL[r['database']]} {r['workers']} workers {r['ratio']:.2f}x"
            for r in contested
        )
        verdict = (
            "metatune is at least as fast as Optuna at every one of these."
            if not behind
            else "metatune is behind Optuna at "
            + ", ".join(f"{_DB_LABEL[r['database']]} {r['workers']} workers" for r in behind)
            + "."
        )
        out.append(
            f"What it means: the target is metatune at least as fast as Optuna's RDB storage "
            f"with 4 and 8 workers on both databases. Measured (metatune / Optuna, medians): "
            f"{parts}; {verdict}"
        )
    if round_trips:
        per = ", ".join(
            f"{_DB_LABEL[c['database']]} {c['library']} {c['commits_per_trial']:.1f} commits / "
            f"{c['statements_per_trial']:.0f} statements"
            for c in round_trips
        )
        out += [
            "",
            "Why: per ask + tell (counted over 30 trials in one process) - "
            f"{per}. Each write commit waits for the disk (fsync on both databases) and each "
            "statement is a round trip, so the count of transactions sets the pace: Optuna "
            "writes every suggested parameter in a transaction of its own, metatune writes a "
            "trial's parameters at once.",
        ]
    scaling = []
    for kind in DATABASES:
        mine = {
            r["workers"]: r["metatune"]["median"]
            for r in rows
            if r["database"] == kind and "metatune" in r
        }
        if 1 in mine and len(mine) > 1:
            most = max(mine)
            scaling.append((kind, most, mine[most] / mine[1]))
    if scaling:
        out += [
            "",
            "Scaling: metatune's rate with the most workers over its rate with 1 - "
            + ", ".join(f"{_DB_LABEL[k]} {n} workers {x:.2f}x" for k, n, x in scaling)
            + ". Workers beyond the machine's cores add little: each trial's work is CPU "
            "(SQLAlchemy, the driver, the server) on a machine already loaded by other work, "
            "on SQLite every writer takes the one database lock in turn, and on PostgreSQL "
            "creating a trial locks the study's row, so creators of one study queue there.",
        ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", default="1,4,8", help="worker counts, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0, help="length of each run")
    p.add_argument("--databases", default=",".join(DATABASES))
    p.add_argument("--libraries", default=",".join(LIBRARIES))
    p.add_argument("--no-gp", action="store_true", help="skip the GP ask-time runs")
    p.add_argument(
        "--postgres-url",
        default=None,
        help="an admin URL of a server to use (postgresql+psycopg://...; databases are created "
        "and dropped on it) instead of starting one",
    )
    p.add_argument("--notes", default=None, help="a Markdown file shown after the table")
    p.add_argument(
        "--from-json",
        default=None,
        help="re-write the page and plot from the JSON of an earlier run (runs nothing)",
    )
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = p.parse_args(argv)
    notes = read_notes(p, args.notes)
    try:
        workers = [int(w) for w in args.workers.split(",") if w]
    except ValueError:
        p.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    databases = [d for d in args.databases.split(",") if d]
    libraries = [x for x in args.libraries.split(",") if x]
    bad = [d for d in databases if d not in DATABASES] + [
        x for x in libraries if x not in LIBRARIES
    ]
    if bad or not workers or min(workers) < 1:
        p.error(
            f"bad --databases/--libraries {bad} (allowed {DATABASES}, {LIBRARIES}) or --workers"
        )
    if args.repeats < 1 or not args.seconds > 0:
        p.error("--repeats must be >= 1 and --seconds > 0")
    out = Path(args.out)
    if args.from_json:
        try:
            data = json.loads(Path(args.from_json).read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--from-json: cannot read {args.from_json!r}: {exc}")
        write_outputs(data, out, notes if notes is not None else data.get("notes"))
        return 0
    logging.getLogger("metatune").setLevel(logging.WARNING)
    # Import everything the workers use once, here, so forked workers start at once.
    import optuna
    import psycopg
    import sqlalchemy

    import metatune  # noqa: F401
    from metatune.optimizers.gp import GPOptimizer  # noqa: F401

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    runs: list[dict] = []
    gp_runs: list[dict] = []
    round_trips: list[dict] = []
    with contextlib.ExitStack() as stack:
        pg_version = "not run"
        admin = args.postgres_url
        if "postgresql" in databases and admin is None:
            admin, pg_version = stack.enter_context(throwaway_postgres())
        elif admin is not None:
            pg_version = "a server given by --postgres-url"
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        dbs = Databases(tmp, admin)
        for kind in databases:
            for n in workers:
                for rep in range(args.repeats):
                    for library in libraries:
                        r = run_throughput(dbs, library, kind, n, args.seconds)
                        r["repeat"] = rep
                        runs.append(r)
                        print(
                            f"{kind:10} {n} workers {library:8} repeat {rep}: "
                            f"{r['per_second']:8.1f} trials/s ({r['trials']} trials, "
                            f"{r['errors']} errors, load {r['load_before']:.1f})",
                            flush=True,
                        )
            for library in libraries:
                c = count_round_trips(dbs, library, kind)
                round_trips.append(c)
                print(
                    f"{kind:10} {library:8}: {c['commits_per_trial']:.1f} commits, "
                    f"{c['statements_per_trial']:.1f} statements per trial",
                    flush=True,
                )
            if not args.no_gp and "metatune" in libraries:
                for n in (1, GP_WORKERS):
                    g = run_gp(dbs, kind, n, GP_ASKS)
                    gp_runs.append(g)
                    print(
                        f"{kind:10} GP {n} workers: median ask "
                        f"{np.median(g['ask_seconds']):.2f}s over {g['asks']} asks",
                        flush=True,
                    )
    data = {
        "command": command_line(out),
        "date": now_utc(),
        "minutes": (time.perf_counter() - t0) / 60,
        "machine": machine_info(),
        "versions": {"psycopg": psycopg.__version__, "sqlalchemy": sqlalchemy.__version__},
        "postgres": pg_version,
        "config": {
            "workers": workers,
            "repeats": args.repeats,
            "seconds": args.seconds,
            "databases": databases,
            "libraries": libraries,
        },
        "runs": runs,
        "gp_runs": gp_runs,
        "round_trips": round_trips,
    }
    write_outputs(data, out, notes)
    return 0


def write_outputs(data: dict, out: Path, notes: str | None) -> None:
    """The JSON (with the summaries), the plot and the page of a run's raw records."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(data["runs"])
    gp_rows = summarize_gp(data["gp_runs"])
    data.update(
        summary=rows,
        gp_summary=gp_rows,
        meaning=_meaning(rows, data.get("round_trips", [])),
        gp_meaning=_gp_meaning(gp_rows),
        notes=notes,
    )
    (out / "storage-throughput.json").write_text(json.dumps(data, indent=1))
    plot(rows, data["gp_runs"], out / "storage-throughput.png")
    write_markdown(data, rows, gp_rows, out / "storage-throughput.md")
    print((out / "storage-throughput.md").read_text())


if __name__ == "__main__":
    raise SystemExit(main())
