"""Data reweighting (Meta-Weight-Net style) on digits with label noise and class imbalance.

Inner problem: an MLP classifier trained on noisy, imbalanced data with per-example weights
``weight_net(loss_i)``. Outer problem: the weight net, trained on a small clean meta set through
the classifier's one-step unrolled update. Compared with plain training on the same noisy data.

Run: python examples/mlo/reweighting.py
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from metatune.mlo import Config, Engine, EngineConfig, Problem


def make_data(seed: int, noise: float = 0.4, imbalance: float = 0.2, meta_per_class: int = 10):
    """Noisy (symmetric label noise) and imbalanced train split, a small clean meta set, test."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    meta_idx = np.concatenate(
        [rng.choice(np.flatnonzero(y_tr == c), meta_per_class, replace=False) for c in range(10)]
    )
    rest = np.setdiff1d(np.arange(len(y_tr)), meta_idx)
    X_meta, y_meta = X_tr[meta_idx], y_tr[meta_idx]
    X_tr, y_tr = X_tr[rest], y_tr[rest]
    # class imbalance: class c keeps a fraction imbalance ** (c / 9) of its examples
    keep = np.concatenate(
        [
            rng.permutation(np.flatnonzero(y_tr == c))[
                : max(5, int(round((y_tr == c).sum() * imbalance ** (c / 9))))
            ]
            for c in range(10)
        ]
    )
    X_tr, y_tr = X_tr[keep], y_tr[keep].copy()
    flip = rng.random(len(y_tr)) < noise
    y_tr[flip] = rng.integers(0, 10, flip.sum())

    def t(a, b):
        return torch.tensor(a), torch.tensor(b, dtype=torch.long)

    return t(X_tr, y_tr), t(X_meta, y_meta), t(X_te, y_te)


class Batches:
    """Endless shuffled minibatches drawn from a seeded generator (re-iterable)."""

    def __init__(self, X, y, batch_size: int, seed: int) -> None:
        self.X, self.y, self.bs = X, y, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        perm = torch.randperm(len(self.y), generator=self.gen)
        for i in range(0, len(perm) - self.bs + 1, self.bs):
            idx = perm[i : i + self.bs]
            yield self.X[idx], self.y[idx]


def classifier() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


class WeightNet(nn.Module):
    """Maps a per-example loss to a weight in (0, 1)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, losses):
        return torch.sigmoid(self.net(losses.unsqueeze(-1))).squeeze(-1)


class Classifier(Problem):
    def training_step(self, batch):
        X, y = batch
        losses = F.cross_entropy(self(X), y, reduction="none")
        weights = self.reweight(losses.detach())
        return (weights * losses).sum() / weights.detach().sum().clamp_min(1e-8)


class Reweight(Problem):
    def training_step(self, batch):
        X, y = batch
        return F.cross_entropy(self.classifier(X), y)


def accuracy(model: nn.Module, X, y) -> float:
    with torch.no_grad():
        return float((model(X).argmax(-1) == y).float().mean())


def train_plain(data, seed: int, iters: int, lr: float) -> float:
    (X_tr, y_tr), _, (X_te, y_te) = data
    torch.manual_seed(seed)
    model = classifier()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    batches = Batches(X_tr, y_tr, 64, seed)
    it = iter(batches)
    for _ in range(iters):
        try:
            X, y = next(it)
        except StopIteration:
            it = iter(batches)
            X, y = next(it)
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    return accuracy(model, X_te, y_te)


def train_reweighted(data, seed: int, iters: int, lr: float, method: str = "unrolled") -> float:
    (X_tr, y_tr), (X_meta, y_meta), (X_te, y_te) = data
    torch.manual_seed(seed)
    model, wnet = classifier(), WeightNet()
    inner = Classifier(
        "classifier",
        model,
        torch.optim.SGD(model.parameters(), lr=lr),
        data=Batches(X_tr, y_tr, 64, seed),
        config=Config(method=method, unroll_steps=1),
    )
    outer = Reweight(
        "reweight",
        wnet,
        torch.optim.Adam(wnet.parameters(), lr=1e-3),
        data=Batches(X_meta, y_meta, 50, seed + 1),
    )
    engine = Engine(
        [inner, outer],
        {"u2l": {"reweight": ["classifier"]}, "l2u": {"classifier": ["reweight"]}},
        EngineConfig(train_iters=iters),
    )
    engine.run()
    return accuracy(model, X_te, y_te)


def main(seeds=(0, 1, 2), iters: int = 1500, lr: float = 0.1, verbose: bool = True):
    rows = []
    for seed in seeds:
        data = make_data(seed)
        plain = train_plain(data, seed, iters, lr)
        reweighted = train_reweighted(data, seed, iters, lr)
        rows.append((seed, plain, reweighted))
        if verbose:
            print(f"seed {seed}: plain {plain:.4f}  reweighted {reweighted:.4f}")
    plain_mean = float(np.mean([r[1] for r in rows]))
    rw_mean = float(np.mean([r[2] for r in rows]))
    if verbose:
        print(f"mean clean test accuracy: plain {plain_mean:.4f}  reweighted {rw_mean:.4f}")
    return {"plain": plain_mean, "reweighted": rw_mean, "rows": rows}


if __name__ == "__main__":
    main()
