"""The storage contract, checked against every backend (in memory and SQLite)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from metatune.storage import BaseStorage, DuplicateStudyError
from metatune.storage.base import process_owner
from metatune.trial import TrialState, utcnow

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False}}


def _study(storage: BaseStorage, name: str = "s", **kw):
    return storage.create_study(name, "minimize", SPACE, "random", **kw)


def test_create_get_list_delete_study(storage: BaseStorage) -> None:
    a = _study(storage, "a", optimizer_options={"n_init": 3}, seed=7)
    b = storage.create_study("b", "maximize", SPACE, "gp")
    assert a.id != b.id
    got = storage.get_study("a")
    assert got is not None
    assert (got.id, got.name, got.direction, got.optimizer) == (a.id, "a", "minimize", "random")
    assert got.space == SPACE
    assert got.optimizer_options == {"n_init": 3}
    assert got.seed == 7
    assert got.created_at == a.created_at
    assert storage.get_study("b").seed is None  # type: ignore[union-attr]
    assert storage.get_study("missing") is None
    assert [s.name for s in storage.list_studies()] == ["a", "b"]

    storage.create_trial(a.id, {"x": 0.5})
    storage.delete_study("a")
    assert storage.get_study("a") is None
    assert [s.name for s in storage.list_studies()] == ["b"]
    with pytest.raises(KeyError):
        storage.delete_study("a")
    # the name is free again, and the new study starts with no trials
    again = _study(storage, "a")
    assert storage.get_trials(again.id) == []


def test_duplicate_study_name(storage: BaseStorage) -> None:
    _study(storage, "dup")
    with pytest.raises(DuplicateStudyError, match="dup"):
        _study(storage, "dup")
    assert len(storage.list_studies()) == 1


def test_trial_numbers_are_dense_per_study(storage: BaseStorage) -> None:
    a, b = _study(storage, "a"), _study(storage, "b")
    numbers_a = [storage.create_trial(a.id, {}).number for _ in range(5)]
    numbers_b = [storage.create_trial(b.id, {}).number for _ in range(3)]
    assert numbers_a == [0, 1, 2, 3, 4]
    assert numbers_b == [0, 1, 2]
    assert [t.number for t in storage.get_trials(a.id)] == numbers_a


def test_create_trial_is_running_and_owned(storage: BaseStorage) -> None:
    s = _study(storage)
    before = utcnow()
    t = storage.create_trial(s.id, {}, system_attrs={"worker": 1})
    assert t.state is TrialState.RUNNING and t.value is None and t.finished_at is None
    assert t.system_attrs == {"worker": 1}
    [stored] = storage.get_trials(s.id)
    assert stored.state is TrialState.RUNNING
    assert before <= stored.started_at <= utcnow()
    assert stored.started_at.tzinfo is None
    [(number, owner, beat)] = storage._running_owners(s.id)
    assert number == 0 and owner == process_owner()
    assert beat is not None and before <= beat <= utcnow()


def test_set_trial_params(storage: BaseStorage) -> None:
    s = _study(storage)
    t = storage.create_trial(s.id, {})
    storage.set_trial_params(s.id, t.number, {"x": 0.25})
    assert storage.get_trials(s.id)[0].params == {"x": 0.25}
    storage.finish_trial(s.id, t.number, TrialState.COMPLETE, value=1.0)
    with pytest.raises(ValueError, match="already complete"):
        storage.set_trial_params(s.id, t.number, {"x": 0.5})
    assert storage.get_trials(s.id)[0].params == {"x": 0.25}


def test_finish_trial_and_finish_twice(storage: BaseStorage) -> None:
    s = _study(storage)
    t = storage.create_trial(s.id, {"x": 0.1}, system_attrs={"a": 1})
    done = storage.finish_trial(
        s.id,
        t.number,
        TrialState.COMPLETE,
        value=0.5,
        user_attrs={"acc": 0.9},
        system_attrs={"b": 2},
    )
    assert done.state is TrialState.COMPLETE and done.value == 0.5
    assert done.user_attrs == {"acc": 0.9}
    assert done.system_attrs == {"a": 1, "b": 2}
    assert done.finished_at is not None and done.finished_at >= done.started_at
    assert done.duration is not None and done.duration >= 0
    with pytest.raises(ValueError, match="already complete"):
        storage.finish_trial(s.id, t.number, TrialState.FAILED, error="late")
    [stored] = storage.get_trials(s.id)
    assert (stored.state, stored.value, stored.error) == (TrialState.COMPLETE, 0.5, None)
    assert stored.user_attrs == {"acc": 0.9}


def test_finish_trial_failed_and_bad_state(storage: BaseStorage) -> None:
    s = _study(storage)
    t = storage.create_trial(s.id, {})
    with pytest.raises(ValueError, match="complete, failed or pruned"):
        storage.finish_trial(s.id, t.number, TrialState.RUNNING)
    failed = storage.finish_trial(s.id, t.number, TrialState.FAILED, error="boom\ntraceback")
    assert failed.state is TrialState.FAILED and failed.value is None
    assert failed.error == "boom\ntraceback"
    assert storage._running_owners(s.id) == []


def test_get_trials_state_filter(storage: BaseStorage) -> None:
    s = _study(storage)
    for _ in range(5):
        storage.create_trial(s.id, {})
    storage.finish_trial(s.id, 0, TrialState.COMPLETE, value=1.0)
    storage.finish_trial(s.id, 2, TrialState.FAILED, error="x")
    storage.finish_trial(s.id, 3, TrialState.COMPLETE, value=2.0)

    def numbers(states):
        return [t.number for t in storage.get_trials(s.id, states)]

    assert numbers(None) == [0, 1, 2, 3, 4]
    assert numbers([TrialState.COMPLETE]) == [0, 3]
    assert numbers([TrialState.FAILED]) == [2]
    assert numbers([TrialState.RUNNING]) == [1, 4]
    assert numbers(["complete", "failed"]) == [0, 2, 3]
    assert numbers([]) == []


PARAMS = {
    "f": 0.1,
    "pi": math.pi,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "neg": -123.456e-7,
    "whole_float": 3.0,
    "i": 7,
    "big_int": 2**53 + 1,
    "neg_int": -4,
    "s": 'héllo ✓ "quoted" \n',
    "empty": "",
    "t": True,
    "f_bool": False,
    "none": None,
}


def test_params_round_trip_exactly(storage: BaseStorage) -> None:
    s = _study(storage)
    storage.create_trial(s.id, dict(PARAMS))
    t = storage.create_trial(s.id, {})
    storage.set_trial_params(s.id, t.number, dict(PARAMS))
    storage.finish_trial(s.id, t.number, TrialState.COMPLETE, value=math.pi)
    for stored in storage.get_trials(s.id):
        assert stored.params == PARAMS
        for key, value in PARAMS.items():
            assert type(stored.params[key]) is type(value), key
    assert storage.get_trials(s.id)[1].value == math.pi


def test_heartbeat_updates(storage: BaseStorage) -> None:
    s = _study(storage)
    t = storage.create_trial(s.id, {})
    [(_, _, first)] = storage._running_owners(s.id)
    time.sleep(0.01)
    storage.heartbeat(s.id, t.number)
    [(_, owner, second)] = storage._running_owners(s.id)
    assert first is not None and second is not None and second > first
    assert owner == process_owner()


def _dead_local_owner() -> str:
    """The owner identity of a child process of this machine that has exited."""
    child = subprocess.run(
        [sys.executable, "-c", "from metatune.storage.base import process_owner as p; print(p())"],
        text=True,
        capture_output=True,
        check=True,
    )
    return child.stdout.strip()


def test_fail_stale_trials(storage: BaseStorage, set_trial_owner) -> None:
    s = _study(storage)
    for _ in range(5):
        storage.create_trial(s.id, {})
    now = utcnow()
    set_trial_owner(storage, s.id, 0, "otherhost:123", now - timedelta(hours=1))
    set_trial_owner(storage, s.id, 1, "otherhost:124", now)
    dead = _dead_local_owner()
    set_trial_owner(storage, s.id, 2, dead, now)
    # 3 is ours and fresh; 4 finishes normally before the sweep
    storage.finish_trial(s.id, 4, TrialState.COMPLETE, value=1.0)

    assert storage.fail_stale_trials(s.id, grace_seconds=60) == [0, 2]
    trials = storage.get_trials(s.id)
    states = {t.number: t.state for t in trials}
    assert states == {
        0: TrialState.FAILED,
        1: TrialState.RUNNING,
        2: TrialState.FAILED,
        3: TrialState.RUNNING,
        4: TrialState.COMPLETE,
    }
    assert "no heartbeat" in trials[0].error and "otherhost:123" in trials[0].error
    assert "died" in trials[2].error and dead in trials[2].error
    assert trials[4].value == 1.0
    # a second sweep finds nothing more to do
    assert storage.fail_stale_trials(s.id, grace_seconds=60) == []
