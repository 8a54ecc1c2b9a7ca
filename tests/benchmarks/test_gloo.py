"""The gloo helper: every rank's result, a crash at exit after the work is saved is no failure,
a crash before it is run once more, and a job that always crashes is raised."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metatune.benchmarks.gloo import gloo_results, run_on_gloo

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as a native abort would: no Python cleanup runs


def _sum_of_ranks(rank: int, job: dict) -> dict:
    t = torch.tensor([rank + job["add"]], dtype=torch.float64)
    dist.all_reduce(t)
    return {"rank": rank, "sum": float(t.item()), "tensor": t}


def test_every_rank_returns_its_own_result():
    results = gloo_results(_sum_of_ranks, {"add": 1.0})
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["sum"] == 3.0 for r in results)  # (0+1)+(1+1)
    torch.testing.assert_close(results[1]["tensor"], torch.tensor([3.0], dtype=torch.float64))


def test_run_on_gloo_returns_rank_0s_result_as_plain_data():
    assert run_on_gloo(_plain, None) == {"rank": 0, "x": 0.5}


def _plain(rank: int, _job: None) -> dict:
    import numpy as np

    return {"rank": rank, "x": np.float64(0.5)}  # a NumPy scalar comes back a float


def _abort_at_exit(rank: int, _job: None) -> dict:
    if rank == 1:
        import atexit

        atexit.register(_die)  # would run only at interpreter shutdown
    return {"rank": rank}


def test_a_rank_that_finished_its_work_leaves_without_interpreter_shutdown():
    assert [r["rank"] for r in gloo_results(_abort_at_exit, None)] == [0, 1]


def _crash_once(rank: int, job: dict) -> dict:
    marker = Path(job["marker"])
    if rank == 1 and not marker.exists():
        marker.write_text("crashed")
        _die()
    return {"rank": rank}


def test_a_crash_before_the_results_are_saved_is_run_once_more(tmp_path):
    results = gloo_results(_crash_once, {"marker": str(tmp_path / "marker")}, timeout_s=30)
    assert [r["rank"] for r in results] == [0, 1]
    assert (tmp_path / "marker").read_text() == "crashed"


def _always_crash(rank: int, _job: None) -> dict:
    if rank == 1:
        _die()
    return {"rank": rank}


def test_a_job_that_always_crashes_is_raised():
    with pytest.raises(mp.ProcessExitedException, match="SIGKILL"):
        gloo_results(_always_crash, None, timeout_s=30)


def test_world_below_one_is_refused_by_name():
    with pytest.raises(ValueError, match="world"):
        gloo_results(_sum_of_ranks, {"add": 1.0}, world=0)
