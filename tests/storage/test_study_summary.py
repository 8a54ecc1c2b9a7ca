"""`summarize_study`: every storage's counts and best trial agree with reading the trials."""

from __future__ import annotations

import pytest

from metatune.storage import BaseStorage
from metatune.trial import TrialState


def _fill(storage: BaseStorage, name: str, direction: str, directions=None):
    study = storage.create_study(name, direction, {}, "random", directions=directions)
    values = [3.0, -1.0, 7.5, -1.0, 2.0]
    for v in values:
        t = storage.create_trial(study.id, {"x": v})
        if directions:
            storage.finish_trial(study.id, t.number, TrialState.COMPLETE, value=v, values=[v, -v])
        else:
            storage.finish_trial(study.id, t.number, TrialState.COMPLETE, value=v)
    failed = storage.create_trial(study.id, {"x": 0.0})
    storage.finish_trial(study.id, failed.number, TrialState.FAILED, error="boom")
    pruned = storage.create_trial(study.id, {"x": 0.0})
    # a pruned trial's value is its last report: lower than every complete one, never the best
    storage.finish_trial(study.id, pruned.number, TrialState.PRUNED, value=-100.0)
    storage.create_trial(study.id, {"x": 1.0})  # still running
    return study


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_summary_counts_every_state_and_finds_the_best(
    storage: BaseStorage, direction: str
) -> None:
    study = _fill(storage, f"s-{direction}", direction)
    summary = storage.summarize_study(study)
    assert summary.counts == {"running": 1, "complete": 5, "failed": 1, "pruned": 1}
    assert summary.n_trials == 8
    if direction == "minimize":  # two trials tie at -1.0: the first one is the best
        assert (summary.best_number, summary.best_value) == (1, -1.0)
    else:
        assert (summary.best_number, summary.best_value) == (2, 7.5)


def test_summary_of_an_empty_and_of_a_multi_objective_study(storage: BaseStorage) -> None:
    empty = storage.create_study("empty", "minimize", {}, "random")
    summary = storage.summarize_study(empty)
    assert summary.n_trials == 0 and summary.best_number is None and summary.best_value is None
    assert set(summary.counts) == {s.value for s in TrialState}
    mo = _fill(storage, "mo", "minimize", directions=["minimize", "minimize"])
    summary = storage.summarize_study(mo)
    assert summary.counts["complete"] == 5
    assert summary.best_number is None and summary.best_value is None  # a front, not a best
