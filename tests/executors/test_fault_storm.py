"""A small fault storm (the full one is benchmarks/faults.py): SIGKILLs, then the audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metatune import Study
from metatune.benchmarks.faults import (
    STUDY,
    _space,
    asktell_storm,
    audit,
    executor_storm,
    passed,
    value_of,
)


def test_audit_finds_a_lost_trial_and_a_number_told_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'storm.db'}"
    study = Study(_space(), storage=url, name=STUDY, optimizer="random", seed=1)
    told = []
    for _ in range(3):
        t = study.ask()
        done = study.tell(t, value_of(t.params))
        told.append(
            {"number": done.number, "state": "complete", "params": done.params, "value": done.value}
        )
    running = study.ask()  # left RUNNING by a live owner (this process): not swept
    log = tmp_path / "log.jsonl"
    lines = [told[0], {**told[1], "value": -1.0}, told[2], told[0], {**told[2], "number": 7}]
    log.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    r = audit(url, [log])
    assert r["lost"] == [1, 7]  # trial 1 is stored with another value, trial 7 not at all
    assert r["duplicated_numbers"] == 1
    assert r["running_after_sweep"] == 1 and running.number == 3
    assert not passed({**r, "crashed": []})


def test_a_few_sigkills_on_sqlite_ask_tell_workers_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'storm.db'}"
    r = asktell_storm(url, tmp_path, workers=2, kills=3, interval=1.0, seed=0)
    assert r["worker_kills"] == 3
    assert r["logged"] > 0  # the workers did work between the kills
    assert passed(r), r


@pytest.mark.slow
def test_a_few_sigkills_on_process_executor_workers_and_driver_lose_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'storm.db'}"
    r = executor_storm(url, tmp_path, "process", workers=4, kills=6, interval=1.0, driver_every=3)
    assert r["driver_kills"] == 2 and r["worker_kills"] == 4
    assert r["logged"] > 0
    assert passed(r), r
