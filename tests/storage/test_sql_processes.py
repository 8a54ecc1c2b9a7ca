"""SQLite shared by real processes: a SIGKILLed worker, and two workers on one study."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metatune import Study, TrialState, load_study

WORKER = Path(__file__).with_name("sql_worker.py")
_spec = importlib.util.spec_from_file_location("_metatune_sql_worker", WORKER)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _spawn(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"worker did not reach {path.name} in {timeout}s")
        time.sleep(0.05)


def test_sigkill_loses_no_completed_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    marker = tmp_path / "running"
    n_done = 4
    proc = _spawn("hang", url, "killed", n_done, marker)
    try:
        _wait_for(marker, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    study = Study(name="killed", storage=url)  # opening sweeps the dead worker's trial
    trials = study.trials
    assert [t.number for t in trials] == list(range(n_done + 1))
    for t in trials[:n_done]:
        assert t.state is TrialState.COMPLETE
        assert t.value == worker.value_of(t.params)
    hung = trials[n_done]
    assert hung.state is TrialState.FAILED
    assert hung.params  # it had been asked and suggested before the kill
    assert "died" in hung.error and f":{proc.pid}" in hung.error
    assert study.best.number in range(n_done)


def test_two_processes_share_one_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    per_worker = 15
    outs = [tmp_path / f"results-{i}.jsonl" for i in range(2)]
    procs = [_spawn("optimize", url, "shared", per_worker, out) for out in outs]
    for proc in procs:
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, output

    study = load_study("shared", url)
    trials = study.trials
    assert [t.number for t in trials] == list(range(2 * per_worker))
    assert all(t.state is TrialState.COMPLETE for t in trials), [t for t in trials if t.error]

    written = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    assert [len(out.read_text().splitlines()) for out in outs] == [per_worker, per_worker]
    stored = sorted((json.dumps(t.params, sort_keys=True), t.value) for t in trials)
    results = sorted((json.dumps(r["params"], sort_keys=True), r["value"]) for r in written)
    assert stored == results
    # random search indexes its Sobol sequence by trial number, so no point was evaluated twice
    assert len({p for p, _ in stored}) == 2 * per_worker


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_reuse_parent_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    study = Study(worker.SPACE, storage=url, name="fork", optimizer="random", seed=0)
    study.optimize(worker.value_of, n_trials=2, show_progress=False)
    pid = os.fork()
    if pid == 0:  # child: keep going on the inherited study object
        code = 1
        try:
            study.optimize(worker.value_of, n_trials=2, show_progress=False)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    study.optimize(worker.value_of, n_trials=1, show_progress=False)
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state is TrialState.COMPLETE for t in trials)
