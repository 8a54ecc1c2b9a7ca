"""optimize(n_workers=N) on local worker processes: results as they finish, faults contained."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _objectives import (
    BRANIN_SPACE,
    FIT_COST,
    PREP_COST,
    branin,
    branin_in_2s,
    exit_when_x1_high,
    learning_curve,
    prune_when_x1_high,
    raise_when_x1_high,
    random_median_best,
    sleep_when_x1_high,
    small_pipeline,
)

from metatune import Study, TrialState
from metatune.executors import EXECUTORS, Executor, make_executor
from metatune.executors.process import ProcessExecutor
from metatune.pruners import Pruner
from metatune.trial import SystemAttr


def _distinct_params(study: Study) -> int:
    return len({json.dumps(t.params, sort_keys=True) for t in study.trials})


def test_registry_names_both_executors_and_refuses_unknown_ones() -> None:
    assert EXECUTORS.names() == ["process", "ray"]
    assert issubclass(EXECUTORS.get("process"), Executor)
    with pytest.raises(ValueError, match="unknown executor 'dask'.*process, ray"):
        make_executor("dask", None)
    with pytest.raises(ValueError, match="context"):
        make_executor("process", {"context": "fork"})
    with pytest.raises(TypeError, match="executor_options for executor 'process'"):
        make_executor("process", {"cpus": 2})
    with pytest.raises(ValueError, match="pass them to the constructor"):
        make_executor(ProcessExecutor(), {"context": "spawn"})


def test_bad_executor_is_refused_before_any_trial() -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    with pytest.raises(ValueError, match="unknown executor"):
        study.optimize(branin, n_trials=4, n_workers=2, executor="nope")
    assert study.trials == []


def test_four_processes_beat_random_search_with_distinct_complete_trials() -> None:
    # The GP, asking with 3 trials pending each time, gets below random search's median best
    # (5 seeds, same count) only if results come back and the pending points keep asks apart;
    # which results are back at each ask depends on timing, so the margin must not be thin.
    n = 16
    rand_best = random_median_best(n)
    gp = Study(
        BRANIN_SPACE,
        optimizer="gp",
        seed=2,
        optimizer_options={"n_candidates": 256, "n_startup_trials": 6},
    )
    gp.optimize(branin, n_trials=n, n_workers=4)
    trials = gp.trials
    assert [t.number for t in trials] == list(range(n))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert _distinct_params(gp) == n
    assert all(t.value == pytest.approx(branin(t.params)) for t in trials)
    assert gp.best_value < rand_best


def test_an_exception_fails_only_its_trial() -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    study.optimize(raise_when_x1_high, n_trials=8, n_workers=2, show_progress=True)
    trials = study.trials
    assert len(trials) == 8
    high = [t for t in trials if t.params["x1"] > 5.0]
    assert high and len(high) < 8
    for t in trials:
        if t.params["x1"] > 5.0:
            assert t.state is TrialState.FAILED
            assert t.error.startswith("ValueError: x1=")
            assert "raise_when_x1_high" in t.error  # the worker's traceback came back
        else:
            assert t.state is TrialState.COMPLETE


def test_a_worker_raising_trial_pruned_is_told_pruned() -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    study.optimize(prune_when_x1_high, n_trials=6, n_workers=2)
    for t in study.trials:
        high = t.params["x1"] > 5.0
        assert t.state is (TrialState.PRUNED if high else TrialState.COMPLETE)


class _PruneAbove(Pruner):
    """Prunes a trial whose latest report is above `limit`: a decision the test can predict."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def prune(self, trial, trials, direction) -> bool:
        return trial.intermediate_values[max(trial.intermediate_values)] > self.limit


def test_workers_report_to_the_drivers_storage_and_its_pruner_answers() -> None:
    limit = 30.0
    study = Study(BRANIN_SPACE, optimizer="random", seed=0, pruner=_PruneAbove(limit))
    study.optimize(learning_curve, n_trials=8, n_workers=2)
    trials = study.trials
    assert len(trials) == 8
    for t in trials:
        curve = [branin(t.params) + 3 - s for s in range(4)]
        if curve[0] > limit:  # pruned at its first report, which was stored
            assert t.state is TrialState.PRUNED
            assert t.intermediate_values == {0: pytest.approx(curve[0])}
        else:
            assert t.state is TrialState.COMPLETE, t.error
            assert t.intermediate_values == {s: pytest.approx(v) for s, v in enumerate(curve)}
    assert {t.state for t in trials} == {TrialState.PRUNED, TrialState.COMPLETE}


def test_a_dead_worker_fails_its_trial_and_the_study_goes_on() -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    study.optimize(exit_when_x1_high, n_trials=6, n_workers=2)
    trials = study.trials
    assert len(trials) == 6
    assert any(t.params["x1"] > 5.0 for t in trials)
    for t in trials:
        if t.params["x1"] > 5.0:
            assert t.state is TrialState.FAILED
            # the exit code is named when this process could still read it; the pool's own
            # thread may reap the worker first (a race that a loaded machine makes likely)
            assert "died" in t.error and "while running this trial" in t.error, t.error
            assert "exit code" not in t.error or "(exit code 7)" in t.error, t.error
        else:  # the other worker's trials and those after the rebuilt pool all complete
            assert t.state is TrialState.COMPLETE, t.error


def _interrupt_after(k: int):
    seen = []

    def callback(study: Study, trial) -> None:
        seen.append(trial.number)
        if len(seen) == k:
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does to the driver

    return callback, seen


def test_ctrl_c_keeps_finished_trials_and_leaves_none_running(tmp_path: Path) -> None:
    # A test run started from a background shell inherits SIGINT ignored, so Python never
    # installed its KeyboardInterrupt handler: install it here, as an interactive run has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_keeps_finished_trials(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_keeps_finished_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = Study(BRANIN_SPACE, optimizer="random", seed=0, storage=url, name="s")
    callback, seen = _interrupt_after(2)
    with pytest.raises(KeyboardInterrupt):
        # trials with x1 > 2.5 sleep a minute: they are running when the driver stops
        study.optimize(sleep_when_x1_high, n_trials=20, n_workers=3, callbacks=[callback])
    trials = Study(name="s", storage=url).trials
    states = {t.number: t for t in trials}
    assert all(states[n].state is TrialState.COMPLETE for n in seen)
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    interrupted = [t for t in trials if t.state is TrialState.FAILED]
    assert interrupted and all("interrupted by the user" in t.error for t in interrupted)
    assert all(t.params["x1"] > 2.5 for t in interrupted)


def test_timeout_stops_the_asking_and_lets_running_trials_finish() -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)
    # every trial takes 2 s: the timeout has passed before any of them is told
    study.optimize(branin_in_2s, timeout=0.5, n_workers=2)
    trials = study.trials
    assert len(trials) <= 2
    assert all(t.state is TrialState.COMPLETE for t in trials)


def test_unpicklable_objective_is_refused_before_any_trial() -> None:
    study = Study(BRANIN_SPACE, optimizer="random", seed=0)

    def local(p):
        return p["x1"]

    for objective, name in ((lambda p: p["x1"], "<lambda>"), (local, "local")):
        with pytest.raises(TypeError, match=f"objective '.*{name}' cannot be sent to worker"):
            study.optimize(objective, n_trials=4, n_workers=2)
    assert study.trials == []


def test_budget_counts_every_workers_cost_on_a_pipeline(tmp_path: Path) -> None:
    pipe = small_pipeline(str(tmp_path / "cache"))
    study = Study(pipe, optimizer="random", seed=0)
    budget = 30.0
    study.optimize(pipe, budget=budget, n_workers=3)
    trials = study.trials
    assert all(t.state is TrialState.COMPLETE for t in trials)
    costs = [t.system_attrs[SystemAttr.COST] for t in trials]
    # every trial's own stage records came back from its worker
    assert all(len(t.system_attrs[SystemAttr.STAGES]) == 2 for t in trials)
    assert study.cost_spent == pytest.approx(sum(costs))
    # asking stopped once the finished trials' cost reached the budget; at most the other two
    # workers' trials were still running then
    max_cost = PREP_COST + FIT_COST
    assert budget <= study.cost_spent < budget + 3 * max_cost
    before_last = sorted(trials, key=lambda t: t.finished_at)[:-3]
    assert sum(t.system_attrs[SystemAttr.COST] for t in before_last) < budget
    # the cache folder is shared: prefixes written by one worker are read by the others
    assert any(t.system_attrs[SystemAttr.CACHE_DEPTH] == 1 for t in trials)


def test_a_restarted_driver_resumes_from_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = Study(BRANIN_SPACE, optimizer="random", seed=0, storage=url, name="resume")
    first.optimize(branin, n_trials=5, n_workers=2)
    again = Study(name="resume", storage=url)  # a new driver: everything from storage
    assert len(again.trials) == 5
    # an executor instance is taken as it is (here with the other start method)
    again.optimize(branin, n_trials=4, n_workers=2, executor=ProcessExecutor("forkserver"))
    trials = Study(name="resume", storage=url).trials
    assert [t.number for t in trials] == list(range(9))
    assert all(t.state is TrialState.COMPLETE for t in trials)
    assert _distinct_params(again) == 9


_DRIVER = """
import sys
from _objectives import BRANIN_SPACE, sleepy
from metatune import Study
if __name__ == "__main__":
    Study(BRANIN_SPACE, optimizer="random", seed=0).optimize(sleepy, n_trials=4, n_workers=2)
"""


def _marked(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker.encode() in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_workers_of_a_killed_driver_exit(tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    marker = f"METATUNE_TEST_DRIVER={os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), *sys.path])
    driver = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        deadline = time.monotonic() + 120
        while len([p for p in _marked(marker) if p != driver.pid]) < 2:  # both workers up
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        driver.kill()  # SIGKILL: nothing of the driver runs after this
        driver.wait()
        deadline = time.monotonic() + 60
        while [p for p in _marked(marker) if p != driver.pid] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [p for p in _marked(marker) if p != driver.pid] == []
    finally:
        for pid in _marked(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
