"""A fault storm on one SQLite study: workers SIGKILLed at random, respawned, then checked.

--workers processes optimize one study (random search, a few ms per trial). Each worker logs a
trial to its own file after `tell` returned, so every logged trial was stored. A driver kills a
random worker every --interval seconds (SIGKILL: no cleanup runs) and starts a new one, until
--kills kills. Then it checks, from the database alone:

* nothing lost: every logged trial is stored COMPLETE, with the logged parameters and value;
* nothing duplicated: trial numbers are dense and unique, and no two trials share parameters
  (random search draws the Sobol point of the trial's number, so a repeat would be a bug);
* nothing left hanging: once the study is reopened, no trial of a killed worker is RUNNING.

Writes docs/benchmarks/sigkill-storm.{json,md}.

    python benchmarks/sigkill_storm.py                      # 4 workers, 60 kills, ~3 min
    python benchmarks/sigkill_storm.py --kills 10 --out /tmp/storm
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from metatune.benchmarks.common import (
    command_line,
    format_machine,
    how_it_was_run,
    machine_info,
    now_utc,
)

ROOT = Path(__file__).resolve().parents[1]

_WORKER = """
import json, sys, time
from metatune import Float, Int, Categorical, Study
url, log = sys.argv[1], sys.argv[2]
space = {"x": Float(-2.0, 2.0), "n": Int(1, 9), "c": Categorical(["a", "b", "c"])}
study = Study(space, storage=url, name="storm", optimizer="random", seed=1, stale_after=30)
def value_of(p):
    return (p["x"] - 0.3) ** 2 + 0.1 * p["n"] + {"a": 0.0, "b": 0.5, "c": 1.0}[p["c"]]
with open(log, "a") as f:
    while True:
        trial = study.ask()
        time.sleep(0.005)
        done = study.tell(trial, value_of(trial.params))
        f.write(json.dumps({"number": done.number, "params": done.params, "value": done.value}) + "\\n")
        f.flush()
"""


def _spawn(url: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, url, str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def storm(folder: Path, workers: int, kills: int, interval: float, seed: int) -> dict:
    from metatune import Study, TrialState

    url = f"sqlite:///{folder / 'storm.db'}"
    rng = random.Random(seed)
    logs = [folder / f"worker-{i}.jsonl" for i in range(workers)]
    procs = [_spawn(url, log) for log in logs]
    done = 0
    start = time.monotonic()
    crashed: list[str] = []
    try:
        while done < kills:
            time.sleep(interval * rng.uniform(0.5, 1.5))
            i = rng.randrange(workers)
            proc = procs[i]
            if proc.poll() is not None:  # a worker that died by itself is a failure to report
                crashed.append((proc.stderr.read() or b"").decode()[-2000:])  # type: ignore[union-attr]
            else:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                done += 1
            procs[i] = _spawn(url, logs[i])
            if done % 10 == 0 and done:
                print(f"{done} kills, {time.monotonic() - start:.0f}s", flush=True)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    seconds = time.monotonic() - start

    logged = {}
    for log in logs:
        if not log.exists():  # every worker of this slot was killed while starting
            continue
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill: its trial was stored anyway
                continue
            logged[rec["number"]] = rec
    study = Study(name="storm", storage=url, stale_after=30)  # reopening sweeps dead owners
    trials = study.trials
    numbers = [t.number for t in trials]
    by_number = {t.number: t for t in trials}
    lost = [
        n
        for n, rec in logged.items()
        if n not in by_number
        or by_number[n].state is not TrialState.COMPLETE
        or by_number[n].value != rec["value"]
        or by_number[n].params != rec["params"]
    ]
    params = Counter(json.dumps(t.params, sort_keys=True) for t in trials if t.params)
    states = Counter(t.state.value for t in trials)
    return {
        "kills": done,
        "workers": workers,
        "seconds": seconds,
        "trials": len(trials),
        "states": dict(states),
        "logged": len(logged),
        "lost": lost,
        "dense_numbers": numbers == list(range(len(trials))),
        "duplicated_params": sum(c - 1 for c in params.values() if c > 1),
        "running_after_reopen": states.get("running", 0),
        "crashed_workers": crashed,
    }


def write_markdown(data: dict, path: Path) -> None:
    r = data["result"]
    ok = (
        not r["lost"]
        and r["dense_numbers"]
        and not r["duplicated_params"]
        and not r["running_after_reopen"]
        and not r["crashed_workers"]
    )
    lines = [
        "# A SIGKILL storm on one SQLite study",
        "",
        "| workers | kills | trials stored | logged by workers | lost | duplicated | "
        "running after reopening | verdict |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {r['workers']} | {r['kills']} | {r['trials']} | {r['logged']} | {len(r['lost'])} | "
        f"{r['duplicated_params']} | {r['running_after_reopen']} | "
        f"{'nothing lost or duplicated' if ok else 'FAILED'} |",
        "",
        f"States of the stored trials: {r['states']}. Failed trials are the ones a worker was "
        "running when it was killed: reopening the study (or any ask once a heartbeat interval "
        "has passed) fails them, since their owner provably no longer runs.",
        "",
        "What it means: a worker killed at any point (inside ask, inside tell, between them) "
        "leaves no told trial missing, no trial number twice, no point evaluated twice, and no "
        "trial stuck as running.",
        "",
        *how_it_was_run(
            [(data["command"], "docs/benchmarks", f"{data['date']}; {r['seconds']:.0f} s")],
            [f"Machine: {format_machine(data['machine'])}"],
        ),
    ]
    if r["crashed_workers"]:
        lines += ["", "Workers that died by themselves:", "", "```", *r["crashed_workers"], "```"]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--kills", type=int, default=60)
    p.add_argument(
        "--interval",
        type=float,
        default=3.0,
        help="mean seconds between kills (a worker takes a second or two to start)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    args = p.parse_args(argv)
    if args.workers < 1 or args.kills < 1 or not args.interval > 0:
        p.error("--workers and --kills must be positive and --interval above 0")
    with tempfile.TemporaryDirectory() as tmp:
        result = storm(Path(tmp), args.workers, args.kills, args.interval, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "command": command_line(out),
        "date": now_utc(),
        "machine": machine_info(),
        "result": result,
    }
    (out / "sigkill-storm.json").write_text(json.dumps(data, indent=1))
    write_markdown(data, out / "sigkill-storm.md")
    print((out / "sigkill-storm.md").read_text())
    failed = result["lost"] or result["duplicated_params"] or result["running_after_reopen"]
    return 1 if failed or not result["dense_numbers"] or result["crashed_workers"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
