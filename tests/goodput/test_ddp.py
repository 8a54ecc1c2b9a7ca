"""Two gloo processes (one micro-batch each) against one process accumulating the same two
micro-batches: the same parameters, progress and noise estimate (the ranks' local gradients
are the single process's micro-batch gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from metatune.benchmarks.gloo import gloo_results
from metatune.goodput import GoodputController
from metatune.goodput import controller as controller_module
from metatune.goodput.choice import plan_for_total

WORLD, M0, STEPS = 2, 16, 6


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(M0 * STEPS, 5, generator=g, dtype=torch.float64)
    y = x @ torch.randn(5, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        len(x), generator=g, dtype=torch.float64
    )
    return torch.utils.data.TensorDataset(x, y)


def _alternating_plans(current, *args, **kwargs):
    """Rank 0's stand-in for choose_plan: double the total batch, then halve it, so the ranks
    must switch plans in step (with measured step times the choice would vary by run)."""
    total = 2 * current.total if current.total == M0 else M0
    return plan_for_total(total, M0, current.replicas), 2.0


def _train(adam: bool, epochs: int = 1, **kw) -> dict:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    opt = (
        torch.optim.Adam(model.parameters(), lr=0.01)
        if adam
        else torch.optim.SGD(model.parameters(), lr=0.05)
    )
    kw = {"max_batch_size": M0, "adaptive": False, "measure_every": 1, **kw}
    ctl = GoodputController(model, opt, batch_size=M0, **kw)
    loader = ctl.loader(_data(), seed=1)
    for _ in ctl.epochs(epochs):
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
        "history": [(h[0], h[2], h[3]) for h in ctl.history],
    }


def _train_auto(rank: int) -> dict:
    """measure_every="auto" on a simulated clock whose measured steps cost more on rank 1
    than on rank 0: the ranks must still measure the same steps (rank 0's interval), or their
    all-reduces would not pair."""

    class Clock:
        t = 0.0

        def __call__(self) -> float:
            return self.t

    clock = Clock()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ctl = GoodputController(
        model,
        opt,
        batch_size=M0,
        max_batch_size=M0,
        adaptive=False,
        clock=clock,
        warmup_steps=2,
        measure_every="auto",
        measure_budget=0.05,
    )
    loader = ctl.loader(_data(), seed=1)
    measured, intervals = [], []
    for _ in ctl.epochs(40):
        for (xb, yb), _acc in loader:
            info = loader.current
            clock.t += (0.003 if rank == 0 else 0.02) if info.measure else 0.001
            ctl.step(((ctl.model(xb).squeeze(-1) - yb) ** 2).mean())
            measured.append(info.measure)
            intervals.append(ctl.measure_every)
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "measured": measured,
        "intervals": intervals,
    }


def _rank_results(rank: int, _job: None) -> dict:
    controller_module.choose_plan = _alternating_plans  # this forked child only
    return {
        "sgd": _train(False),
        "adam": _train(True),
        "sgd-every-2": _train(False, measure_every=2, warmup_steps=1),
        "adaptive": _train(
            False,
            epochs=6,
            adaptive=True,
            max_batch_size=4 * M0,
            warmup_steps=2,
            adapt_every=2,
            adapt_budget=1.0,
        ),
        "auto": _train_auto(rank),
    }


@pytest.fixture(scope="module")
def ranks():
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    return gloo_results(_rank_results, None, WORLD, timeout_s=120)


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


def test_measuring_every_other_step_changes_the_estimate_count_not_the_update(ranks):
    """Unmeasured steps are DDP's own all-reduce, measured ones the controller's: the
    parameters match the single process's either way."""
    ref = _train(False, max_micro_batch=M0 // WORLD, measure_every=2, warmup_steps=1)
    for both in ranks:
        res = both["sgd-every-2"]
        for a, b in zip(res["params"], ref["params"], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert res["count"] == ref["count"] == STEPS // 2
        assert res["var"] == pytest.approx(ref["var"], rel=1e-9)


def test_ranks_follow_the_same_plans_when_adapting(ranks):
    """Rank 0 decides; every rank applies the plan at the same step, so the ranks keep
    identical parameters through the switches."""
    a, b = (both["adaptive"] for both in ranks)
    assert a["history"] == b["history"]
    assert {m for _, m, _ in a["history"]} == {M0 // WORLD, M0}  # it switched, both ways
    assert a["steps"] == b["steps"]
    for x, y in zip(a["params"], b["params"], strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_ranks_measure_the_same_steps_with_an_auto_interval(ranks):
    a, b = (both["auto"] for both in ranks)
    assert a["measured"] == b["measured"]
    assert a["intervals"] == b["intervals"]
    # rank 0's costs decide: a measured step 2 ms over a 1 ms plain one, at a 5% budget
    assert a["intervals"][-1] == 40
    for x, y in zip(a["params"], b["params"], strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
