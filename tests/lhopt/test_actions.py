import math

import numpy as np
import pytest
import torch

from metatune.lhopt.actions import (
    DEFAULT_KNOBS,
    Checkpoints,
    GradientClipper,
    HyperparamActions,
    Knob,
)


def _optimizer(**kw):
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    groups = [{"params": [a], "lr": 1e-3}, {"params": [b], "lr": 1e-2, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, **kw)


def test_random_actions_respect_bounds():
    opt = _optimizer(weight_decay=1e-2)
    clipper = GradientClipper(opt, quantile=0.9)
    acts = HyperparamActions(opt, clipper)
    rng = np.random.default_rng(0)
    for _ in range(500):
        acts.apply([int(rng.integers(n)) for n in acts.n_choices])
        for g in opt.param_groups:
            assert 1e-8 <= g["lr"] <= 1.0
            assert 1e-3 * (1 - 1e-9) <= 1 - g["betas"][0] <= 0.5 + 1e-12
            assert 1e-5 * (1 - 1e-6) <= 1 - g["betas"][1] <= 0.5 + 1e-12
            assert 1e-12 <= g["eps"] <= 1e-3
            assert g["weight_decay"] == 0.0 or 1e-6 <= g["weight_decay"] <= 1.0
        assert 0.5 <= clipper.quantile <= 0.999


def test_moves_are_relative_and_keep_group_ratios():
    opt = _optimizer()
    acts = HyperparamActions(opt)
    lr_knob = acts.knobs[0]
    double = lr_knob.choices.index(2.0)
    keep = [k.choices.index(1.0) if k.kind == "mul" else k.choices.index(0.0) for k in acts.knobs]
    acts.apply([double] + keep[1:])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([2e-3, 2e-2])
    assert acts.relative()[0] == pytest.approx(math.log(2))
    assert acts.relative()[1:] == pytest.approx([0.0] * (len(acts.knobs) - 1))


def test_zero_weight_decay_can_be_turned_on():
    knob = next(k for k in DEFAULT_KNOBS if k.name == "weight_decay")
    assert knob.move(0.0, knob.choices.index(2.0)) == knob.low
    assert knob.move(0.0, knob.choices.index(0.5)) == 0.0


def test_logit_knob_and_bad_choices():
    knob = Knob("q", "logit", (-1.0, 0.0, 1.0), 0.5, 0.99)
    up = knob.move(0.9, 2)
    assert 0.9 < up <= 0.99 and knob.move(0.9, 0) < 0.9 and knob.move(0.9, 1) == pytest.approx(0.9)
    assert knob.keep_choice == 1
    with pytest.raises(ValueError, match="choice must be in"):
        knob.move(0.9, 5)
    with pytest.raises(ValueError, match="needs 0 < low < high"):
        Knob("x", "mul", (1.0,), 1.0, 0.5)
    with pytest.raises(ValueError, match="needs a 'keep' move"):
        Knob("x", "mul", (0.5, 2.0), 0.1, 1.0)


def test_controller_refuses_optimizers_without_adam_keys():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    with pytest.raises(TypeError, match="Adam"):
        HyperparamActions(opt)


def test_clipper_clips_outliers_at_the_quantile():
    w = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.Adam([w], lr=1e-3)
    clipper = GradientClipper(opt, quantile=0.9)
    for i in range(30):
        w.grad = torch.full((4,), 1.0 + 0.01 * i)
        opt.step()
    clipper.clipped_fraction()
    w.grad = torch.full((4,), 1000.0)
    opt.step()
    assert clipper.clipped_fraction() == 1.0
    assert float(w.grad.norm()) < 10  # clipped in place before Adam used it


def test_checkpoint_restores_parameters_and_state_but_keeps_new_hyperparameters():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=1e-2)
    w.grad = torch.ones(3)
    opt.step()
    ckpt = Checkpoints(opt)
    assert not ckpt.restore()
    ckpt.save()
    saved = w.detach().clone()
    saved_m = opt.state[w]["exp_avg"].clone()
    for _ in range(3):
        w.grad = torch.randn(3) * 100
        opt.step()
    opt.param_groups[0]["lr"] = 1e-4
    assert ckpt.restore()
    assert torch.equal(w.detach(), saved)
    assert torch.equal(opt.state[w]["exp_avg"], saved_m)
    assert opt.param_groups[0]["lr"] == 1e-4
