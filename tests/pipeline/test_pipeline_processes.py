"""Two processes tuning one pipeline: one study in SQLite, one cache folder, one cost budget."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections import Counter
from pathlib import Path

from metatune import TrialState, load_study
from metatune.pipeline import summarize

WORKER = Path(__file__).with_name("pipeline_worker.py")
_spec = importlib.util.spec_from_file_location("_metatune_pipeline_worker", WORKER)
assert _spec is not None and _spec.loader is not None
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def test_two_processes_share_a_study_a_cache_and_a_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pipe.db'}"
    cache, log, budget = tmp_path / "cache", tmp_path / "prep.log", 60.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, str(cache), str(budget), str(log)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output

    trials = load_study("shared-pipe", url).trials
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state is TrialState.COMPLETE for t in trials), [t.error for t in trials]
    for t in trials:  # a served prefix gives the same result as a computed one
        assert t.value == worker.value_of(t.params)

    # the budget is shared: each worker checks it before a trial, so the overshoot is at most
    # one fresh trial per worker
    spent = sum(t.system_attrs["cost"] for t in trials)
    fresh = worker.PREP_COST + worker.FIT_COST
    assert budget <= spent <= budget + 2 * fresh

    # prep has 3 values: after those are cached, every later trial is served from the cache,
    # whichever process computed the prefix (both may compute one value at the same time)
    runs = Counter(int(line.split()[1]) for line in log.read_text().splitlines())
    assert set(runs) <= {1, 2, 3} and all(count <= 2 for count in runs.values())
    hits = [t for t in trials if t.system_attrs["stages"][0]["cache_hit"]]
    assert len(hits) == len(trials) - sum(runs.values())
    assert summarize(trials)["trials_with_cache_hits"] == len(hits) > 0
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    workers = {p.name.removeprefix("done-") for p in tmp_path.glob("done-*")}
    assert len(workers) == 2 and pids <= workers
