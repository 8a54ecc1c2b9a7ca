"""Hypergradient accuracy against closed-form answers (ridge regression, nested quadratics)."""

from __future__ import annotations

import math

import pytest
import torch
from mlo_testlib import (
    DT,
    ridge_data,
    ridge_engine,
    ridge_exact_hypergradient,
    ridge_lr,
    ridge_solution,
    trilevel_engine,
    trilevel_exact,
)

from metatune.mlo import get_hypergradient

LOG_LAM = math.log(0.3)


def _exact() -> float:
    return ridge_exact_hypergradient(*ridge_data(0), LOG_LAM)


def _hyper(method: str, options: dict | None = None, unroll: int = 1) -> float:
    engine, _ = ridge_engine(method, options, log_lam=LOG_LAM, unroll=unroll)
    engine.run()  # the inner takes `unroll` steps at its optimum, the outer one step with lr 0
    (g,) = engine.hypergradient("outer")
    return float(g)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_exact_hypergradient_matches_finite_differences_of_the_solution():
    X, y, Xv, yv = ridge_data(0)

    def val(s):
        w, _ = ridge_solution(X, y, math.exp(s))
        return float(((Xv @ w - yv) ** 2).mean())

    h = 1e-5
    fd = (val(LOG_LAM + h) - val(LOG_LAM - h)) / (2 * h)
    assert _rel(fd, _exact()) < 1e-6


def test_cg_matches_exact():
    assert _rel(_hyper("cg", {"iterations": 20}), _exact()) < 1e-4


def test_neumann_matches_exact():
    X, *_ = ridge_data(0)
    alpha = ridge_lr(X, math.exp(LOG_LAM))
    assert _rel(_hyper("neumann", {"iterations": 300, "alpha": alpha}), _exact()) < 1e-4


def test_neumann_with_few_terms_is_a_partial_sum():
    # fewer terms: a smaller-magnitude estimate with the same sign
    X, *_ = ridge_data(0)
    alpha = ridge_lr(X, math.exp(LOG_LAM))
    few = _hyper("neumann", {"iterations": 2, "alpha": alpha})
    assert math.copysign(1, few) == math.copysign(1, _exact())
    assert abs(few) < abs(_exact())


def test_unrolled_equals_truncated_neumann_and_converges():
    X, *_ = ridge_data(0)
    lr = ridge_lr(X, math.exp(LOG_LAM))
    # K unrolled GD steps from the optimum == Neumann series with K terms (K - 1 iterations)
    for k in (1, 3, 8):
        un = _hyper("unrolled", unroll=k)
        ne = _hyper("neumann", {"iterations": k - 1, "alpha": lr})
        assert _rel(un, ne) < 1e-8
        assert math.copysign(1, un) == math.copysign(1, _exact())
    assert _rel(_hyper("unrolled", unroll=200), _exact()) < 1e-4


def test_darts_is_the_identity_hessian_approximation():
    X, y, Xv, yv = ridge_data(0)
    lam = math.exp(LOG_LAM)
    w, _ = ridge_solution(X, y, lam)
    v = 2 * Xv.T @ (Xv @ w - yv) / Xv.shape[0]
    for scale in (1.0, 0.05):
        expected = -scale * float(v @ (2 * lam * w))  # -scale * d2L/(ds dw) @ v
        for name in ("darts", "finite_difference"):
            got = _hyper(name, {"scale": scale, "alpha": 1e-3})
            assert _rel(got, expected) < 1e-6
        assert _rel(_hyper("neumann", {"iterations": 0, "alpha": scale}), expected) < 1e-6


def test_reinforce_rademacher_matches_exact():
    # one upper parameter: Rademacher perturbations have z^2 = 1, so the antithetic estimate is
    # the central difference of the replayed (re-converged) lower problem: exact up to O(sigma^2)
    opts = {"samples": 2, "sigma": 1e-4, "steps": 40, "distribution": "rademacher", "seed": 0}
    assert _rel(_hyper("reinforce", opts), _exact()) < 1e-4


def test_reinforce_gaussian_is_unbiased_within_statistical_tolerance():
    # Gaussian smoothing of the same 2-step replay that "unrolled" differentiates: each sample is
    # g * z^2 (+ O(sigma^2)), so the mean over N has relative sd sqrt(2 / N)
    n = 400
    opts = {"samples": n, "sigma": 1e-3, "steps": 2, "seed": 0}
    got = _hyper("reinforce", opts, unroll=2)
    ref = _hyper("unrolled", unroll=2)
    assert _rel(got, ref) < 4 * math.sqrt(2 / n)


def test_reinforce_vector_upper_is_unbiased():
    # bottom -> middle hop of the trilevel problem (3 upper parameters), reinforce vs cg
    a = torch.tensor([0.3, -0.2, 0.5], dtype=DT)
    engine, m = trilevel_engine("cg", {"iterations": 30}, converged_at=a)
    bottom, middle = engine.problems["bottom"], engine.problems["middle"]
    bottom.last_batch = m
    vec = [torch.tensor([1.0, -2.0, 0.5], dtype=DT)]
    ref = get_hypergradient("cg")(vec, bottom, middle, {"iterations": 30})[0]
    n = 200
    for dist in ("gaussian", "rademacher"):
        opts = {"samples": n, "sigma": 1e-3, "steps": 20, "seed": 3, "distribution": dist}
        est = get_hypergradient("reinforce")(vec, bottom, middle, opts)[0]
        # Gaussian: per-sample coordinate variance |g|^2 + g_i^2 (Rademacher: less)
        se = torch.sqrt((ref.norm() ** 2 + ref**2) / n)
        assert bool(((est - ref).abs() < 4.5 * se).all()), (est, ref, se)


@pytest.mark.parametrize(
    "method,options,tol",
    [
        ("cg", {"iterations": 30}, 1e-8),
        ("neumann", {"iterations": 300, "alpha": 0.3}, 1e-6),
    ],
)
def test_trilevel_two_hop_hypergradient_is_exact(method, options, tol):
    a = torch.tensor([0.3, -0.2, 0.5], dtype=DT)
    engine, m = trilevel_engine(method, options, converged_at=a)
    bottom = engine.problems["bottom"]
    bottom.last_batch = m
    engine.problems["middle"].last_batch = m
    (g,) = engine.hypergradient("top", m)
    K, _ = trilevel_exact(m)
    exact = K.T @ (K @ a - m["t"]) + m["rho"] * a
    assert engine.paths("top") == [["bottom", "middle", "top"]]
    assert float((g - exact).norm() / exact.norm()) < tol


@pytest.mark.parametrize(
    "method,options,tol",
    [
        ("cg", {"iterations": 30}, 1e-3),
        ("neumann", {"iterations": 60, "alpha": 0.3}, 1e-3),
        ("unrolled", {}, 1e-2),  # truncated after 10 steps: a small bias
    ],
)
def test_trilevel_training_reaches_known_optimum(method, options, tol):
    engine, m = trilevel_engine(method, options, unroll=(10, 10), train_iters=6000)
    engine.run()
    _, a_star = trilevel_exact(m)
    a = engine.problems["top"].module.a.detach()
    assert float((a - a_star).norm() / a_star.norm()) < tol
    assert engine.problems["top"].step_count == 6000 // 100


def _trilevel_at_fixed_point(method, options, d=3):
    """Trilevel problem started at its lower optima for a fixed a, run until the top's first
    step (top lr 0), so every level holds a history recorded at the fixed point."""
    a = torch.linspace(0.3, -0.4, d, dtype=DT)
    engine, m = trilevel_engine(
        method, options, converged_at=a, unroll=(5, 5), lrs=(0.4, 0.4, 0.0), train_iters=25, d=d
    )
    engine.run()
    assert engine.problems["top"].step_count == 1
    (g,) = engine.hypergradient("top", m)
    K, _ = trilevel_exact(m)
    exact = K.T @ (K @ a - m["t"]) + m["rho"] * a
    return g, exact, m, a


def test_trilevel_two_hop_unrolled_equals_chained_truncated_neumann():
    # 5 unrolled GD steps per level == a 5-term Neumann series per hop, chained over both hops
    g_un, exact, *_ = _trilevel_at_fixed_point("unrolled", {})
    g_ne, *_ = _trilevel_at_fixed_point("neumann", {"iterations": 4, "alpha": 0.4})
    assert float((g_un - g_ne).norm() / g_ne.norm()) < 1e-8
    assert float(torch.dot(g_un, exact)) > 0


def test_trilevel_two_hop_darts_is_the_chained_identity_approximation():
    s = 0.4
    g, _, m, a = _trilevel_at_fixed_point("darts", {"scale": s, "alpha": 1e-3})
    c = torch.linalg.solve(m["Q"], m["R"] @ torch.linalg.solve(m["S"], m["U"] @ a))
    expected = s * s * m["U"].T @ (m["R"].T @ (c - m["t"])) + m["rho"] * a
    assert float((g - expected).norm() / expected.norm()) < 1e-6


def test_trilevel_two_hop_reinforce_matches_exact_in_one_dimension():
    # one parameter per level: Rademacher antithetic estimates are central differences of the
    # replayed (re-converged) lower problems, exact up to O(sigma^2) on both hops
    opts = {"samples": 2, "sigma": 1e-4, "steps": 40, "distribution": "rademacher", "seed": 0}
    g, exact, *_ = _trilevel_at_fixed_point("reinforce", opts, d=1)
    assert float((g - exact).abs() / exact.abs()) < 1e-4
