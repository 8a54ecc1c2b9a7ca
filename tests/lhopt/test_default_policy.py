"""The pretrained policy shipped inside the package."""

import torch

from metatune.lhopt import Controller
from metatune.lhopt.controller import default_policy_path
from metatune.lhopt.tasks import TASK_FAMILIES
from metatune.lhopt.training import best_loss


def test_the_default_policy_ships_and_fits_the_controller():
    assert default_policy_path().exists()
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ctl = Controller(opt, total_steps=100)  # policy="default"
    for _ in range(100):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctl.step(loss=loss)
    assert len(ctl.history) == 8  # at least 8 policy steps by default: every 100 // 8 = 12 steps


def test_controller_recovers_from_a_learning_rate_far_too_high():
    """300x the default lr: plain AdamW ends worse than where it started, the controller learns."""
    mult, steps = 300.0, 300
    task = TASK_FAMILIES["char-lm"](100)
    start = task.val_loss()
    plain_opt = torch.optim.AdamW(task.model.parameters(), lr=task.default_lr * mult)
    plain = best_loss(task.run(plain_opt, steps))

    task = TASK_FAMILIES["char-lm"](100)
    opt = torch.optim.AdamW(task.model.parameters(), lr=task.default_lr * mult)
    ctl = Controller(opt, total_steps=steps)
    ours = best_loss(task.run(opt, steps, on_step=lambda t, loss, val: ctl.step(loss, val)))
    assert plain > 0.9 * start  # the high lr really breaks plain training
    assert ours < 0.7 * start and ours < 0.6 * plain
    assert opt.param_groups[0]["lr"] < 0.2 * task.default_lr * mult  # the policy cut the lr


def test_the_first_policy_ships_too_by_name():
    from metatune.lhopt.controller import SHIPPED_POLICIES

    assert SHIPPED_POLICIES == ("default", "base")
    assert default_policy_path("base").exists()
    opt = torch.optim.AdamW(torch.nn.Linear(2, 1).parameters(), lr=1e-3)
    base = Controller(opt, total_steps=50, policy="base").policy
    default = Controller(opt, total_steps=50).policy
    # two different policies: the default was fine-tuned from the base
    assert any(
        not torch.equal(p, q) for p, q in zip(base.parameters(), default.parameters(), strict=True)
    )
