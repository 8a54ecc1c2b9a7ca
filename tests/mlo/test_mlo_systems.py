"""Systems features: gradient accumulation, clipping, mixed precision."""

from __future__ import annotations

import math

import torch
from mlo_testlib import DT, Params, ridge_data, ridge_engine, ridge_exact_hypergradient

from metatune.mlo import Config, Engine, EngineConfig, Problem


class _LeastSquares(Problem):
    def training_step(self, batch):
        X, y = batch
        return ((X @ self.module.w - y) ** 2).mean()


def _leaf(data, accum=1, clip=None, lr=0.1):
    mod = Params(w=torch.zeros(3))
    return _LeastSquares(
        "leaf",
        mod,
        torch.optim.SGD(mod.parameters(), lr=lr),
        data=data,
        config=Config(gradient_accumulation=accum, gradient_clipping=clip),
    )


def test_gradient_accumulation_equals_the_combined_batch():
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(8, 3, generator=g, dtype=DT), torch.randn(8, generator=g, dtype=DT)
    halves = [(X[:4], y[:4]), (X[4:], y[4:])]
    acc = _leaf(halves, accum=2)
    full = _leaf([(X, y)], accum=1)
    Engine([acc], config=EngineConfig(train_iters=10)).run()
    Engine([full], config=EngineConfig(train_iters=5)).run()
    assert acc.step_count == 5
    assert torch.allclose(acc.module.w, full.module.w, atol=1e-12)


def test_accumulation_delays_the_upper_step():
    engine, _ = ridge_engine("cg", unroll=2, converged=False, train_iters=12)
    engine.problems["inner"].config.gradient_accumulation = 3
    engine.run()
    assert engine.problems["inner"].step_count == 4
    assert engine.problems["outer"].step_count == 2  # after 2 * 3 training steps each


def test_gradient_clipping_bounds_the_update():
    X = torch.eye(3, dtype=DT) * 100
    y = torch.full((3,), 100.0, dtype=DT)
    leaf = _leaf([(X, y)], clip=0.5, lr=1.0)
    Engine([leaf], config=EngineConfig(train_iters=1)).run()
    assert math.isclose(float(leaf.module.w.detach().norm()), 0.5, rel_tol=1e-9)


def test_bf16_autocast_bilevel_on_cpu():
    # bf16 matmuls (8-bit mantissa) in both levels: the hypergradient stays within a few percent
    log_lam = math.log(0.3)
    exact = ridge_exact_hypergradient(*ridge_data(0), log_lam)
    engine, _ = ridge_engine(
        "cg", {"iterations": 20}, log_lam=log_lam, precision="bf16", dtype=torch.float32
    )
    seen = []
    inner = engine.problems["inner"]
    original = type(inner).training_step

    def spy(self, batch):
        X, _ = batch
        seen.append((X @ self.module.w).dtype)
        return original(self, batch)

    inner.training_step = spy.__get__(inner)
    engine.run()
    (g,) = engine.hypergradient("outer")
    assert seen and seen[0] == torch.bfloat16
    assert abs(float(g) - exact) / abs(exact) < 0.05
    # and training under bf16 still moves the penalty the right way
    engine2, _ = ridge_engine(
        "cg",
        {"iterations": 20},
        log_lam=log_lam,
        precision="bf16",
        dtype=torch.float32,
        outer_lr=0.05,
        unroll=5,
        converged=False,
        train_iters=200,
    )
    before = float(engine2.problems["outer"].module.log_lam.detach())
    engine2.run()
    after = float(engine2.problems["outer"].module.log_lam.detach())
    assert math.copysign(1, after - before) == -math.copysign(1, exact)
    assert all(math.isfinite(v) for _, v in engine2.losses["outer"])


def test_fp16_loss_scaling_skips_non_finite_steps():
    engine, _ = ridge_engine(
        "cg", precision="fp16", dtype=torch.float32, converged=False, train_iters=3
    )
    inner = engine.problems["inner"]
    inner._loss_scale = 1e38  # forces an overflow: the step is skipped and the scale halves
    w0 = inner.module.w.detach().clone()
    engine.config.train_iters = 1
    engine.run()
    assert torch.equal(inner.module.w.detach(), w0)
    assert inner._loss_scale == 5e37
