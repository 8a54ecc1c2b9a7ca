"""Data-parallel engine: 2 gloo processes on CPU against one process on the combined batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from metatune.benchmarks.gloo import gloo_results
from metatune.mlo import Config, Engine, EngineConfig, Problem

WORLD = 2
METHODS = ("cg", "unrolled", "neumann")
OPTIONS = {"cg": {"iterations": 20}, "unrolled": {}, "neumann": {"iterations": 20, "alpha": 0.1}}


class Hyper(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.log_lam = nn.Parameter(torch.full((d,), -2.0, dtype=torch.float64))


class Inner(Problem):
    def training_step(self, batch):
        X, y = batch
        lam = self.outer.module.log_lam.exp()
        return ((self(X).squeeze(-1) - y) ** 2).mean() + (lam * self.module.weight[0] ** 2).sum()


class Outer(Problem):
    def training_step(self, batch):
        X, y = batch
        return ((self.inner(X).squeeze(-1) - y) ** 2).mean()


class Single(Problem):
    def training_step(self, batch):
        X, y = batch
        return ((self(X).squeeze(-1) - y) ** 2).mean()


def _data():
    g = torch.Generator().manual_seed(0)
    d = 5
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    X = torch.randn(64, d, generator=g, dtype=torch.float64)
    y = X @ w_true + 0.3 * torch.randn(64, generator=g, dtype=torch.float64)
    train = [(X[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    Xv = torch.randn(24, d, generator=g, dtype=torch.float64)
    yv = Xv @ w_true + 0.3 * torch.randn(24, generator=g, dtype=torch.float64)
    return d, train, (Xv, yv)


def _shard(batch, rank: int, world: int):
    X, y = batch
    n = len(y) // world
    return X[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def _bilevel(method: str, val_batch, distributed: bool) -> dict:
    """Lower data replicated, upper (validation) data = ``val_batch`` (a shard or the whole)."""
    d, train, _ = _data()
    torch.manual_seed(1)
    net = nn.Linear(d, 1, bias=False).double()
    if distributed and dist.get_rank() == 1:  # replicas start different: the engine syncs them
        with torch.no_grad():
            net.weight.add_(1.0)
    hyper = Hyper(d)
    inner = Inner(
        "inner",
        net,
        torch.optim.SGD(net.parameters(), lr=0.1),
        data=train,
        config=Config(method=method, options=OPTIONS[method], unroll_steps=2),
    )
    outer = Outer("outer", hyper, torch.optim.SGD(hyper.parameters(), lr=0.5), data=[val_batch])
    engine = Engine(
        [inner, outer],
        {"u2l": {"outer": ["inner"]}, "l2u": {"inner": ["outer"]}},
        EngineConfig(train_iters=6, distributed=distributed),
    )
    calls = _CallCounter.install() if distributed else None
    engine.run()
    run_calls = calls.count if calls else 0
    hg = engine.hypergradient("outer", val_batch)
    hg_calls = calls.count - run_calls if calls else 0
    return {
        "lam": hyper.log_lam.detach().clone(),
        "w": net.weight.detach().clone(),
        "hypergradient": [h.clone() for h in hg],
        "updates": inner.step_count + outer.step_count,
        "run_calls": run_calls,
        "hg_calls": hg_calls,
    }


def _single(batches, distributed: bool) -> dict:
    """One problem, gradient accumulation 2: the lower-level path on sharded data."""
    d, _, _ = _data()
    torch.manual_seed(2)
    net = nn.Linear(d, 1).double()
    prob = Single(
        "single",
        net,
        torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
        data=batches,
        config=Config(gradient_accumulation=2),
    )
    engine = Engine([prob], config=EngineConfig(train_iters=8, distributed=distributed))
    calls = _CallCounter.install() if distributed else None
    engine.run()
    return {
        "params": [p.detach().clone() for p in net.parameters()],
        "updates": prob.step_count,
        "run_calls": calls.count if calls else 0,
    }


class _CallCounter:
    """Counts torch.distributed.all_reduce calls (wraps the module attribute)."""

    def __init__(self) -> None:
        self.count = 0

    @classmethod
    def install(cls) -> _CallCounter:
        counter = cls()
        original = getattr(dist.all_reduce, "_original", dist.all_reduce)

        def wrapped(*args, **kwargs):
            counter.count += 1
            return original(*args, **kwargs)

        wrapped._original = original  # type: ignore[attr-defined]
        dist.all_reduce = wrapped
        return counter


def _rank_results(rank: int, world: int) -> dict:
    _, train, val = _data()
    results = {m: _bilevel(m, _shard(val, rank, world), True) for m in METHODS}
    results["single"] = _single([_shard(b, rank, world) for b in train], True)
    return results


@pytest.fixture(scope="module")
def ranks():
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    return gloo_results(_rank_results, WORLD, WORLD, timeout_s=120)


@pytest.mark.parametrize("method", METHODS)
def test_ddp_matches_combined_batch(ranks, method):
    _, _, val = _data()
    ref = _bilevel(method, val, False)
    for res in ranks:
        r = res[method]
        torch.testing.assert_close(r["lam"], ref["lam"], rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(r["w"], ref["w"], rtol=1e-6, atol=1e-9)
        for a, b in zip(r["hypergradient"], ref["hypergradient"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
    assert not torch.equal(ref["lam"], torch.full_like(ref["lam"], -2.0))  # the upper did move


@pytest.mark.parametrize("method", METHODS)
def test_ddp_one_all_reduce_per_update(ranks, method):
    for res in ranks:
        r = res[method]
        assert r["updates"] == 6 + 3  # 6 lower steps, 3 upper steps (unroll_steps=2)
        assert r["run_calls"] == r["updates"]
        assert r["hg_calls"] == 1


def test_ddp_sharded_lower_level_with_accumulation(ranks):
    _, train, _ = _data()
    ref = _single(train, False)
    for res in ranks:
        r = res["single"]
        assert r["updates"] == ref["updates"] == 4  # 8 training steps, accumulation 2
        assert r["run_calls"] == r["updates"]  # once per optimizer step, not per training step
        for a, b in zip(r["params"], ref["params"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_distributed_needs_process_group():
    if dist.is_available() and dist.is_initialized():
        pytest.skip("a process group is already initialized")
    net = nn.Linear(2, 1)
    prob = Single("single", net, torch.optim.SGD(net.parameters(), lr=0.1), data=[None])
    with pytest.raises(RuntimeError, match="init_process_group"):
        Engine([prob], config=EngineConfig(distributed=True))
