"""Dashboard speed on a large study: metatune's dashboard against optuna-dashboard, same trials.

A --trials trial SQLite study (5 parameters: two log floats, two ints, a categorical; 5% failed)
is written once with metatune's storage and exported trial by trial to Optuna's RDB storage
(same parameters, values, states and times). For each repeat, each dashboard is started as a
fresh process (its own command line, default server) and timed from outside:

- over HTTP (urllib): the first page (the page and the study list it loads) and a study page
  (the page, the study's data and its parameter importance);
- in headless Chromium (a fresh browser context each time, so nothing is cached): from
  navigation until the study list shows the study, and until the study page has drawn its
  history plot with the trials in it.

The first request after start reads the whole study from SQLite, so every number includes that.
Writes docs/benchmarks/dashboard.{json,md,png}.

    python benchmarks/dashboard.py                              # 10,000 trials, 5 repeats
    python benchmarks/dashboard.py --trials 2000 --repeats 2 --out /tmp/dash
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metatune.benchmarks.common import (
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
)

ROOT = Path(__file__).resolve().parents[1]
STUDY = "big"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOOLS = ("metatune", "optuna-dashboard")
METRICS = {
    "http_first": "first page, HTTP",
    "http_study": "study page, HTTP",
    "browser_first": "first page, browser",
    "browser_counts": "first page with trial counts, browser",
    "browser_study": "study page, browser",
}
# A plot "with trials in it": some Plotly graph holds a trace with at least this many points
# (an empty placeholder graph, as optuna-dashboard draws before its data arrives, has none).
_PLOTTED_JS = """(n) => Array.from(document.querySelectorAll('.js-plotly-plot')).some(
  d => (d.data || []).some(t => t.x && t.x.length >= n))"""


# The study list shows the study's trial count.
_COUNT_JS = """(n) => Array.from(document.querySelectorAll('#studies td')).some(
  td => td.textContent === n)"""


# The study ----------------------------------------------------------------------------------
def _space() -> Any:
    from metatune import Categorical, Float, Int, Space

    return Space(
        {
            "lr": Float(1e-5, 1.0, log=True),
            "weight_decay": Float(1e-6, 1e-1, log=True),
            "layers": Int(1, 8),
            "width": Int(16, 512, log=True),
            "optimizer": Categorical(["adam", "sgd", "rmsprop"]),
        }
    )


def build_metatune(path: Path, trials: int, seed: int = 0) -> None:
    """`trials` random trials of a synthetic objective in a metatune SQLite study."""
    from metatune.storage import get_storage
    from metatune.trial import TrialState

    space = _space()
    store = get_storage(f"sqlite:///{path}")
    record = store.create_study(STUDY, "minimize", space.to_dict(), "random", {}, seed)
    rng = random.Random(seed)
    for _ in range(trials):
        p = {
            "lr": 10 ** rng.uniform(-5, 0),
            "weight_decay": 10 ** rng.uniform(-6, -1),
            "layers": rng.randint(1, 8),
            "width": round(2 ** rng.uniform(4, 9)),
            "optimizer": rng.choice(["adam", "sgd", "rmsprop"]),
        }
        t = store.create_trial(record.id, p)
        if rng.random() < 0.05:
            store.finish_trial(record.id, t.number, TrialState.FAILED, error="loss is nan")
            continue
        value = (math.log10(p["lr"]) + 2.5) ** 2 + 0.1 * p["layers"] + rng.gauss(0, 0.1)
        value += 0.5 if p["optimizer"] == "sgd" else 0.0
        store.finish_trial(record.id, t.number, TrialState.COMPLETE, value=value)
    store.close()


def export_to_optuna(source: Path, target: Path) -> None:
    """The same trials (parameters, values, states, start and end times) in Optuna's storage."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.trial import FrozenTrial
    from optuna.trial import TrialState as OptunaState

    from metatune.storage import get_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = get_storage(f"sqlite:///{source}", read_only=True)
    record = store.get_study(STUDY)
    trials = store.get_trials(record.id)
    store.close()

    def dist(d: dict[str, Any]) -> Any:
        if d["type"] == "float":
            return FloatDistribution(d["low"], d["high"], log=d["log"])
        if d["type"] == "int":
            return IntDistribution(d["low"], d["high"], log=d["log"])
        return CategoricalDistribution(d["choices"])

    dists = {k: dist(v) for k, v in record.space.items()}
    study = optuna.create_study(
        storage=f"sqlite:///{target}", study_name=STUDY, direction="minimize"
    )
    frozen = []
    for t in trials:
        done = t.state.value == "complete"
        frozen.append(
            FrozenTrial(
                number=t.number,
                state=OptunaState.COMPLETE if done else OptunaState.FAIL,
                value=t.value if done else None,
                datetime_start=t.started_at,
                datetime_complete=t.finished_at,
                params=t.params,
                distributions=dists,
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=t.number,
            )
        )
    study.add_trials(frozen)


def prepare(work: Path, trials: int) -> tuple[Path, Path]:
    """Both databases in `work`, made once (in RAM-backed /dev/shm where there is one, since
    SQLite syncs every trial to disk) and reused by later runs with the same trial count."""
    mt, op = work / f"metatune-{trials}.db", work / f"optuna-{trials}.db"
    if mt.is_file() and op.is_file():
        return mt, op
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    try:
        t0 = time.monotonic()
        build_metatune(scratch / mt.name, trials)
        print(f"metatune study: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        t0 = time.monotonic()
        export_to_optuna(scratch / mt.name, scratch / op.name)
        print(f"optuna export: {time.monotonic() - t0:.0f} s", file=sys.stderr)
        for name in (mt.name, op.name):
            shutil.copyfile(scratch / name, work / name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return mt, op


# Serving and timing ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def start(tool: str, db: Path, port: int) -> subprocess.Popen[bytes]:
    """The dashboard's own command line on 127.0.0.1:port (its default server)."""
    url = f"sqlite:///{db}"
    if tool == "metatune":
        cmd = [_bin("metatune"), "dashboard", "--storage", url, "--port", str(port)]
    else:
        cmd = [_bin("optuna-dashboard"), url, "--port", str(port), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{tool} exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{tool} did not start listening")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.read()


def http_paths(tool: str) -> tuple[list[str], list[str]]:
    """What a browser asks for to show the first page and a study page, minus static files."""
    if tool == "metatune":
        return ["/", "/api/studies?wait=0"], [
            f"/study?name={STUDY}",
            f"/api/study?name={STUDY}",
            f"/api/trials?name={STUDY}&page=0&per_page=50",
        ]
    return ["/dashboard", "/api/studies"], [
        "/dashboard/studies/1",
        "/api/studies/1?after=0",
        "/api/studies/1/param_importances",
    ]


def time_http(tool: str, base: str) -> dict[str, float]:
    first, study = http_paths(tool)
    out = {}
    for key, paths in (("http_first", first), ("http_study", study)):
        t0 = time.perf_counter()
        for p in paths:
            _get(base + p)
        out[key] = time.perf_counter() - t0
    return out


def time_browser(tool: str, base: str, browser: Any, trials: int) -> dict[str, float]:
    first = "/" if tool == "metatune" else "/dashboard"
    study = f"/study?name={STUDY}" if tool == "metatune" else "/dashboard/studies/1"
    out = {}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(base + first)
        page.get_by_text(STUDY).first.wait_for(timeout=300_000)
        out["browser_first"] = time.perf_counter() - t0
        if tool == "metatune":  # optuna-dashboard's list has no trial counts
            page.wait_for_function(_COUNT_JS, arg=str(trials), timeout=300_000)
            out["browser_counts"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.goto(base + study)
        page.wait_for_function(_PLOTTED_JS, arg=min(100, trials // 2), timeout=300_000)
        out["browser_study"] = time.perf_counter() - t0
    finally:
        context.close()
    return out


def run(dbs: dict[str, Path], repeats: int, trials: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("METATUNE_CHROMIUM") or shutil.which("chromium") or "chromium"
    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        for r in range(repeats):
            for tool in TOOLS:
                for mode in ("http", "browser"):  # each on a freshly started server
                    port = _free_port()
                    proc = start(tool, dbs[tool], port)
                    base = f"http://127.0.0.1:{port}"
                    try:
                        if mode == "http":
                            got = time_http(tool, base)
                        else:
                            got = time_browser(tool, base, browser, trials)
                    finally:
                        proc.terminate()
                        proc.wait(timeout=30)
                    runs.append({"tool": tool, "repeat": r, **got})
                    print(f"repeat {r} {tool} {mode}: {got}", file=sys.stderr)
        browser.close()
    return runs


# The page -----------------------------------------------------------------------------------
def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for tool in TOOLS:
        out[tool] = {}
        for key in METRICS:
            xs = [r[key] for r in runs if r["tool"] == tool and key in r]
            if xs:
                out[tool][key] = {
                    "median": float(np.median(xs)),
                    "min": float(np.min(xs)),
                    "max": float(np.max(xs)),
                    "n": len(xs),
                }
    return out


def _cell(s: dict[str, float] | None) -> str:
    if not s:
        return "-"
    return f"{s['median']:.2f} s ({s['min']:.2f}-{s['max']:.2f})"


def write_markdown(data: dict[str, Any], path: Path, out_dir: str | None = None) -> None:
    summary = data["summary"]
    mt, op = summary["metatune"], summary["optuna-dashboard"]
    lines = [
        "# Dashboard on a large study: metatune against optuna-dashboard",
        "",
        f"One SQLite study of {data['trials']:,} trials (5 parameters, 5% failed), the same trials "
        "in each tool's own storage; each number is the median over "
        f"{data['repeats']} freshly started servers (min-max in brackets).",
        "",
        "| what | metatune | optuna-dashboard | target (metatune) |",
        "| --- | --- | --- | --- |",
    ]
    targets = {
        "browser_first": 2.0,
        "browser_counts": 2.0,
        "browser_study": 5.0,
        "http_first": 2.0,
        "http_study": 5.0,
    }
    for key, label in METRICS.items():
        t = targets[key]
        met = mt.get(key, {}).get("median")
        verdict = "-" if met is None else f"< {t:g} s: {'met' if met < t else 'not met'}"
        other = _cell(op.get(key)) if key != "browser_counts" else "(shows none)"
        lines.append(f"| {label} | {_cell(mt.get(key))} | {other} | {verdict} |")
    lines += [
        "",
        "What it means: *first page* is the list of studies, *study page* a study's plots. Over "
        "HTTP it is the time to fetch what the page asks for (the page and its data, no static "
        "files); in the browser it is what a person waits for, from navigation until the study "
        "list shows the study, or until the history plot has drawn the trials. The first "
        "request after a start reads the whole study from SQLite and every number includes it. "
        "metatune's dashboard thins its figures on the server (at most about 2,000 points a "
        "figure, every improvement kept), so the browser draws the same amount of data "
        "whatever the study's size; optuna-dashboard sends every trial to the browser, which "
        "computes and draws the plots itself. The two first pages differ: metatune's lists "
        "each study with its state, trial counts and best value, which it gets from two "
        "aggregate queries of the database (counts by state, the best complete trial) "
        "instead of reading the trials, while optuna-dashboard's lists names and directions "
        "only. metatune's server starts reading the trials in the background as it starts "
        "(for the study page), so its first-page numbers include that competition for the "
        "CPU. optuna-dashboard ran "
        "with its default server (wsgiref unless gunicorn is installed), metatune's with "
        "uvicorn, its dependency.",
        "",
        "![Median seconds, lower is better](dashboard.png)",
        "",
    ]
    lines += how_it_was_run(
        [(data["command"], out_dir, data["date"])],
        [
            f"Machine: {format_machine(data['machine'])}",
            f"Browser: {data['browser']}",
            f"Load average (1 min) before and after: {data['load'][0]:g} and "
            f"{data['load'][1]:g}: the machine was shared with other jobs",
        ],
        intro=[
            "Both studies are written once into SQLite files (metatune's storage; Optuna's RDB "
            "storage through `study.add_trials`) and reused. Each repeat starts each dashboard "
            "with its own command line on a free loopback port, times the HTTP requests, stops "
            "it, starts it again and times headless Chromium in a fresh browser context."
        ],
        root=ROOT,
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), dpi=110)
    ax = fig.add_subplot(111)
    keys = list(METRICS)
    x = np.arange(len(keys))
    for k, (tool, color) in enumerate(zip(TOOLS, ("tab:blue", "tab:orange"), strict=True)):
        s = data["summary"][tool]
        med = [s.get(m, {}).get("median", 0.0) for m in keys]
        lo = [med[i] - s.get(m, {}).get("min", 0.0) for i, m in enumerate(keys)]
        hi = [s.get(m, {}).get("max", 0.0) - med[i] for i, m in enumerate(keys)]
        ax.bar(x + (k - 0.5) * 0.38, med, 0.38, yerr=[lo, hi], label=tool, color=color, capsize=3)
    ax.set_xticks(x, [METRICS[m].replace(", ", "\n") for m in keys], fontsize=8)
    ax.set_ylabel("seconds (median, min-max)")
    ax.set_title(f"{data['trials']:,} trials on SQLite", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "metatune-runs" / "bench-dashboard",
        help="folder for the two databases (made once, then reused)",
    )
    args = parser.parse_args(argv)
    if args.trials < 10 or args.repeats < 1:
        parser.error("--trials must be >= 10 and --repeats >= 1")
    mt_db, op_db = prepare(args.work, args.trials)
    load_before = os.getloadavg()[0]
    runs = run({"metatune": mt_db, "optuna-dashboard": op_db}, args.repeats, args.trials)
    chromium = os.environ.get("METATUNE_CHROMIUM") or shutil.which("chromium") or "chromium"
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout
    data = {
        "trials": args.trials,
        "repeats": args.repeats,
        "runs": runs,
        "summary": summarize(runs),
        "machine": machine_info(
            ("optuna", "optuna-dashboard", "starlette", "uvicorn", "plotly", "playwright")
        ),
        "browser": version.strip() or "chromium",
        "load": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "command": command_line(args.out),
        "date": now_utc(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dashboard.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    write_markdown(data, args.out / "dashboard.md", str(args.out))
    plot(data, args.out / "dashboard.png")
    print(f"wrote {args.out / 'dashboard.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
