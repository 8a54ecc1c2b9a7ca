"""Small multilevel problems with closed-form answers, shared by the mlo tests."""

from __future__ import annotations

import math

import torch
from torch import nn

from metatune.mlo import Config, Engine, EngineConfig, Problem

DT = torch.float64


class Params(nn.Module):
    """A bag of named parameters."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        super().__init__()
        for k, v in tensors.items():
            setattr(self, k, nn.Parameter(v.clone().to(DT)))


def ridge_data(seed: int = 0, n: int = 60, m: int = 40, d: int = 5):
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=DT)
    X = torch.randn(n, d, generator=g, dtype=DT)
    y = X @ w_true + 0.5 * torch.randn(n, generator=g, dtype=DT)
    Xv = torch.randn(m, d, generator=g, dtype=DT)
    yv = Xv @ w_true + 0.5 * torch.randn(m, generator=g, dtype=DT)
    return X, y, Xv, yv


def ridge_solution(X, y, lam):
    X, y = X.to(DT), y.to(DT)
    n, d = X.shape
    A = X.T @ X / n + lam * torch.eye(d, dtype=DT)
    return torch.linalg.solve(A, X.T @ y / n), A


def ridge_exact_hypergradient(X, y, Xv, yv, log_lam: float) -> float:
    """d L_val(w*(lam)) / d log_lam by the implicit function theorem with the exact w*."""
    lam = math.exp(log_lam)
    w, A = ridge_solution(X, y, lam)
    gv = 2 * Xv.T @ (Xv @ w - yv) / Xv.shape[0]
    return float(-lam * gv @ torch.linalg.solve(A, w))


class RidgeInner(Problem):
    upper = "outer"

    def training_step(self, batch):
        X, y = batch
        w = self.module.w
        lam = getattr(self, self.upper).module.log_lam.exp()
        return ((X @ w - y) ** 2).mean() + lam * (w**2).sum()


class RidgeOuter(Problem):
    lowers: tuple[str, ...] = ("inner",)

    def training_step(self, batch):
        total = 0.0
        for name, (Xv, yv) in zip(self.lowers, batch, strict=True):
            w = getattr(self, name).module.w
            total = total + ((Xv @ w - yv) ** 2).mean()
        return total


def ridge_lr(X, lam: float) -> float:
    """1 / lambda_max of the inner Hessian 2A: a step size for which GD (and Neumann) converge."""
    _, A = ridge_solution(X, torch.zeros(X.shape[0], dtype=DT), lam)
    return float(1.0 / (2 * torch.linalg.eigvalsh(A).max()))


def ridge_engine(
    method: str,
    options: dict | None = None,
    *,
    log_lam: float = math.log(0.3),
    unroll: int = 1,
    seed: int = 0,
    converged: bool = True,
    inner_lr: float | None = None,
    outer_lr: float = 0.0,
    train_iters: int | None = None,
    momentum: float = 0.0,
    precision: str = "fp32",
    dtype: torch.dtype = DT,
):
    """A bilevel ridge problem; with ``converged`` the inner starts at the exact optimum."""
    X, y, Xv, yv = ridge_data(seed)
    lam = math.exp(log_lam)
    w0 = ridge_solution(X, y, lam)[0] if converged else torch.zeros(X.shape[1], dtype=DT)
    inner_mod = Params(w=w0).to(dtype)
    outer_mod = Params(log_lam=torch.tensor(log_lam)).to(dtype)
    X, y, Xv, yv = (t.to(dtype) for t in (X, y, Xv, yv))
    lr = inner_lr if inner_lr is not None else ridge_lr(X, lam)
    inner = RidgeInner(
        "inner",
        inner_mod,
        torch.optim.SGD(inner_mod.parameters(), lr=lr, momentum=momentum),
        data=[(X, y)],
        config=Config(
            method=method, options=dict(options or {}), unroll_steps=unroll, precision=precision
        ),
    )
    outer = RidgeOuter(
        "outer",
        outer_mod,
        torch.optim.SGD(outer_mod.parameters(), lr=outer_lr, momentum=momentum),
        data=[((Xv, yv),)],
        config=Config(precision=precision),
    )
    engine = Engine(
        [inner, outer],
        {"u2l": {"outer": ["inner"]}, "l2u": {"inner": ["outer"]}},
        EngineConfig(train_iters=unroll if train_iters is None else train_iters),
    )
    return engine, (X, y, Xv, yv)


# ---------------------------------------------------------------- trilevel nested quadratics
# bottom c: L_B = 1/2 c'Qc - c'R b     ->  c*(b) = Q^-1 R b
# middle b: L_M = 1/2 b'Sb - b'U a     ->  b*(a) = S^-1 U a
# top    a: L_T = 1/2 |c - t|^2 + rho/2 |a|^2   (reads c only: a two-hop path c -> b -> a)
def trilevel_matrices(d: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)

    def spd():
        M = 0.3 * torch.randn(d, d, generator=g, dtype=DT)
        return torch.eye(d, dtype=DT) + M @ M.T

    Q, S = spd(), spd()
    R = torch.eye(d, dtype=DT) + 0.3 * torch.randn(d, d, generator=g, dtype=DT)
    U = torch.eye(d, dtype=DT) + 0.3 * torch.randn(d, d, generator=g, dtype=DT)
    t = torch.randn(d, generator=g, dtype=DT)
    return {"Q": Q, "R": R, "S": S, "U": U, "t": t, "rho": 0.1}


class Bottom(Problem):
    def training_step(self, batch):
        m = batch
        c = self.module.c
        return 0.5 * c @ m["Q"] @ c - c @ (m["R"] @ self.middle.module.b)


class Middle(Problem):
    def training_step(self, batch):
        m = batch
        b = self.module.b
        return 0.5 * b @ m["S"] @ b - b @ (m["U"] @ self.top.module.a)


class Top(Problem):
    def training_step(self, batch):
        m = batch
        a = self.module.a
        c = self.bottom.module.c
        return 0.5 * ((c - m["t"]) ** 2).sum() + 0.5 * m["rho"] * (a**2).sum()


def trilevel_exact(m):
    K = torch.linalg.solve(m["Q"], m["R"]) @ torch.linalg.solve(m["S"], m["U"])
    d = K.shape[0]
    a_star = torch.linalg.solve(K.T @ K + m["rho"] * torch.eye(d, dtype=DT), K.T @ m["t"])
    return K, a_star


def trilevel_engine(
    method: str,
    options: dict | None = None,
    *,
    converged_at=None,
    unroll=(5, 5),
    lrs=(0.4, 0.4, 0.5),
    train_iters: int = 0,
    d: int = 3,
):
    m = trilevel_matrices(d)
    d = m["t"].shape[0]
    a0 = torch.zeros(d, dtype=DT) if converged_at is None else converged_at
    b0 = torch.linalg.solve(m["S"], m["U"] @ a0)
    c0 = torch.linalg.solve(m["Q"], m["R"] @ b0)
    mods = Params(c=c0), Params(b=b0), Params(a=a0)
    bottom = Bottom(
        "bottom",
        mods[0],
        torch.optim.SGD(mods[0].parameters(), lr=lrs[0]),
        data=[m],
        config=Config(method=method, options=dict(options or {}), unroll_steps=unroll[0]),
    )
    middle = Middle(
        "middle",
        mods[1],
        torch.optim.SGD(mods[1].parameters(), lr=lrs[1]),
        data=[m],
        config=Config(method=method, options=dict(options or {}), unroll_steps=unroll[1]),
    )
    top = Top("top", mods[2], torch.optim.SGD(mods[2].parameters(), lr=lrs[2]), data=[m])
    engine = Engine(
        [bottom, middle, top],
        {"u2l": {"top": ["middle"], "middle": ["bottom"]}, "l2u": {"bottom": ["top"]}},
        EngineConfig(train_iters=train_iters),
    )
    return engine, m
