"""A study stored in SQLite outlives its objects: reopen it by name and everything is there."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from metatune import Categorical, Float, Int, Space, Study, TrialState, load_study
from metatune.storage import get_storage
from metatune.storage.sql import SQLStorage

SPACE = Space({"x": Float(-2.0, 2.0), "lr": Float(1e-4, 1.0, log=True), "n": Int(1, 9),
               "act": Categorical(["relu", "tanh", None, 3, True])})  # fmt: skip


def objective(params: dict) -> dict:
    value = (params["x"] - 0.3) ** 2 + params["lr"] + 0.01 * params["n"]
    return {"objective": value, "act": params["act"]}


def _snapshot(study: Study) -> list[tuple]:
    return [(t.number, t.state, t.params, t.value, t.error, t.user_attrs) for t in study.trials]


def test_reopened_study_sees_every_trial_and_the_same_best(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'study.db'}"  # parents are created
    study = Study(SPACE, storage=url, name="persist", optimizer="random", seed=3,
                  direction="minimize")  # fmt: skip
    study.optimize(objective, n_trials=6, show_progress=False)
    trial = study.ask()
    study.tell(trial, error="boom")
    before = _snapshot(study)
    assert [s for (_, s, *_) in before].count(TrialState.COMPLETE) == 6
    best = study.best
    study.storage.close()

    reopened = Study(name="persist", storage=url)
    loaded = load_study("persist", url)
    for other in (reopened, loaded):
        assert other.space == SPACE
        assert (other.direction, other.seed, other.optimizer.name) == ("minimize", 3, "random")
        assert _snapshot(other) == before
        assert other.best.number == best.number
        assert other.best_value == best.value
        assert other.best_params == best.params

    # the resumed study keeps numbering after the stored trials, and both objects see the new one
    reopened.optimize(objective, n_trials=2, show_progress=False)
    assert [t.number for t in loaded.trials] == list(range(9))


def test_study_on_in_memory_sqlite_with_heartbeats() -> None:
    """``sqlite://`` keeps one shared connection; the heartbeat thread must not break it."""

    def slow(params: dict) -> float:
        time.sleep(0.05)
        return params["x"] ** 2

    study = Study(SPACE, storage="sqlite://", optimizer="random", heartbeat_interval=0.005)
    assert isinstance(study.storage, SQLStorage)
    study.optimize(slow, n_trials=4, show_progress=False)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4


def test_get_storage_resolves_sqlite_urls(tmp_path: Path) -> None:
    store = get_storage(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(store, SQLStorage)
    assert store.list_studies() == []
    store.close()


def test_load_study_unknown_name_lists_known(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    Study(SPACE, storage=url, name="here", optimizer="random")
    with pytest.raises(ValueError, match="here"):
        load_study("not-here", url)
