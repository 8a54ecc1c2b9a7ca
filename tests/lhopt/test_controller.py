import math

import pytest
import torch

from metatune.lhopt.controller import Controller, observation_size
from metatune.lhopt.policy import Policy, PolicyConfig


def _task(lr=1e-2):
    torch.manual_seed(0)
    X = torch.randn(256, 8)
    y = X @ torch.randn(8) + 0.1 * torch.randn(256)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    return X, y, model, opt


def _train(ctl, X, y, model, opt, steps):
    for i in range(steps):
        idx = torch.arange(i * 32, i * 32 + 32) % len(y)
        loss = ((model(X[idx]).squeeze(-1) - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss=loss, val_loss=loss.item() if i % 10 == 0 else None)


def test_controller_drives_the_optimizer_within_bounds():
    X, y, model, opt = _task()
    policy = Policy(Controller.policy_config())
    ctl = Controller(opt, total_steps=200, policy=policy, n_policy_steps=20, greedy=False, seed=1)
    _train(ctl, X, y, model, opt, 200)
    assert len(ctl.history) == 19
    assert {h["checkpoint"] for h in ctl.history} <= {"none", "save", "restore"}
    for h in ctl.history:
        assert 1e-8 <= h["lr"] <= 1 and 0.5 <= h["clip_quantile"] <= 0.999
        assert math.isfinite(h["train_loss"])
    assert len({h["lr"] for h in ctl.history}) > 1  # a sampling policy does move the lr


def test_policy_round_trips_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    policy = Policy(Controller.policy_config(hidden=16))
    for p in policy.parameters():  # make the heads non-trivial
        torch.nn.init.normal_(p, std=0.5)
    policy.norm.update(torch.randn(50, policy.config.obs_size))
    policy.save(tmp_path / "p.pt")
    loaded = Policy.load(tmp_path / "p.pt")
    obs = torch.randn(3, policy.config.obs_size)
    state = policy.initial_state(3)
    for a, b in zip(policy(obs, state)[0], loaded(obs, state)[0], strict=True):
        torch.testing.assert_close(a, b)


def test_mismatched_policy_and_missing_default_are_clear_errors(monkeypatch, tmp_path):
    _, _, _, opt = _task()
    wrong = Policy(PolicyConfig(obs_size=observation_size(6) + 1, n_choices=[7, 3, 3, 3, 3, 5]))
    with pytest.raises(ValueError, match="policy expects observations"):
        Controller(opt, total_steps=100, policy=wrong)
    monkeypatch.setattr(
        "metatune.lhopt.controller.default_policy_path", lambda name="default": tmp_path / "gone.pt"
    )
    with pytest.raises(FileNotFoundError, match="shipped policy file is missing"):
        Controller(opt, total_steps=100)
    with pytest.raises(ValueError, match="total_steps"):
        Controller(opt, total_steps=0, policy=Policy(Controller.policy_config()))


def test_controller_without_clipping_has_no_clip_knob():
    _, _, _, opt = _task()
    ctl = Controller(
        opt, total_steps=50, policy=Policy(Controller.policy_config(clip=False)), clip=False
    )
    assert "clip_quantile" not in [k.name for k in ctl.actions.knobs]


def test_guard_restores_the_best_state_and_cuts_the_lr_on_divergence():
    X, y, model, opt = _task(lr=1e-2)
    keep = Policy(Controller.policy_config())  # untrained and greedy: always "keep"
    ctl = Controller(opt, total_steps=100, policy=keep, n_policy_steps=10)
    _train(ctl, X, y, model, opt, 30)  # three healthy policy steps: the guard saved the best
    assert not any(h["guard_restored"] for h in ctl.history)
    best = [p.detach().clone() for p in model.parameters()]
    lr = opt.param_groups[0]["lr"]
    with torch.no_grad():  # wreck the weights, as a divergent step would
        for p in model.parameters():
            p.add_(1e3)
    for _ in range(10):
        ctl.step(loss=float("nan"))
    assert ctl.history[-1]["guard_restored"]
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * 0.1)
    for p, b in zip(model.parameters(), best, strict=True):
        torch.testing.assert_close(p.detach(), b)
    # a loss far above the first one counts as divergence too; without the guard nothing happens
    for _ in range(10):
        ctl.step(loss=1e6)
    assert ctl.history[-1]["guard_restored"]
    X, y, model, opt = _task(lr=1e-2)
    off = Controller(opt, total_steps=100, policy=keep, n_policy_steps=10, guard=False)
    for _ in range(20):
        off.step(loss=float("nan"))
    assert not any(h["guard_restored"] for h in off.history)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="guard_factor"):
        Controller(opt, total_steps=100, policy=keep, guard_factor=1.0)


def test_guard_measures_against_the_best_loss_and_checks_the_last_segment():
    # A run that starts with a huge loss (a rate far too high) and later blows up to a loss
    # still below that first one must trip the guard; so must a blow-up after the last policy
    # step, which the final step checks.
    X, y, model, opt = _task(lr=1e-2)
    keep = Policy(Controller.policy_config())
    ctl = Controller(opt, total_steps=95, policy=keep, n_policy_steps=10)  # acts every 9 steps
    for loss in [1e4] * 9 + [1.0] * 9:
        ctl.step(loss=loss)
    assert not any(h["guard_restored"] for h in ctl.history)
    kept = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    for _ in range(9):
        ctl.step(loss=50.0)  # 50x the best, far below the first
    assert ctl.history[-1]["guard_restored"]
    for p, k in zip(model.parameters(), kept, strict=True):
        torch.testing.assert_close(p.detach(), k)
    for _ in range(9 * 7):
        ctl.step(loss=1.0)
    assert ctl._t == 90 and len(ctl.history) == 10  # the last policy step was at step 90
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    lr = opt.param_groups[0]["lr"]
    for _ in range(5):
        ctl.step(loss=float("inf"))
    assert ctl.history[-1].get("guard_restored_at_end")
    assert opt.param_groups[0]["lr"] == pytest.approx(lr * 0.1)
    for p, k in zip(model.parameters(), kept, strict=True):
        torch.testing.assert_close(p.detach(), k)
