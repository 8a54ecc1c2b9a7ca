"""The fault storm: one study, 4 workers, SIGKILLs at random moments, then an audit.

Two kinds of storm, on any SQL storage (SQLite, PostgreSQL):

* `asktell_storm`: workers are separate processes, each doing ask / evaluate / tell on the shared
  study; a killed worker is started again.
* `executor_storm`: one driver runs ``study.optimize(n_workers=4, executor=...)`` ("process" or
  "ray"); the processes evaluating trials are killed (the executor replaces them), and every
  `driver_every`-th kill hits the driver, which is started again and resumes from storage.

A kill comes at a random moment, but only once another trial has been told since the previous
one, so that a slow machine still sees work between kills.

Whoever tells (a worker, or the driver's callback) logs each trial it was told was stored. The
audit then reads the database alone: logged trials lost or changed, trial numbers duplicated or
missing, points evaluated twice (random search draws the Sobol point of the trial's number, so
a repeat would be a bug), and trials still RUNNING once the study is reopened (the stale sweep).
Used by benchmarks/faults.py and, with a few kills, by the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "STALE_AFTER",
    "asktell_storm",
    "audit",
    "executor_storm",
    "postgres_server",
    "storm_objective",
    "value_of",
]

STUDY = "storm"
STALE_AFTER = 30.0  # seconds without a heartbeat before a trial of a remote owner is stale
PIDS_ENV = "METATUNE_STORM_PIDS"  # the folder where evaluating processes leave their pid
PROGRESS_TIMEOUT = 300.0  # longest wait for a trial to be told before the next kill


def _space() -> dict[str, Any]:
    from metatune import Categorical, Float, Int

    return {"x": Float(-2.0, 2.0), "n": Int(1, 9), "c": Categorical(["a", "b", "c"])}


def value_of(p: dict[str, Any]) -> float:
    return (p["x"] - 0.3) ** 2 + 0.1 * p["n"] + {"a": 0.0, "b": 0.5, "c": 1.0}[p["c"]]


def storm_objective(p: dict[str, Any]) -> float:
    """The executors' objective: leaves this process's pid for the killer, then takes
    0.05-0.35 s (from the params, so it is the same whoever runs it)."""
    folder = os.environ.get(PIDS_ENV)
    if folder:
        Path(folder, str(os.getpid())).touch()
    time.sleep(0.05 + 0.3 * (p["x"] + 2.0) / 4.0)
    return value_of(p)


# -- processes -------------------------------------------------------------------------------------
_ASKTELL_WORKER = """
import json, sys, time
from metatune import Study
from metatune.benchmarks.faults import STALE_AFTER, STUDY, _space, value_of
url, log = sys.argv[1], sys.argv[2]
study = Study(_space(), storage=url, name=STUDY, optimizer="random", seed=1,
              stale_after=STALE_AFTER)
with open(log, "a") as f:
    while True:
        trial = study.ask()
        time.sleep(0.005)
        done = study.tell(trial, value_of(trial.params))
        f.write(json.dumps({"number": done.number, "state": done.state.value,
                            "params": done.params, "value": done.value}) + "\\n")
        f.flush()
"""

_DRIVER = """
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
from metatune import Study
from metatune.benchmarks.faults import STALE_AFTER, STUDY, _space, storm_objective
url, log, executor, workers, address = sys.argv[1:6]
options = {}
if executor == "ray":
    options = {"address": address, "resources": {"num_cpus": 0.5}}
study = Study(_space(), storage=url, name=STUDY, optimizer="random", seed=1,
              stale_after=STALE_AFTER)
with open(log, "a") as f:
    def told(study, t):
        f.write(json.dumps({"number": t.number, "state": t.state.value, "params": t.params,
                            "value": t.value}) + "\\n")
        f.flush()
    try:
        study.optimize(storm_objective, n_workers=int(workers), executor=executor,
                       executor_options=options, callbacks=[told])
    except KeyboardInterrupt:
        pass
"""


def _start(code: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
    out = open(log, "ab")  # noqa: SIM115 - closed by the caller through _stop
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=out, stderr=subprocess.STDOUT, env=env
    )
    proc._storm_out = out  # type: ignore[attr-defined]
    return proc


def _stop(proc: Any, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc._storm_out.close()


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _told(logs: list[Path]) -> int:
    count = 0
    for log in logs:
        with contextlib.suppress(OSError):
            count += log.read_bytes().count(b"\n")
    return count


def _wait_for_progress(logs: list[Path], since: int) -> int:
    """Wait until more than `since` trials are logged (at most `PROGRESS_TIMEOUT` s): every
    kill comes after some work, however slow the machine."""
    deadline = time.monotonic() + PROGRESS_TIMEOUT
    while (now := _told(logs)) <= since and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- the storms ------------------------------------------------------------------------------------
def asktell_storm(
    url: str, folder: Path, workers: int = 4, kills: int = 50, interval: float = 2.0, seed: int = 0
) -> dict[str, Any]:
    """`workers` processes ask and tell on one study; one is SIGKILLed about every `interval`
    seconds and started again, until `kills` kills; then `audit`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    logs = [folder / f"worker-{i}.jsonl" for i in range(workers)]
    outs = [folder / f"worker-{i}.out" for i in range(workers)]
    procs = [
        _start(_ASKTELL_WORKER, [url, str(log)], out) for log, out in zip(logs, outs, strict=True)
    ]
    done, crashed, told = 0, [], 0
    start = time.monotonic()
    try:
        while done < kills:
            time.sleep(interval * rng.uniform(0.5, 1.5))
            told = _wait_for_progress(logs, told)
            i = rng.randrange(workers)
            if procs[i].poll() is not None:  # died by itself: a failure to report
                crashed.append(_tail(outs[i]))
            else:
                os.kill(procs[i].pid, signal.SIGKILL)
                procs[i].wait()
                done += 1
            procs[i]._storm_out.close()
            procs[i] = _start(_ASKTELL_WORKER, [url, str(logs[i])], outs[i])
    finally:
        for proc in procs:
            _stop(proc)
    seconds = time.monotonic() - start
    return {
        "worker_kills": done,
        "driver_kills": 0,
        "workers": workers,
        "seconds": seconds,
        "crashed": crashed,
        **audit(url, logs),
    }


def executor_storm(
    url: str,
    folder: Path,
    executor: str,
    workers: int = 4,
    kills: int = 50,
    interval: float = 1.5,
    seed: int = 0,
    driver_every: int = 10,
) -> dict[str, Any]:
    """A driver runs ``optimize(n_workers=workers, executor=executor)``; about every
    `interval` seconds a process evaluating trials is SIGKILLed (every `driver_every`-th kill
    the driver instead, started again at once), until `kills` kills; then `audit`.

    For "ray" a local Ray with 2 CPUs is started here (each trial asks for half a CPU) and
    every driver joins it, so a killed driver leaves the cluster running.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pids = folder / "pids"
    pids.mkdir(exist_ok=True)
    rng = random.Random(seed)
    log, out = folder / "driver.jsonl", folder / "driver.out"
    address = ""
    ray = None
    if executor == "ray":
        import ray

        os.environ[PIDS_ENV] = str(pids)  # the raylet, and so every Ray worker, inherits it
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        address = ray.get_runtime_context().gcs_address
    # after ray.init: its authentication mode is in the environment the drivers inherit
    env = {**os.environ, PIDS_ENV: str(pids)}
    args = [url, str(log), executor, str(workers), address]
    driver = _start(_DRIVER, args, out, env)
    worker_kills = driver_kills = 0
    crashed: list[str] = []
    told = 0
    start = time.monotonic()
    try:
        while worker_kills + driver_kills < kills:
            time.sleep(interval * rng.uniform(0.5, 1.5))
            told = _wait_for_progress([log], told)
            if driver.poll() is not None:  # died by itself
                crashed.append(_tail(out))
                driver._storm_out.close()
                driver = _start(_DRIVER, args, out, env)
                continue
            if (worker_kills + driver_kills + 1) % driver_every == 0:
                os.kill(driver.pid, signal.SIGKILL)
                driver.wait()
                driver_kills += 1
                driver._storm_out.close()
                driver = _start(_DRIVER, args, out, env)
                continue
            candidates = [int(p.name) for p in pids.iterdir() if _alive(int(p.name))]
            candidates = [p for p in candidates if p != driver.pid]
            if not candidates:  # every worker is starting: try again shortly
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(sorted(candidates)), signal.SIGKILL)
                worker_kills += 1
        told = _wait_for_progress([log], told)  # a driver at work, not one just restarted
    finally:
        _stop(driver, signal.SIGINT)  # Ctrl-C: the driver fails its running trials and exits
        for p in pids.iterdir():  # a worker a killed driver left behind
            if _alive(int(p.name)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(p.name), signal.SIGKILL)
        if ray is not None:
            ray.shutdown()
            os.environ.pop(PIDS_ENV, None)
    seconds = time.monotonic() - start
    return {
        "worker_kills": worker_kills,
        "driver_kills": driver_kills,
        "workers": workers,
        "seconds": seconds,
        "crashed": crashed,
        **audit(url, [log]),
    }


def audit(url: str, logs: list[Path]) -> dict[str, Any]:
    """Compare what the tellers logged with what the database holds, after reopening the study
    (which fails the RUNNING trials of owners that are dead or silent past `STALE_AFTER`)."""
    from metatune import Study, TrialState

    logged: dict[int, list[dict[str, Any]]] = {}
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill: its trial was stored anyway
                continue
            logged.setdefault(rec["number"], []).append(rec)
    from metatune.storage import get_storage

    storage = get_storage(url)
    trials = []
    if storage.get_study(STUDY) is not None:  # else every worker was killed while starting
        trials = Study(name=STUDY, storage=storage, stale_after=STALE_AFTER).trials
    storage.close()
    by_number = {t.number: t for t in trials}
    lost = []
    for number, recs in logged.items():
        t = by_number.get(number)
        if t is None or any(
            t.state.value != rec["state"] or t.value != rec["value"] or t.params != rec["params"]
            for rec in recs
        ):
            lost.append(number)
    numbers = [t.number for t in trials]
    params = Counter(json.dumps(t.params, sort_keys=True) for t in trials if t.params)
    states = Counter(t.state.value for t in trials)
    logged_complete = sum(1 for recs in logged.values() if recs[0]["state"] == "complete")
    reasons = Counter(_reason(t.error) for t in trials if t.state is TrialState.FAILED)
    return {
        "trials": len(trials),
        "states": dict(states),
        "logged": sum(len(r) for r in logged.values()),
        "logged_complete": logged_complete,
        "lost": sorted(lost),
        "duplicated_numbers": sum(len(r) - 1 for r in logged.values())
        + (len(numbers) - len(set(numbers))),
        "dense_numbers": numbers == list(range(len(trials))),
        "duplicated_params": sum(c - 1 for c in params.values() if c > 1),
        "running_after_sweep": states.get(TrialState.RUNNING.value, 0),
        "failed_because": dict(reasons),
    }


def _reason(error: str | None) -> str:
    """Why a trial of the storm failed, from its stored error."""
    text = error or ""
    if text.startswith("stale trial"):
        return "stale: its owner died"
    if "interrupted" in text or text.startswith("KeyboardInterrupt"):  # the latter: inside ask
        return "interrupted (Ctrl-C)"
    if "died" in text:
        return "its worker died"
    return "other: " + text.splitlines()[0][:80] if text else "no error recorded"


def passed(result: dict[str, Any]) -> bool:
    return (
        not result["lost"]
        and not result["duplicated_numbers"]
        and result["dense_numbers"]
        and not result["duplicated_params"]
        and not result["running_after_sweep"]
        and not result["crashed"]
        and not any(k.startswith("other") for k in result.get("failed_because", {}))
    )


# -- a throwaway PostgreSQL --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError(
            "no PostgreSQL server found: install Debian's postgresql package, or pass the URL "
            "of a throwaway database"
        )
    return versions[-1].parent


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of its own in a temporary folder (Debian's binaries, as the CI does:
    run as the postgres user when this is root), on loopback; yields its URL, stops it after."""
    bin_dir = _pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="metatune-faults-pg-"))
    port = _free_port()
    as_root = os.geteuid() == 0

    def run(*cmd: str) -> None:
        line = " ".join(f"'{c}'" for c in cmd)
        full = ["su", "postgres", "-s", "/bin/sh", "-c", line] if as_root else list(cmd)
        subprocess.run(full, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    if as_root:
        shutil.chown(folder, "postgres")
    data, log = folder / "data", folder / "log"
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        opts = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start")
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "faults")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/faults"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
