"""The loader's partition of an epoch, checkpoint and resume, and the errors raised before
training for bad input."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from metatune._registry import UnknownNameError
from metatune.goodput import (
    AdaptiveDataLoader,
    BatchPlan,
    GoodputController,
    NoiseEstimate,
    NoiseTracker,
)


def _ds(n=100):
    x = torch.arange(n, dtype=torch.float64)[:, None]
    return torch.utils.data.TensorDataset(x, torch.arange(n))


def _indices(loader):
    out = []
    for (_, idx), acc in loader:
        out.append((idx.tolist(), acc))
    return out


def test_loader_covers_each_example_once_and_ranks_see_the_accumulated_pieces():
    one = AdaptiveDataLoader(_ds(), 16, seed=3, rank=0, world_size=1)
    one.set_plan(BatchPlan(8, 1, 1))
    seen = _indices(one)
    assert sorted(i for b, _ in seen for i in b) == list(range(100))
    assert [acc for _, acc in seen[:4]] == [True, False, True, False]
    assert one.epoch == 1
    # rank r of 2 without accumulation gets micro-batch r of each accumulated step
    for r in range(2):
        rank = AdaptiveDataLoader(_ds(), 16, seed=3, rank=r, world_size=2)
        assert rank.plan == BatchPlan(8, 0, 2)
        got = _indices(rank)
        full = [b for b, _ in seen]
        assert [b for b, _ in got][: len(full) // 2] == full[r::2][: len(full) // 2]


def test_loader_shrinks_the_last_step_and_listens():
    loader = AdaptiveDataLoader(_ds(50), 16, shuffle=False, rank=0, world_size=1)
    calls = []
    loader.add_listener(calls.append)
    sizes = [len(b[1]) for b, _ in loader]
    assert sizes == [16, 16, 16, 2]
    assert calls[-1].step_total == 2 and calls[-1].last
    dropped = AdaptiveDataLoader(_ds(50), 16, shuffle=False, drop_last=True, rank=0, world_size=1)
    assert [len(b[1]) for b, _ in dropped] == [16, 16, 16]


def _setup(seed=0, **kw):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=g)
    y = x.sum(1, keepdim=True) + 0.3 * torch.randn(400, 1, generator=g)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    args = {
        "batch_size": 8,
        "max_batch_size": 128,
        "max_micro_batch": 32,
        "warmup_steps": 5,
        "adapt_every": 5,
    }
    args.update(kw)
    ctl = GoodputController(model, opt, **args)
    loader = ctl.loader(torch.utils.data.TensorDataset(x, y), seed=1)
    return ctl, loader, model, opt


def _loss(ctl, xb, yb):
    return ((ctl.model(xb) - yb) ** 2).mean()


def test_checkpoint_restores_plan_progress_fitted_models_and_position():
    # A counting clock and planning allowed as much time as training: the re-plans (and so the
    # fitted model checked below) do not depend on the machine's speed.
    ctl, loader, model, opt = _setup(clock=itertools.count().__next__, adapt_budget=1.0)
    for _ in ctl.epochs(3):
        for (xb, yb), _acc in loader:
            ctl.step(_loss(ctl, xb, yb))
    # stop in the middle of the fourth epoch, after a completed step
    it = iter(loader)
    while True:
        (xb, yb), acc = next(it)
        if ctl.step(_loss(ctl, xb, yb)) and loader.position > 100:
            break
    state = ctl.state_dict()
    assert ctl.throughput.params is not None and ctl.noise.count > 0
    buf = io.BytesIO()
    torch.save(state, buf)  # plain containers: loadable with weights_only=True
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    # a fresh process: new objects, the same plan forced, then restored
    ctl2, loader2, model2, opt2 = _setup(seed=5)
    model2.load_state_dict(model.state_dict())
    opt2.load_state_dict(opt.state_dict())
    ctl2.load_state_dict(state)
    assert ctl2.plan == ctl.plan and loader2.plan == ctl.plan
    assert ctl2.progress == ctl.progress and ctl2.steps == ctl.steps
    assert ctl2.throughput.params == ctl.throughput.params
    assert ctl2.noise.noise_scale == ctl.noise.noise_scale
    assert loader2.epoch == 3 and loader2.position == loader.position
    assert ctl2.measure_every == ctl.measure_every == loader2.measure_every
    # the epochs iterator resumes at the saved epoch and the loader at the saved step
    assert next(iter(ctl2.epochs(5))) == 3
    nxt_a = next(it)[0][0]
    nxt_b = next(iter(loader2))[0][0]
    torch.testing.assert_close(nxt_a, nxt_b)


def test_the_controller_replans_within_bounds_and_counts_progress():
    ctl, loader, model, opt = _setup(max_batch_size=400, max_micro_batch=400)
    for _ in ctl.epochs(10):
        for (xb, yb), _acc in loader:
            ctl.step(_loss(ctl, xb, yb))
    assert ctl.history and ctl.progress <= ctl.examples / 8 + 1e-9
    assert all(8 <= m * (s + 1) <= 400 for _, _, m, s, _ in ctl.history)


def test_every_warmup_step_measures_then_every_measure_every_th():
    """So that the first re-plan, right after the warm-up, has its noise updates."""
    ctl, loader, _, _ = _setup(adaptive=False, warmup_steps=6, measure_every=4)
    split = []
    for (xb, yb), _acc in loader:
        info = loader.current
        if info.index == 0:
            split.append(info.split)
        ctl.step(_loss(ctl, xb, yb))
        if ctl.steps == 20:
            break
    measured = [i for i, s in enumerate(split) if s]
    assert measured == [0, 1, 2, 3, 4, 5, 8, 12, 16]
    assert ctl.noise.count == len(measured)


def test_consecutive_differences_start_afresh_after_accumulated_steps():
    """With measure_every=None an accumulated step measures from its pieces; the next step of
    one micro-batch has no previous gradient to difference against, so it only records one."""
    ctl, loader, _, _ = _setup(adaptive=False, measure_every=None)
    plans = [BatchPlan(8, 0, 1)] * 2 + [BatchPlan(4, 1, 1)] + [BatchPlan(8, 0, 1)] * 2
    counts = []
    it = iter(loader)
    for plan in plans:
        ctl.set_plan(plan)
        while True:
            (xb, yb), _acc = next(it)
            if ctl.step(_loss(ctl, xb, yb)):
                break
        counts.append(ctl.noise.count)
    assert counts == [0, 1, 2, 2, 3]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_batch_size": 4}, "max_batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -8}, "batch_size"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"lr_rule": "cubic"}, "lr_rule"),
        ({"max_micro_batch": 0}, "max_micro_batch"),
        ({"max_micro_batch": 0.5}, "max_micro_batch"),
        ({"threshold": -1.0}, "threshold"),
        ({"measure_every": -2}, "measure_every"),
        ({"measure_every": "often"}, "measure_every"),
        ({"measure_budget": 0.0}, "measure_budget"),
        ({"noise_decay": 1.0}, "noise_decay"),
    ],
)
def test_bad_input_raises_before_training_naming_the_argument(kw, match):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    args = {"batch_size": 8, "max_batch_size": 64}
    args.update(kw)
    with pytest.raises((ValueError, UnknownNameError), match=match):
        GoodputController(model, opt, **args)
    assert all(p.grad is None for p in model.parameters())


def test_loader_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        AdaptiveDataLoader(_ds(), 0)
    with pytest.raises(ValueError, match="empty"):
        AdaptiveDataLoader(_ds(0), 4)
    with pytest.raises(ValueError, match="replicas"):
        AdaptiveDataLoader(_ds(), 1, rank=0, world_size=2)


def test_step_without_the_loader_is_refused():
    model = nn.Linear(2, 1)
    ctl = GoodputController(
        model, torch.optim.SGD(model.parameters(), lr=0.1), batch_size=4, max_batch_size=8
    )
    with pytest.raises(RuntimeError, match="loader"):
        ctl.step(model(torch.ones(1, 2)).sum())
    assert np.isnan(ctl.noise.noise_scale)


class _Clock:
    """A simulated clock: the test advances `t`."""

    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_planning_stays_within_its_share_of_training_time_on_a_simulated_clock():
    # Steps take 1 ms and a fit 20 ms of a simulated clock: re-plans come every few steps while
    # the step-time model has nothing new to fit, and planning as a whole stays within
    # adapt_budget of the training time (plus the one fit that may overshoot it, and the prompt
    # re-plans after moves to untried configurations).
    clock = _Clock()
    ctl, loader, _, _ = _setup(clock=clock, adapt_budget=0.05, refit_every=4)
    fit = ctl.throughput.fit
    fits = []

    def slow_fit():
        clock.t += 0.020
        fits.append(len(ctl.throughput.configurations))
        return fit()

    ctl.throughput.fit = slow_fit
    for _ in ctl.epochs(30):
        for (xb, yb), _acc in loader:
            clock.t += 0.001
            ctl.step(_loss(ctl, xb, yb))
    assert fits and len(ctl.history) > 2 * len(fits)  # most re-plans reuse the fit
    # training time: the steps' own time, the gap of a step that fitted counted as a long step
    assert 0.001 * ctl.steps * 0.9 <= ctl._train_time <= clock.t
    # beyond the budget: the one fit that may overshoot it, and one prompt re-plan (with a fit,
    # as its configuration is new) after each move to a configuration not measured before
    tried = len(ctl.throughput.configurations)
    assert ctl._plan_time <= 0.05 * ctl._train_time + 0.020 * (1 + tried) + 1e-9
    assert ctl._plan_time >= 0.020 * len(fits)


@pytest.mark.parametrize(
    ("measured_cost", "interval"),
    [(0.0005, 8), (0.0015, 40), (0.1, 128)],  # per micro-batch; a split step has two
)
def test_auto_measuring_keeps_the_measured_steps_extra_time_within_budget(measured_cost, interval):
    """A plain step takes 1 ms of a simulated clock, a measured (split) one twice
    `measured_cost`: at a 5% budget the interval settles where the extra time of a measured
    step, spread over the interval, is 5% of a plain step (between 8 and 128)."""
    clock = _Clock()
    ctl, loader, _, _ = _setup(
        clock=clock, adaptive=False, measure_every="auto", measure_budget=0.05
    )
    measured = []
    for _ in ctl.epochs(60):
        for (xb, yb), _acc in loader:
            info = loader.current
            clock.t += measured_cost if info.measure else 0.001
            if ctl.step(_loss(ctl, xb, yb)):
                measured.append(info.measure)
    assert ctl.measure_every == loader.measure_every == interval
    late = measured[len(measured) // 2 :]  # after it settled
    extra = sum(late) * max(2 * measured_cost - 0.001, 0.0)
    if interval < 128:
        assert extra <= 0.05 * 0.001 * len(late) * 1.1 + 2 * measured_cost
    assert sum(late) == pytest.approx(len(late) / interval, abs=2)


def test_a_fixed_measure_every_stays_fixed_and_auto_follows_the_cost():
    clock = _Clock()
    ctl, loader, _, _ = _setup(clock=clock, adaptive=False, measure_every=4)
    ctl_auto, loader_auto, _, _ = _setup(clock=clock, adaptive=False, measure_every="auto")
    for c, ld in ((ctl, loader), (ctl_auto, loader_auto)):
        for _ in c.epochs(20):
            for (xb, yb), _acc in ld:
                clock.t += 0.01 if ld.current.measure else 0.001
                c.step(_loss(c, xb, yb))
    assert ctl.measure_every == loader.measure_every == 4
    assert ctl_auto.measure_every == 128
    default, _, _, _ = _setup()
    assert default.measure_every == 8


def _weak_signal_tracker() -> NoiseTracker:
    """A noise estimate whose smoothed |G|^2 is negative: the point noise scale is +inf."""
    t = NoiseTracker(decay=0.9)
    for k in range(40):
        t.update(NoiseEstimate((-1.0) ** k * 0.5 - 0.05, 40.0))
    assert math.isinf(t.noise_scale)
    return t


@pytest.mark.parametrize(("confidence", "moves"), [(1.0, True), (0.0, False)])
def test_an_estimate_below_its_noise_plans_on_its_bound_and_only_with_confidence(confidence, moves):
    ctl, _, _, _ = _setup(noise_confidence=confidence)
    ctl.noise = _weak_signal_tracker()
    for m, t in ((8, 0.010), (16, 0.011), (32, 0.012)):  # larger micro-batches nearly free
        for _ in range(4):
            ctl.throughput.observe(m, 0, t)
    plan, _, speedup = ctl._decide()
    assert (plan != ctl.plan) is moves
    if moves:  # the bound is finite and large: a larger batch, though not on its own the max
        assert plan.total > ctl.batch_size and speedup > 1.0
        assert math.isfinite(ctl.noise.noise_scale_bound(confidence))


def test_building_an_adaptive_controller_warms_its_planning_and_leaves_its_models_empty():
    from metatune.goodput.choice import _candidates, candidate_plans

    _candidates.cache_clear()
    ctl, _, _, _ = _setup()
    hits = _candidates.cache_info().hits
    candidate_plans(8, 128, 32, 1, ctl.candidates)  # this job's list: already built
    assert _candidates.cache_info().hits == hits + 1
    assert ctl.throughput.configurations == [] and ctl.throughput.params is None
    assert ctl.noise.count == 0 and ctl._plan_time == 0.0


def test_a_move_to_an_untried_configuration_is_checked_soon_whatever_the_budget(monkeypatch):
    from metatune.goodput import controller as controller_module

    ctl, _, _, _ = _setup()
    ctl.noise.update(NoiseEstimate(1.0, 100.0))
    ctl.noise.count = ctl.min_noise_updates
    ctl.throughput.observe(8, 0, 0.01)
    ctl._step_time, ctl._train_time, ctl._plan_time = 0.01, 1.0, 1.0  # budget long spent
    for plan, prompt in ((BatchPlan(32, 1, 1), True), (BatchPlan(8, 0, 1), False)):
        monkeypatch.setattr(controller_module, "choose_plan", lambda *a, p=plan, **k: (p, 2.0))
        chosen, next_adapt, _ = ctl._decide()
        assert chosen == plan
        waits = next_adapt - ctl.steps
        assert (waits == ctl.adapt_every) is prompt  # untried: soon; tried: the budget's wait
        assert prompt or waits > 1000
