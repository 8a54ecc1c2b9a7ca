"""A joint architecture + hyperparameter study on SQLite, SIGKILLed mid-trial and resumed."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metatune import TrialState, load_study

WORKER = Path(__file__).with_name("joint_worker.py")
_spec = importlib.util.spec_from_file_location("_metatune_joint_worker", WORKER)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def test_a_killed_joint_study_resumes_and_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    marker = tmp_path / "running"
    n_done = 14  # past nas-bo's 10 random points: model-based trials are stored too
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, "joint", str(n_done), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{proc.stdout.read()}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "worker never reached the hanging trial"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    study = load_study("joint", url)
    done = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert len(done) == n_done
    for t in done:  # every finished trial, its architecture and hyperparameters intact
        study.space.validate(t.params)
        assert t.value == pytest.approx(worker.value_of(t.params))
    before = {t.number: (t.params, t.value) for t in done}

    torch.set_num_threads(1)
    study.optimize(worker.value_of, n_trials=4, show_progress=False)
    after = load_study("joint", url)
    kept = {t.number: (t.params, t.value) for t in after.trials if t.number in before}
    assert kept == before
    assert sum(t.state is TrialState.COMPLETE for t in after.trials) == n_done + 4
    assert after.optimizer.name == "nas-bo"
