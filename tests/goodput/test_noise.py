"""Noise estimators against least squares with Gaussian inputs and noise, where the gradient
covariance has a closed form: at w = w* + r, per-example gradients x (x.r - eps) have mean r and
covariance (|r|^2 + sigma^2) I + r r^T, so tr(Sigma) = d (|r|^2 + sigma^2) + |r|^2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from metatune.goodput import (
    GoodputController,
    NoiseEstimate,
    NoiseTracker,
    from_consecutive,
    from_pieces,
)

D, SIGMA = 10, 2.0


def _truth(r: np.ndarray) -> tuple[float, float]:
    rr = float(r @ r)
    return rr, D * (rr + SIGMA**2) + rr


def _batch_grad(rng: np.random.Generator, r: np.ndarray, b: int) -> np.ndarray:
    x = rng.standard_normal((b, D))
    eps = SIGMA * rng.standard_normal(b)
    return (x * (x @ r - eps)[:, None]).mean(0)


def test_closed_form_matches_sampling():
    rng = np.random.default_rng(0)
    r = 0.5 * np.ones(D)
    x = rng.standard_normal((200_000, D))
    g = x * (x @ r - SIGMA * rng.standard_normal(len(x)))[:, None]
    sqr, var = _truth(r)
    assert float(g.var(0).sum()) == pytest.approx(var, rel=0.02)
    assert float(g.mean(0) @ g.mean(0)) == pytest.approx(sqr, rel=0.05)


@pytest.mark.parametrize("sizes", [(8, 8), (16, 16, 16, 16), (5, 12, 20)])
def test_pieces_are_unbiased(sizes):
    rng = np.random.default_rng(1)
    r = 0.3 * np.arange(1, D + 1) / D
    sqr, var = _truth(r)
    ests = []
    for _ in range(3000):
        gs = [_batch_grad(rng, r, b) for b in sizes]
        mean = sum(b * g for b, g in zip(sizes, gs, strict=True)) / sum(sizes)
        ests.append(from_pieces([float(g @ g) for g in gs], sizes, float(mean @ mean)))
    v = np.array([e.grad_var for e in ests])
    s = np.array([e.grad_sqr for e in ests])
    # within 4 standard errors of the closed form (fixed seed, so deterministic)
    assert abs(v.mean() - var) < 4 * v.std() / math.sqrt(len(v))
    assert abs(s.mean() - sqr) < 4 * s.std() / math.sqrt(len(s))
    assert abs(v.mean() / var - 1) < 0.05


def test_consecutive_is_unbiased_at_fixed_parameters():
    rng = np.random.default_rng(2)
    r = 0.4 * np.ones(D)
    sqr, var = _truth(r)
    ests = []
    for _ in range(3000):
        a, b = _batch_grad(rng, r, 16), _batch_grad(rng, r, 16)
        ests.append(
            from_consecutive(float((a - b) @ (a - b)), float((a + b) @ (a + b) / 4), 16, 16)
        )
    v = np.array([e.grad_var for e in ests])
    s = np.array([e.grad_sqr for e in ests])
    assert abs(v.mean() / var - 1) < 0.05
    assert abs(s.mean() - sqr) < 4 * s.std() / math.sqrt(len(s))


def test_consecutive_overestimates_variance_when_parameters_move():
    # The documented bias: a step between the two gradients adds |G_t - G_{t-1}|^2.
    rng = np.random.default_rng(3)
    r = 0.4 * np.ones(D)
    _, var = _truth(r)
    v = []
    for _ in range(2000):
        a = _batch_grad(rng, r, 16)
        r2 = r - 0.5 * a  # an SGD step with lr 0.5
        b = _batch_grad(rng, r2, 16)
        v.append(
            from_consecutive(
                float((a - b) @ (a - b)), float((a + b) @ (a + b) / 4), 16, 16
            ).grad_var
        )
    assert np.mean(v) > 1.2 * var


def test_tracker_debiases_and_reports_uncertainty():
    t = NoiseTracker(decay=0.9)
    assert math.isnan(t.noise_scale)
    t.update(NoiseEstimate(grad_sqr=2.0, grad_var=10.0))
    assert t.grad_sqr == pytest.approx(2.0) and t.noise_scale == pytest.approx(5.0)
    rng = np.random.default_rng(0)
    for _ in range(400):
        t.update(NoiseEstimate(2.0 + 0.5 * rng.standard_normal(), 10.0 + 2 * rng.standard_normal()))
    se_sqr, se_var, se_phi = t.standard_errors()
    n = t.effective_samples
    assert n == pytest.approx((1 + 0.9) / (1 - 0.9), rel=0.01)
    assert se_sqr == pytest.approx(0.5 / math.sqrt(n), rel=0.35)
    assert se_var == pytest.approx(2.0 / math.sqrt(n), rel=0.35)
    assert 0 < se_phi < 2.0
    t.update(NoiseEstimate(float("nan"), 1.0))  # skipped
    state = t.state_dict()
    t2 = NoiseTracker()
    t2.load_state_dict(state)
    assert t2.noise_scale == t.noise_scale and t2.count == t.count


def _least_squares_data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g, dtype=torch.float64)
    w_star = torch.randn(D, generator=g, dtype=torch.float64)
    y = x @ w_star + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y, w_star


def _brute_force(model: nn.Linear, x, y) -> float:
    # per-example gradients of 0.5 (x.w - y)^2 (no bias): x (x.w - y)
    res = (x @ model.weight[0].detach() - y)[:, None]
    g = x * res
    var = float(g.var(0, unbiased=True).sum())
    mean = g.mean(0)
    return var / float(mean @ mean)


@pytest.mark.parametrize(("max_micro", "measure_every"), [(8, None), (32, 1), (32, None)])
def test_controller_noise_scale_matches_brute_force_at_fixed_parameters(max_micro, measure_every):
    """Accumulation pieces (32 = 4 x 8), split steps and consecutive differences (unbiased
    here: lr 0 keeps the parameters, and so the truth, where they are)."""
    x, y, w_star = _least_squares_data(8192, 0)
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight[0] = w_star + 0.6
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ctl = GoodputController(
        model,
        opt,
        batch_size=32,
        max_batch_size=32,
        max_micro_batch=max_micro,
        measure_every=measure_every,
        noise_decay=0.99,
        adaptive=False,
    )
    loader = ctl.loader(torch.utils.data.TensorDataset(x, y), seed=0)
    for _ in ctl.epochs(2):
        for (xb, yb), _acc in loader:
            ctl.step(0.5 * ((ctl.model(xb).squeeze(-1) - yb) ** 2).mean())
    truth = _brute_force(model, x, y)
    assert ctl.noise.noise_scale == pytest.approx(truth, rel=0.15)
    lo_se = ctl.noise.standard_errors()[2]
    assert 0 < lo_se < 0.5 * truth


def test_adam_preconditioner_matches_second_moment():
    from metatune.goodput._gradients import adam_preconditioner

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), eps=1e-6)
    assert adam_preconditioner(opt, list(model.parameters())) is None  # no v before a step
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    w = adam_preconditioner(opt, list(model.parameters()))
    roots = [(opt.state[q]["exp_avg_sq"] / (1 - 0.99**3)).sqrt() for q in model.parameters()]
    # sqrt(v_hat), floored at a tenth of its mean over the model (see the next test)
    low = 0.1 * float(sum(r.sum() for r in roots)) / sum(r.numel() for r in roots)
    for got, root in zip(w, roots, strict=True):
        torch.testing.assert_close(got, 1 / (root.clamp(min=low) + 1e-6))


def test_adam_preconditioner_floors_a_vanishing_second_moment():
    # An input column that is always zero leaves its weights' second moment at zero: without a
    # floor their weight would be 1/eps and their (zero) noise would dominate the measurement.
    from metatune.goodput._gradients import adam_preconditioner

    model = nn.Linear(3, 1, bias=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    for _ in range(3):
        opt.zero_grad()
        x = torch.randn(5, 3)
        x[:, 2] = 0.0
        model(x).pow(2).sum().backward()
        opt.step()
    (w,) = adam_preconditioner(opt, list(model.parameters()), floor=0.1)
    v = opt.state[model.weight]["exp_avg_sq"] / (1 - 0.999**3)
    root = v.sqrt()
    low = 0.1 * float(root.mean())
    torch.testing.assert_close(w[0, :2], 1 / (root[0, :2] + 1e-8))  # above the floor: unchanged
    assert float(w[0, 2]) == pytest.approx(1 / (low + 1e-8))
    assert float(w.max() / w.min()) < 1 / 0.1 * float(root.max()) / float(root.mean()) + 1e-6


def test_flat_preconditioner_is_ones_where_a_parameter_has_no_second_moment():
    """A parameter the loss never reached has no Adam state: its coordinates are measured raw
    (weight 1), and Adam's own state is left as it was."""
    from metatune.goodput._gradients import adam_preconditioner, flat_adam_preconditioner

    used, unused = nn.Linear(3, 2), nn.Linear(2, 2)
    params = [*used.parameters(), *unused.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        used(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    before = {id(p): opt.state[p]["exp_avg_sq"].clone() for p in used.parameters()}
    flat = flat_adam_preconditioner(opt, params)
    per = adam_preconditioner(opt, params)
    n_used = sum(p.numel() for p in used.parameters())
    assert flat.numel() == sum(p.numel() for p in params)
    torch.testing.assert_close(flat[n_used:], torch.ones(flat.numel() - n_used))
    assert per[2] is None and per[3] is None
    torch.testing.assert_close(flat[:n_used], torch.cat([per[0].reshape(-1), per[1]]))
    for p in used.parameters():
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], before[id(p)], rtol=0, atol=0)


def test_an_estimate_after_a_longer_interval_forgets_the_older_ones_by_as_much():
    """update(b, elapsed=3) counts as three updates with b: the earlier average decays by
    decay**3 and b takes the rest of the weight."""
    d = 0.9
    sparse, dense = NoiseTracker(d), NoiseTracker(d)
    sparse.update(NoiseEstimate(1.0, 10.0))
    sparse.update(NoiseEstimate(4.0, 20.0), elapsed=3)
    w_old, w_new = (1 - d) * d**3, 1 - d**3
    assert sparse.grad_sqr == pytest.approx((w_old * 1.0 + w_new * 4.0) / (w_old + w_new))
    assert sparse.grad_var == pytest.approx((w_old * 10.0 + w_new * 20.0) / (w_old + w_new))
    dense.update(NoiseEstimate(1.0, 10.0))
    dense.update(NoiseEstimate(4.0, 20.0))
    assert dense.grad_sqr < sparse.grad_sqr  # the dense one still remembers the first more
    assert sparse.count == dense.count == 2


def test_an_estimate_from_a_larger_batch_weighs_by_its_examples():
    """update(b, weight=3) counts b three times as much as an estimate of weight 1 at the same
    age: the average is (d * a + 3 b) / (d + 3)."""
    d = 0.9
    t = NoiseTracker(d)
    t.update(NoiseEstimate(1.0, 10.0))
    t.update(NoiseEstimate(4.0, 20.0), weight=3.0)
    assert t.grad_sqr == pytest.approx((d * 1.0 + 3 * 4.0) / (d + 3))
    assert t.grad_var == pytest.approx((d * 10.0 + 3 * 20.0) / (d + 3))
    # the effective sample size counts the unequal weights: fewer than two equal ones
    assert 1.0 < t.effective_samples < 2.0
    with pytest.raises(ValueError, match="weight"):
        t.update(NoiseEstimate(1.0, 1.0), weight=0.0)


def test_the_bound_is_below_the_point_estimate_and_finite_while_the_signal_is_not_positive():
    t = NoiseTracker(decay=0.9)
    assert math.isnan(t.noise_scale_bound(1.0))
    t.update(NoiseEstimate(grad_sqr=2.0, grad_var=10.0))
    assert t.noise_scale_bound(1.0) == t.noise_scale  # one estimate: no spread yet
    rng = np.random.default_rng(0)
    for _ in range(200):
        t.update(NoiseEstimate(2.0 + 0.5 * rng.standard_normal(), 10.0))
    se_sqr = t.standard_errors()[0]
    assert t.noise_scale_bound(1.0) == pytest.approx(t.grad_var / (t.grad_sqr + se_sqr))
    assert t.noise_scale_bound(2.0) < t.noise_scale_bound(1.0) < t.noise_scale
    assert t.noise_scale_bound(0.0) == t.noise_scale

    weak = NoiseTracker(decay=0.9)  # |G|^2 far below its noise: the average is negative
    for k in range(50):
        weak.update(NoiseEstimate((-1.0) ** k * 5.0 - 0.5, 10.0))
    assert weak.grad_sqr < 0 and math.isinf(weak.noise_scale)
    bound = weak.noise_scale_bound(1.0)
    assert math.isfinite(bound)
    assert bound == pytest.approx(weak.grad_var / weak.standard_errors()[0])


def test_noise_confidence_out_of_range_is_refused_by_name():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="noise_confidence"):
        GoodputController(model, opt, batch_size=4, max_batch_size=8, noise_confidence=-1.0)
