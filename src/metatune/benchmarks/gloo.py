"""Run a function in a small gloo process group on this machine (benchmarks and tests).

Why a helper of its own: a gloo job that has done its work can still die at exit (a background
thread of the process group torn down by the interpreter's shutdown aborts the process with
"terminate called without an active exception"). Each rank therefore saves its result before the
process group is torn down, the ranks meet at a barrier before `destroy_process_group`, and a
finished rank leaves with ``os._exit`` after flushing its output, so no interpreter shutdown runs
in a forked child. A job whose ranks all saved their results is complete whatever the exit; a
job that crashed before every rank saved is run once more, from a fresh rendezvous, and a second
crash is raised.

The ranks meet through a rendezvous file of the job's own, not a port: a port found free and
then released can be taken by another process (another test worker's pair of ranks) before the
store binds it; gloo talks over loopback only, and a bounded timeout makes a failed start an
error instead of a hung run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["gloo_results", "run_on_gloo"]

_ATTEMPTS = 2


def _entry(
    rank: int, world: int, rendezvous: str, out_dir: str, fn: Any, job: Any, seconds: float
) -> None:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=seconds),
    )
    result = fn(rank, job)
    partial = os.path.join(out_dir, f"rank{rank}.partial")
    torch.save(result, partial)
    os.replace(partial, os.path.join(out_dir, f"rank{rank}.pt"))  # whole or absent
    dist.barrier()  # no rank tears down while another is still inside a collective
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def gloo_results(fn: Any, job: Any, world: int = 2, *, timeout_s: float = 900.0) -> list[Any]:
    """``fn(rank, job)`` in `world` forked processes of one gloo process group, each on one torch
    thread; returns every rank's result, rank 0 first. Results travel through ``torch.save`` and
    are read back with ``weights_only=True``: tensors, numbers, strings and containers of them.
    `fn` must be a module-level function; the children share this process's imports."""
    import torch
    import torch.multiprocessing as mp

    if world < 1:
        raise ValueError(f"world must be at least 1, got {world}")
    last_error: BaseException | None = None
    for _ in range(_ATTEMPTS):
        with tempfile.TemporaryDirectory() as tmp:
            files = [Path(tmp) / f"rank{r}.pt" for r in range(world)]
            try:
                mp.start_processes(
                    _entry,
                    args=(world, os.path.join(tmp, "rendezvous"), tmp, fn, job, timeout_s),
                    nprocs=world,
                    join=True,
                    start_method="fork",
                )
            except mp.ProcessExitedException as error:  # killed by a signal
                last_error = error
                if not all(f.exists() for f in files):
                    continue  # died before its work was saved: run it again
            return [torch.load(f, weights_only=True) for f in files]
    assert last_error is not None
    raise last_error


def run_on_gloo(fn: Any, job: Any, world: int = 2) -> Any:
    """Rank 0's result of `gloo_results`, made plain data first (NumPy scalars become floats),
    as the benchmark scripts write it to JSON."""
    return gloo_results(_Plain(fn), job, world)[0]


class _Plain:
    """Wraps `fn` so its result crosses the process boundary as JSON-plain data."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, rank: int, job: Any) -> Any:
        import json

        return json.loads(json.dumps(self.fn(rank, job), default=float))
