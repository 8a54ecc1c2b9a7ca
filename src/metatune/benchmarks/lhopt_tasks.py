"""Held-out training tasks for evaluating a learned control policy (benchmarks/lhopt.py).

They are never part of the meta-training distribution (`metatune.lhopt.tasks.TASK_FAMILIES`):
a policy is judged on problems it has not seen. Registered in
`metatune.benchmarks.registry.HELD_OUT_TASKS`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from metatune.lhopt.tasks import TrainingTask

__all__ = ["diabetes_regression", "matrix_factorization"]


def matrix_factorization(seed: int) -> TrainingTask:
    """Recommendation: factorize synthetic low-rank ratings (users x items) with biases."""
    g = torch.Generator().manual_seed(seed)
    n_users, n_items, rank = 300, 200, 5
    truth = torch.randn(n_users, rank, generator=g) @ torch.randn(rank, n_items, generator=g) / 2
    mask = torch.rand(n_users, n_items, generator=g) < 0.15
    users, items = mask.nonzero(as_tuple=True)
    ratings = truth[users, items] + 0.3 * torch.randn(len(users), generator=g)
    perm = torch.randperm(len(users), generator=g)
    cut = int(0.8 * len(perm))
    tr, va = perm[:cut], perm[cut:]
    torch.manual_seed(seed)
    model = nn.ModuleDict(
        {
            "u": nn.Embedding(n_users, 16),
            "i": nn.Embedding(n_items, 16),
            "bu": nn.Embedding(n_users, 1),
            "bi": nn.Embedding(n_items, 1),
        }
    )
    for emb in (model["u"], model["i"]):
        nn.init.normal_(emb.weight, std=0.1)

    def predict(idx: torch.Tensor) -> torch.Tensor:
        u, i = users[idx], items[idx]
        return (model["u"](u) * model["i"](i)).sum(-1) + model["bu"](u)[:, 0] + model["bi"](i)[:, 0]

    def train(t: int) -> torch.Tensor:
        idx = tr[
            torch.randint(0, len(tr), (256,), generator=torch.Generator().manual_seed(seed + t))
        ]
        return ((predict(idx) - ratings[idx]) ** 2).mean()

    def val() -> float:
        with torch.no_grad():
            return float(((predict(va) - ratings[va]) ** 2).mean())

    return TrainingTask("matrix-factorization", model, train, val, 3e-2)


def diabetes_regression(seed: int) -> TrainingTask:
    """Regression on scikit-learn's diabetes data with a small MLP (MSE on standardized targets)."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=seed)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(10, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1)
    )
    Xt, yt, Xv, yv = map(torch.from_numpy, (X_tr, y_tr, X_va, y_va))

    def train(t: int) -> torch.Tensor:
        idx = torch.randint(0, len(yt), (32,), generator=torch.Generator().manual_seed(seed + t))
        return ((model(Xt[idx])[:, 0] - yt[idx]) ** 2).mean()

    def val() -> float:
        with torch.no_grad():
            return float(((model(Xv)[:, 0] - yv) ** 2).mean())

    return TrainingTask("diabetes-regression", model, train, val, 1e-3)
