"""Learn one L2 penalty per feature by hypergradient descent (metatune.mlo), on diabetes.

Inner problem: linear regression on the training split with penalty sum_j exp(s_j) w_j^2.
Outer problem: mean squared error on the validation split, over the log-penalties s.
Compared with the best single shared penalty found by a grid search (closed-form ridge).

Run: python examples/mlo/l2_penalty.py
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn

from metatune.mlo import Config, Engine, EngineConfig, Problem

DT = torch.float64


def load_splits(seed: int = 0):
    X, y = load_diabetes(return_X_y=True)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.5, random_state=seed)
    X_va, X_te, y_va, y_te = train_test_split(X_rest, y_rest, test_size=0.5, random_state=seed)
    mu, sd = X_tr.mean(0), X_tr.std(0)
    ym, ys = y_tr.mean(), y_tr.std()

    def t(a, b):
        return torch.tensor((a - mu) / sd, dtype=DT), torch.tensor((b - ym) / ys, dtype=DT)

    return t(X_tr, y_tr), t(X_va, y_va), t(X_te, y_te)


def ridge(X, y, penalties):
    """Closed-form minimizer of ||Xw - y||^2 / n + sum_j p_j w_j^2 (no penalty on the bias)."""
    n, d = X.shape
    Xb = torch.cat([X, torch.ones(n, 1, dtype=DT)], 1)
    P = torch.diag(torch.cat([penalties, torch.zeros(1, dtype=DT)]))
    wb = torch.linalg.solve(Xb.T @ Xb / n + P, Xb.T @ y / n)
    return wb[:-1], wb[-1]


def mse(X, y, w, b) -> float:
    return float(((X @ w + b - y) ** 2).mean())


class Linear(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(d, dtype=DT))
        self.b = nn.Parameter(torch.zeros((), dtype=DT))

    def forward(self, X):
        return X @ self.w + self.b


class Penalties(nn.Module):
    def __init__(self, d: int, init: float) -> None:
        super().__init__()
        self.log_lam = nn.Parameter(torch.full((d,), init, dtype=DT))


class Inner(Problem):
    def training_step(self, batch):
        X, y = batch
        lam = self.outer.module.log_lam.exp()
        return ((self(X) - y) ** 2).mean() + (lam * self.module.w**2).sum()


class Outer(Problem):
    def training_step(self, batch):
        X, y = batch
        return ((self.inner(X) - y) ** 2).mean()


def main(train_iters: int = 3000, seed: int = 0, verbose: bool = True) -> dict[str, float]:
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = load_splits(seed)
    d = X_tr.shape[1]

    # baseline: grid search over one shared penalty, exact inner solutions
    grid = np.logspace(-6, 2, 161)
    scores = []
    for lam in grid:
        w, b = ridge(X_tr, y_tr, torch.full((d,), float(lam), dtype=DT))
        scores.append(mse(X_va, y_va, w, b))
    best_i = int(np.argmin(scores))
    grid_val = scores[best_i]

    # metatune.mlo: per-feature penalties by hypergradient (CG implicit differentiation)
    inner_mod, outer_mod = Linear(d), Penalties(d, init=0.0)
    Xb = torch.cat([X_tr, torch.ones(len(X_tr), 1, dtype=DT)], 1)
    lr = float(1.0 / (2 * torch.linalg.eigvalsh(Xb.T @ Xb / len(X_tr)).max() + 2.0))
    inner = Inner(
        "inner",
        inner_mod,
        torch.optim.SGD(inner_mod.parameters(), lr=lr, momentum=0.9),
        data=[(X_tr, y_tr)],
        config=Config(method="cg", options={"iterations": 30}, unroll_steps=20),
    )
    outer = Outer(
        "outer",
        outer_mod,
        torch.optim.Adam(outer_mod.parameters(), lr=0.05),
        data=[(X_va, y_va)],
    )
    engine = Engine(
        [inner, outer],
        {"u2l": {"outer": ["inner"]}, "l2u": {"inner": ["outer"]}},
        EngineConfig(
            train_iters=train_iters,
            valid_step=max(train_iters // 5, 1),
            logger=None,
            validation_fn=lambda eng: {
                "val_mse": mse(X_va, y_va, inner_mod.w.detach(), inner_mod.b.detach())
            },
        ),
    )
    engine.run()
    lam = outer_mod.log_lam.detach().exp()
    w, b = inner_mod.w.detach(), inner_mod.b.detach()
    w_exact, b_exact = ridge(X_tr, y_tr, lam)
    grid_w, grid_b = ridge(X_tr, y_tr, torch.full((d,), float(grid[best_i]), dtype=DT))
    result = {
        "grid_best_lambda": float(grid[best_i]),
        "grid_val_mse": grid_val,
        "grid_test_mse": mse(X_te, y_te, grid_w, grid_b),
        "mlo_val_mse": mse(X_va, y_va, w, b),
        "mlo_val_mse_exact_inner": mse(X_va, y_va, w_exact, b_exact),
        "mlo_test_mse": mse(X_te, y_te, w, b),
        "initial_val_mse": engine.losses["outer"][0][1],
    }
    if verbose:
        for step, metrics in engine.validation_history:
            print(f"step {step:5d}  validation mse {metrics['val_mse']:.4f}")
        print("learned log-penalties:", [round(math.log(float(v)), 2) for v in lam])
        for k, v in result.items():
            print(f"{k:26s} {v:.5f}")
        ratio = result["mlo_val_mse"] / grid_val
        print(f"validation mse / grid-search best = {ratio:.4f} (target <= 1.02)")
    return result


if __name__ == "__main__":
    main()
