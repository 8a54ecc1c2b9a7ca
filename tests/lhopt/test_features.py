import math

import numpy as np
import pytest
import torch

from metatune.lhopt.features import EMACDF, GradientStats, LossFeatures, RunFeatures


def _run(loss_scale: float, steps: int = 12, eps: float = 1e-12):
    """Train a small regression model; the loss is multiplied by `loss_scale`."""
    torch.manual_seed(0)
    X = torch.randn(64, 5)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * torch.randn(64)
    w = torch.nn.Parameter(torch.randn(5))
    opt = torch.optim.AdamW([w], lr=1e-2, eps=eps, weight_decay=0.0)
    stats = GradientStats()
    for i in range(steps):
        idx = torch.arange(i * 5, i * 5 + 16) % 64
        loss = loss_scale * ((X[idx] @ w - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        stats.sample(opt)
    return np.array(stats.features())


def test_gradient_features_are_invariant_to_the_loss_scale():
    base = _run(1.0)
    for scale in (1e-3, 1e4):
        np.testing.assert_allclose(_run(scale), base, rtol=1e-5, atol=1e-6)


def test_gradient_features_are_finite_and_bounded():
    f = _run(1.0)
    names = GradientStats().names
    assert np.all(np.isfinite(f))
    for name, v in zip(names, f, strict=True):
        if name.startswith(("cos", "cdf", "frac")):
            assert -1 <= v <= 1


def test_ema_cdf_is_invariant_to_affine_units():
    rng = np.random.default_rng(0)
    xs = np.cumsum(rng.normal(size=50))
    a, b = EMACDF(), EMACDF()
    for x in xs:
        fa, fb = a.update(float(x)), b.update(float(1000 * x + 7))
        np.testing.assert_allclose(fa, fb, atol=1e-9)
        assert all(0 <= v <= 1 for v in fa)


def test_ema_cdf_tells_falling_from_plateau():
    falling, flat = EMACDF((10.0,)), EMACDF((10.0,))
    rng = np.random.default_rng(1)
    for t in range(60):
        f_fall = falling.update(-0.1 * t + 0.01 * rng.normal())
        f_flat = flat.update(0.01 * rng.normal())
    assert f_fall[0] < 0.2
    assert 0.05 < f_flat[0] < 0.95


def test_loss_features_scale_free_and_flags_nonfinite():
    a, b = LossFeatures(), LossFeatures()
    losses = [3.0, 2.5, 2.0, 1.9, 1.85]
    for i, loss in enumerate(losses):
        val = loss * 1.1 if i % 2 else None
        fa = a.update(loss, val)
        fb = b.update(loss * 50, None if val is None else val * 50)
        np.testing.assert_allclose(fa, fb, atol=1e-9)
    f = a.update(math.inf, math.nan)
    assert f[2] == 1.0 and f[3] == 1.0


@pytest.mark.parametrize("n_hparams", [0, 3])
def test_observation_size_and_reset(n_hparams):
    rf = RunFeatures()
    obs = rf.observe(1.0, None, 0.25, [0.0] * n_hparams)
    assert len(obs) == rf.size_without_hparams + n_hparams
    assert obs[rf.size_without_hparams - 1] == 0.25
