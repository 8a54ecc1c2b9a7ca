"""The lockstep engine gives the same episodes as the one-model-per-process engine."""

import math

import numpy as np
import pytest
import torch

from metatune.lhopt.controller import Controller
from metatune.lhopt.policy import Policy
from metatune.lhopt.task_space import sample_group
from metatune.lhopt.vectorized import ReplicaStart, run_lockstep
from metatune.lhopt.vectorized.engine import schedule_factor

RTOL = 1e-4  # float32 reductions batched in another order; measured ~1e-5 over 120 steps


def _group(family="mlp-classify", replicas=3, seed=0):
    group, _ = sample_group(family, np.random.default_rng(seed), replicas, steps=200)
    return group


def _policy(checkpoints=False):
    torch.manual_seed(0)
    policy = Policy(Controller.policy_config())
    with torch.no_grad():  # a policy that moves: random heads instead of "keep"-leaning zeros
        for head in policy.heads:
            head.weight.normal_(0, 0.5)
        if checkpoints:  # save and restore often
            policy.heads[-1].bias.copy_(torch.tensor([0.0, 3.0, 3.0]))
    return policy.eval()


def _unbatched(group, r, start, steps, policy=None, n_policy=8, seed=0, schedule="constant"):
    """One replica through the existing path: TrainingTask.run + torch AdamW + Controller."""
    task = group.training_task(r)
    opt = torch.optim.AdamW(
        task.model.parameters(),
        lr=start.lr,
        betas=(start.beta1, start.beta2),
        eps=start.eps,
        weight_decay=start.weight_decay,
    )
    record = []
    hook = None
    if policy is not None:
        ctl = Controller(
            opt, steps, policy=policy, n_policy_steps=n_policy, greedy=False, seed=seed,
            recorder=record, guard=False,
        )  # fmt: skip
        hook = lambda t, loss, val: ctl.step(loss, val)  # noqa: E731
    elif schedule != "constant":  # torch's LambdaLR, stepped once per step
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: schedule_factor(schedule, t, steps)
        )
        hook = lambda t, loss, val: sched.step()  # noqa: E731

    curve = task.run(opt, steps, on_step=hook)
    if policy is not None and ctl.clipper is not None:
        ctl.clipper.remove()
    return curve, record, dict(task.model.named_parameters())


def _close_curves(a, b):
    assert [t for t, _ in a] == [t for t, _ in b]
    for (_, x), (_, y) in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=RTOL, abs=1e-6) or (math.isinf(x) and math.isinf(y))


def _close_params(unbatched, stacked, r):
    for name, p in unbatched.items():
        torch.testing.assert_close(stacked[name][r], p.detach(), rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize(
    ("checkpoints", "backend"), [(False, "batched"), (True, "batched"), (False, "vmap")]
)
def test_a_policy_driven_episode_equals_the_unbatched_engine(checkpoints, backend):
    group = _group()
    policy = _policy(checkpoints)
    starts = [ReplicaStart(lr=3e-3), ReplicaStart(lr=1e-2, beta1=0.8), ReplicaStart(lr=1e-3)]
    steps, n_policy, seeds = [80, 60, 80], [8, 5, 10], [1, 2, 3]
    res = run_lockstep(group, starts, steps, policy=policy, n_policy_steps=n_policy, seeds=seeds)
    for r in range(group.size):
        curve, record, params = _unbatched(
            group, r, starts[r], steps[r], policy, n_policy[r], seeds[r]
        )
        assert [s["choices"] for s in record] == [s["choices"] for s in res.records[r]]
        np.testing.assert_allclose(
            [s["obs"] for s in record], [s["obs"] for s in res.records[r]], rtol=1e-3, atol=1e-4
        )
        _close_curves(curve, res.curves[r])
        _close_params(params, res.params, r)
    if checkpoints:
        used = {h["checkpoint"] for hist in res.histories for h in hist}
        assert {"save", "restore"} <= used


@pytest.mark.parametrize(
    ("schedule", "backend"),
    [
        ("constant", "batched"),
        ("cosine", "batched"),
        ("warmup_cosine", "batched"),
        ("constant", "vmap"),
    ],
)
def test_plain_adamw_with_per_replica_hyperparameters_equals_torch(schedule, backend):
    group = _group("mlp-friedman", replicas=4, seed=1)
    starts = [
        ReplicaStart(lr=1e-3),
        ReplicaStart(lr=3e-2, beta2=0.99, weight_decay=0.0),
        ReplicaStart(lr=1e-2, eps=1e-4, weight_decay=0.1),
        ReplicaStart(lr=3e-3, beta1=0.5),
    ]
    res = run_lockstep(group, starts, 80, schedule=schedule, backend=backend)
    for r in range(group.size):
        curve, _, params = _unbatched(group, r, starts[r], 80, schedule=schedule)
        _close_curves(curve, res.curves[r])
        _close_params(params, res.params, r)


def test_per_replica_schedules_and_lengths_equal_torch_lambdalr():
    group = _group("mlp-classify", replicas=3, seed=4)
    schedules, steps = ["warmup_cosine", "constant", "cosine"], [80, 50, 60]
    starts = [ReplicaStart(lr=1e-2)] * 3
    res = run_lockstep(group, starts, steps, schedule=schedules)
    for r in range(3):
        curve, _, params = _unbatched(group, r, starts[r], steps[r], schedule=schedules[r])
        _close_curves(curve, res.curves[r])
        _close_params(params, res.params, r)


def test_warmup_cosine_warms_up_then_decays_to_zero():
    factors = [schedule_factor("warmup_cosine", t, 200) for t in range(200)]
    assert factors[0] == pytest.approx(0.1)  # 10 warm-up steps
    assert factors[9] == pytest.approx(1.0) and max(factors) == pytest.approx(1.0)
    assert factors[-1] < 1e-3 and all(
        a >= b for a, b in zip(factors[9:], factors[10:], strict=False)
    )


def test_adam_with_l2_weight_decay_equals_torch_adam():
    group = _group("mlp-diabetes", replicas=2, seed=2)
    res = run_lockstep(group, [ReplicaStart(lr=3e-3, weight_decay=0.05)] * 2, 60, decoupled=False)
    for r in range(2):
        task = group.training_task(r)
        opt = torch.optim.Adam(task.model.parameters(), lr=3e-3, weight_decay=0.05)
        _close_curves(task.run(opt, 60), res.curves[r])
        _close_params(dict(task.model.named_parameters()), res.params, r)


def test_a_diverging_replica_skips_its_steps_and_leaves_the_others_alone():
    group = _group("mlp-linreg", replicas=2, seed=3)
    starts = [ReplicaStart(lr=1.0, weight_decay=0.0), ReplicaStart(lr=1e-3)]
    with torch.no_grad():  # a huge init so that a rate of 1 blows the first replica up
        for m in group.modules[:1]:
            for p in m.parameters():
                p.mul_(1e18)
    res = run_lockstep(group, starts, 40)
    for r in range(2):
        curve, _, _ = _unbatched(group, r, starts[r], 40)
        _close_curves(curve, res.curves[r])
    assert math.isfinite(res.curves[1][-1][1])


def test_replicas_of_different_lengths_stop_at_their_own_end():
    group = _group("mlp-moons", replicas=2, seed=4)
    res = run_lockstep(group, [ReplicaStart(lr=1e-2)] * 2, [30, 55], val_every=20)
    assert [t for t, _ in res.curves[0]] == [20, 30]
    assert [t for t, _ in res.curves[1]] == [20, 40, 55]
    curve, _, params = _unbatched(group, 0, ReplicaStart(lr=1e-2), 30)
    _close_params(params, res.params, 0)


@pytest.mark.parametrize("family", ["cnn-digits", "mlp-charlm", "gru-signal", "transformer-charlm"])
def test_the_batched_kernels_give_what_vmap_gives(family):
    group, _ = sample_group(family, np.random.default_rng(6), 3, steps=200)
    starts = [ReplicaStart(lr=3e-3)] * 3
    a = run_lockstep(group, starts, 30, backend="batched")
    b = run_lockstep(group, starts, 30, backend="vmap")
    for ca, cb in zip(a.curves, b.curves, strict=True):
        _close_curves(ca, cb)
    for name, p in a.params.items():
        if name.endswith("qkv.bias"):
            # the key bias shifts every score of a query alike, which softmax ignores: its
            # gradient is rounding noise, which Adam scales up to steps of the full rate
            continue
        torch.testing.assert_close(p, b.params[name], rtol=RTOL, atol=1e-5)


def test_bad_arguments_are_refused_before_any_work():
    group = _group(replicas=2)
    with pytest.raises(ValueError, match="starts needs one ReplicaStart per replica"):
        run_lockstep(group, [ReplicaStart(lr=1e-3)], 10)
    with pytest.raises(ValueError, match="schedule must be one of"):
        run_lockstep(group, [ReplicaStart(lr=1e-3)] * 2, 10, schedule="step")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        run_lockstep(group, [ReplicaStart(lr=1e-3)] * 2, [10])
    with pytest.raises(ValueError, match="n_policy_steps must be at most"):
        run_lockstep(group, [ReplicaStart(lr=1e-3)] * 2, 10, policy=_policy(), n_policy_steps=20)
    with pytest.raises(ValueError, match="backend must be one of"):
        run_lockstep(group, [ReplicaStart(lr=1e-3)] * 2, 10, backend="gpu")
    with pytest.raises(ValueError, match="schedule must be 'constant'"):
        run_lockstep(group, [ReplicaStart(lr=1e-3)] * 2, 10, policy=_policy(), schedule="cosine")
