"""Asking does not re-read the whole history: finished trials are read once."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Float, Study, TrialState
from metatune.storage import InMemoryStorage
from metatune.storage.sql import SQLStorage


class _Counting:
    """Counts the trials each storage read returns."""

    def __init__(self, store):
        self.store = store
        self.read = 0
        real = store.get_trials

        def get_trials(*args, **kwargs):
            out = real(*args, **kwargs)
            self.read += len(out)
            return out

        store.get_trials = get_trials


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_each_ask_reads_a_bounded_number_of_trials(kind: str, tmp_path: Path) -> None:
    store = InMemoryStorage() if kind == "memory" else SQLStorage(f"sqlite:///{tmp_path}/s.db")
    study = Study({"x": Float(0, 1)}, storage=store, optimizer="random", seed=0)
    counter = _Counting(store)
    study.optimize(lambda p: p["x"], n_trials=100)
    counter.read = 0
    study.optimize(lambda p: p["x"], n_trials=100)  # 100 more asks, on a history of 100-200
    assert counter.read <= 100 * 4, counter.read  # a full re-read would be about 15,000
    assert len(study.trials) == 200 and all(t.state is TrialState.COMPLETE for t in study.trials)


def test_a_trial_finished_out_of_order_is_seen(tmp_path: Path) -> None:
    study = Study({"x": Float(0, 1)}, optimizer="random", seed=0)
    slow = study.ask()  # stays running while later trials finish
    study.optimize(lambda p: p["x"], n_trials=3)
    study.tell(slow, 0.0)
    study.optimize(lambda p: p["x"], n_trials=1)
    assert study.best.number == slow.number
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
