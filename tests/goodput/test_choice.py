"""Efficiency, candidate plans within the bounds, the switching threshold, and LR rules."""

from __future__ import annotations

import math

import pytest

from metatune._registry import UnknownNameError
from metatune.goodput import (
    LR_RULES,
    BatchPlan,
    ScaleContext,
    StepTimeParams,
    ThroughputModel,
    candidate_plans,
    choose_plan,
    efficiency,
    gain,
    plan_for_total,
)
from metatune.goodput.throughput import predict_step_time


def test_efficiency_and_gain():
    assert float(efficiency(100.0, 32, 32)) == 1.0
    assert float(efficiency(100.0, 32, 132)) == pytest.approx(132 / 232)
    assert float(gain(100.0, 32, 32)) == 1.0
    assert float(gain(100.0, 32, 128)) == pytest.approx(float(efficiency(100.0, 32, 128)) * 4)
    assert float(gain(math.inf, 32, 128)) == 4.0  # pure noise: linear scaling
    assert float(gain(0.0, 32, 128)) == pytest.approx(1.0)  # no noise: bigger batches buy nothing


def test_plans_respect_the_memory_bound_and_the_range():
    assert plan_for_total(100, 32) == BatchPlan(25, 3, 1)
    assert plan_for_total(64, 32, replicas=2) == BatchPlan(32, 0, 2)
    plans = candidate_plans(16, 1024, 48, replicas=2, count=50)
    assert min(p.total for p in plans) >= 16 and max(p.total for p in plans) <= 1024
    assert all(p.micro_batch <= 48 and p.replicas == 2 for p in plans)
    assert len({p.total for p in plans}) == len(plans) > 20


def _model(params: StepTimeParams) -> ThroughputModel:
    model = ThroughputModel()
    for m in (8, 32, 128):
        for s in (0, 1):
            model.observe(m, s, float(predict_step_time(params, m, s)))
    model.fit()
    return model


def test_choice_follows_the_noise_scale_and_the_threshold():
    model = _model(StepTimeParams(alpha_c=5e-3, beta_c=1e-5))  # large micro-batches are cheap
    start = BatchPlan(16, 0, 1)
    small, _ = choose_plan(start, model, 1.0, 16, 1024, 128)
    large, speedup = choose_plan(start, model, 5000.0, 16, 1024, 128)
    assert small == start  # no noise: stay at M0
    # accumulation costs a full micro-batch's fixed time, so the best fills one micro-batch
    assert large == BatchPlan(128, 0, 1) and speedup > 1.05
    roomy, _ = choose_plan(start, model, 5000.0, 16, 1024, 1024)
    assert roomy.total > 256 and roomy.accum_steps == 0
    # the same choice with a threshold above the gain keeps the current plan
    kept, s1 = choose_plan(start, model, 5000.0, 16, 1024, 128, threshold=speedup)
    assert kept == start and s1 == 1.0


def test_lr_rules():
    assert {"adascale", "adam-sqrt", "sqrt", "linear", "legw"} <= set(LR_RULES.names())
    ctx = ScaleContext(scale=4.0, gain=2.25, progress=10.0, examples=1e6)
    assert LR_RULES["adascale"](ctx) == 2.25
    assert LR_RULES["adam-sqrt"](ctx) == 1.5
    assert LR_RULES["sqrt"](ctx) == 2.0
    assert LR_RULES["linear"](ctx) == 4.0
    assert LR_RULES["legw"](ctx) == 2.0  # warm-up long over
    early = ScaleContext(scale=4.0, gain=2.25, progress=1.0, examples=39.0)
    assert LR_RULES["legw"](early) == pytest.approx(2.0 * 40 / 400)
    with pytest.raises(UnknownNameError, match="adascale"):
        LR_RULES.get("nope")
