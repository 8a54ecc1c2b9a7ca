"""Two gloo processes (one micro-batch each) against one process accumulating the same two
micro-batches: the same parameters, progress and noise estimate (the ranks' local gradients
are the single process's micro-batch gradients)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from metatune.goodput import GoodputController

WORLD, M0, STEPS = 2, 16, 6


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(M0 * STEPS, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        len(x), generator=g, dtype=torch.float64
    )
    return torch.utils.data.TensorDataset(x, y)


def _train(adam: bool, **kw) -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    opt = (
        torch.optim.Adam(model.parameters(), lr=0.01)
        if adam
        else torch.optim.SGD(model.parameters(), lr=0.05)
    )
    ctl = GoodputController(model, opt, batch_size=M0, max_batch_size=M0, adaptive=False, **kw)
    loader = ctl.loader(_data(), seed=1)
    for _ in ctl.epochs(1):
        for (xb, yb), _acc in loader:
            ctl.step(((ctl.model(xb).squeeze(-1) - yb) ** 2).mean())
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "progress": ctl.progress,
        "steps": ctl.steps,
        "sqr": ctl.noise.grad_sqr,
        "var": ctl.noise.grad_var,
        "count": ctl.noise.count,
        "plan": (ctl.plan.micro_batch, ctl.plan.accum_steps, ctl.plan.replicas),
    }


def _worker(rank: int, world: int, rendezvous: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=120),
    )
    try:
        res = {"sgd": _train(False), "adam": _train(True)}
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out = tmp_path_factory.mktemp("goodput_ddp")
    # fork, not spawn: a spawned child re-imports torch and metatune (seconds on a busy
    # machine); the children run torch on one thread, so no OpenMP pool crosses the fork.
    mp.start_processes(
        _worker,
        args=(WORLD, str(out / "rendezvous"), str(out)),
        nprocs=WORLD,
        join=True,
        start_method="fork",
    )
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_two_ranks_equal_one_process_accumulating(ranks, opt):
    ref = _train(opt == "adam", max_micro_batch=M0 // WORLD)
    assert ref["plan"] == (M0 // WORLD, WORLD - 1, 1)
    for both in ranks:
        res = both[opt]
        assert res["plan"] == (M0 // WORLD, 0, WORLD)
        for a, b in zip(res["params"], ref["params"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert res["steps"] == ref["steps"] == STEPS
        assert res["progress"] == pytest.approx(ref["progress"])
        assert res["count"] == ref["count"] == STEPS
        assert res["sqr"] == pytest.approx(ref["sqr"], rel=1e-9)
        assert res["var"] == pytest.approx(ref["var"], rel=1e-9)
