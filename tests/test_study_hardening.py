"""Study-level hardening: owners across PID namespaces, sweeping dead workers' trials while a
study runs, metrics without a JSON form, and arguments refused before any work starts."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import metatune.study as study_module
from metatune import Float, Study, TrialState
from metatune._process import identity_is_dead, process_identity
from metatune.storage import InMemoryStorage
from metatune.storage.sql import SQLStorage
from metatune.trial import utcnow

SPACE = {"x": Float(0.0, 1.0)}


def _exited_child_identity() -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from metatune._process import process_identity as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_an_owner_in_another_pid_namespace_is_not_taken_for_dead() -> None:
    dead_here = _exited_child_identity()
    assert identity_is_dead(dead_here)
    host, pid, boot, pidns, start = dead_here.split(":")
    # The same host name and PID in another PID namespace (a container with host networking):
    # nothing here says that process is gone.
    assert not identity_is_dead(":".join([host, pid, boot, pidns + "0", start]))
    assert not identity_is_dead(":".join([host, pid, "another-boot", pidns, start]))
    assert not identity_is_dead(f"{host}:{pid}")  # an old-style owner: heartbeat only
    assert not identity_is_dead(process_identity())  # this process is alive
    # A PID reused by a later process: the start time differs, so the recorded one is dead.
    me = process_identity().split(":")
    assert identity_is_dead(":".join([*me[:4], str(int(me[4]) + 1 if me[4] != "0" else 1)]))


def test_a_live_trial_of_another_namespace_survives_while_a_silent_one_fails(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study(SPACE, storage=url, name="s", optimizer="random", seed=0)
    other = study.ask()
    host, pid, boot, pidns, start = _exited_child_identity().split(":")
    foreign = ":".join([host, pid, boot, pidns + "7", start])
    store = study.storage
    assert isinstance(store, SQLStorage)
    from sqlalchemy import update

    from metatune.storage.sql import _trials  # test-only access to the table

    with store._engine.begin() as conn:
        conn.execute(
            update(_trials)
            .where(_trials.c.number == other.number)
            .values(owner=foreign, heartbeat_at=utcnow())
        )
    reopened = Study(name="s", storage=url, stale_after=60)
    assert reopened.trials[other.number].state is TrialState.RUNNING
    with store._engine.begin() as conn:
        conn.execute(
            update(_trials)
            .where(_trials.c.number == other.number)
            .values(heartbeat_at=utcnow() - timedelta(minutes=5))
        )
    again = Study(name="s", storage=url, stale_after=60)
    failed = again.trials[other.number]
    assert failed.state is TrialState.FAILED and "no heartbeat" in failed.error


def test_dead_workers_trials_are_swept_while_the_study_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    monkeypatch.setattr(study_module, "_monotonic", lambda: clock[0])
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = Study(SPACE, storage=url, name="s", optimizer="random", seed=0, heartbeat_interval=5)
    hung = study.ask()
    from sqlalchemy import update

    from metatune.storage.sql import _trials

    with study.storage._engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            update(_trials)
            .where(_trials.c.number == hung.number)
            .values(owner=_exited_child_identity())
        )
    study.optimize(lambda p: p["x"], n_trials=1)  # within the interval: no sweep yet
    assert study.trials[hung.number].state is TrialState.RUNNING
    clock[0] = 6.0
    study.optimize(lambda p: p["x"], n_trials=1)
    assert study.trials[hung.number].state is TrialState.FAILED


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_metrics_without_a_json_form_fail_alike_in_every_storage(
    storage: str, tmp_path: Path
) -> None:
    store = InMemoryStorage() if storage == "memory" else SQLStorage(f"sqlite:///{tmp_path}/m.db")
    study = Study(SPACE, storage=store, optimizer="random", seed=0)
    results = iter(
        [
            {"objective": 1.0, "h": np.array([1, 2]), "s": np.float32(0.5), "n": math.nan},
            {"objective": 2.0, "bad": {1, 2}},
            {"objective": 3.0, "obj": object()},
        ]
    )
    study.optimize(lambda p: next(results), n_trials=3)
    ok, bad_set, bad_obj = study.trials
    assert ok.state is TrialState.COMPLETE
    assert ok.user_attrs == {"h": [1, 2], "s": 0.5, "n": "nan"}
    assert bad_set.state is TrialState.FAILED and "metric 'bad' is a set" in bad_set.error
    assert bad_obj.state is TrialState.FAILED and "metric 'obj' is a object" in bad_obj.error
    assert all(t.state.finished for t in study.trials)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
        ({"seed": 2**70}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
        ({"name": "bad\ud800name"}, "name must be valid Unicode text"),
        ({"optimizer": "random", "optimizer_options": {"foo": 1}}, r"\['foo'\].*'random'"),
    ],
)
def test_bad_study_arguments_are_refused_up_front(kwargs: dict, match: str) -> None:
    store = InMemoryStorage()
    with pytest.raises(ValueError, match=match):
        Study(SPACE, storage=store, **kwargs)
    assert store.list_studies() == []


def test_the_largest_seed_is_stored_and_used(tmp_path: Path) -> None:
    study = Study(SPACE, storage=f"sqlite:///{tmp_path}/s.db", name="s", seed=2**63 - 1)
    study.optimize(lambda p: p["x"], n_trials=2)
    assert Study(name="s", storage=f"sqlite:///{tmp_path}/s.db").seed == 2**63 - 1


def test_a_nan_timeout_is_refused() -> None:
    study = Study(SPACE, optimizer="random", seed=0)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        study.optimize(lambda p: 0.0, timeout=float("nan"))


def test_tell_refuses_trial_numbers_that_do_not_exist() -> None:
    study = Study(SPACE, optimizer="random", seed=0)
    study.ask()
    with pytest.raises(ValueError, match="trial number must be >= 0"):
        study.tell(-1, 1.0)
    with pytest.raises(KeyError, match="no trial 99"):
        study.tell(99, 1.0)
    assert study.trials[0].state is TrialState.RUNNING


@pytest.mark.parametrize("result", ["1.5", True, np.bool_(True), b"1"])
def test_text_and_booleans_are_not_objective_values(result: object) -> None:
    study = Study(SPACE, optimizer="random", seed=0)
    study.optimize(lambda p: result, n_trials=1)
    trial = study.trials[0]
    assert trial.state is TrialState.FAILED and "non-number" in trial.error


def test_system_exit_in_an_objective_fails_the_trial_and_propagates() -> None:
    study = Study(SPACE, optimizer="random", seed=0)

    def leave(p: dict) -> float:
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        study.optimize(leave, n_trials=1)
    trial = study.trials[0]
    assert trial.state is TrialState.FAILED and "SystemExit" in trial.error
