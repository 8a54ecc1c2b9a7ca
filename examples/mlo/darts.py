"""DARTS architecture search on a small cell search space, on digits (metatune.mlo).

Inner problem: the network weights on the training split, every edge a softmax(alpha)-weighted
mixture of candidate operations. Outer problem: the architecture parameters alpha on the
validation split, with DARTS's finite-difference hypergradient (scale = the inner lr, as in the
paper's second-order rule). The derived cell (argmax per edge, "zero" excluded) is retrained
from scratch and evaluated on the test split.

Run: python examples/mlo/darts.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from metatune.mlo import Config, Engine, EngineConfig, Problem

OPS = ("linear_relu", "linear_tanh", "skip", "zero")
EDGES = 3  # node1 <- h0 ; node2 <- h0 ; node2 <- node1
WIDTH = 32


def make_op(name: str) -> nn.Module:
    if name == "linear_relu":
        return nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU())
    if name == "linear_tanh":
        return nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.Tanh())
    if name == "skip":
        return nn.Identity()
    if name == "zero":
        return _Zero()
    raise ValueError(f"unknown op {name!r}; known: {OPS}")


class _Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


class Network(nn.Module):
    """stem -> a 2-node cell (edges given by ``ops`` or mixed over OPS) -> classifier."""

    def __init__(self, ops: list[str] | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(64, WIDTH), nn.ReLU())
        if ops is None:  # search: every edge holds all candidates
            self.edges = nn.ModuleList(nn.ModuleList(make_op(o) for o in OPS) for _ in range(EDGES))
        else:
            self.edges = nn.ModuleList(nn.ModuleList([make_op(o)]) for o in ops)
        self.head = nn.Linear(WIDTH, 10)

    def _edge(self, i: int, x, weights):
        ops = self.edges[i]
        if weights is None:
            return ops[0](x)
        return sum(w * op(x) for w, op in zip(weights[i], ops, strict=True))

    def forward(self, x, weights=None):
        h0 = self.stem(x)
        n1 = self._edge(0, h0, weights)
        n2 = self._edge(1, h0, weights) + self._edge(2, n1, weights)
        return self.head(n2)


class Architecture(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(1e-3 * torch.randn(EDGES, len(OPS)))

    def forward(self):
        return F.softmax(self.alpha, dim=-1)

    def derive(self) -> list[str]:
        scores = self.alpha.detach().clone()
        scores[:, OPS.index("zero")] = -float("inf")
        return [OPS[int(i)] for i in scores.argmax(-1)]


class Weights(Problem):
    def training_step(self, batch):
        X, y = batch
        return F.cross_entropy(self(X, self.arch()), y)


class Arch(Problem):
    def training_step(self, batch):
        X, y = batch
        return F.cross_entropy(self.weights(X, self.module()), y)


class Batches:
    def __init__(self, X, y, batch_size: int, seed: int) -> None:
        self.X, self.y, self.bs = X, y, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        perm = torch.randperm(len(self.y), generator=self.gen)
        for i in range(0, len(perm) - self.bs + 1, self.bs):
            idx = perm[i : i + self.bs]
            yield self.X[idx], self.y[idx]


def splits(seed: int):
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    X_tr, X_va, y_tr, y_va = train_test_split(
        X_tr, y_tr, test_size=0.5, random_state=seed, stratify=y_tr
    )
    return (X_tr, y_tr), (X_va, y_va), (X_te, y_te)


def retrain(ops: list[str], train, test, seed: int, iters: int, lr: float) -> float:
    torch.manual_seed(seed)
    net = Network(ops)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    batches = Batches(*train, 64, seed)
    it = iter(batches)
    for _ in range(iters):
        try:
            X, y = next(it)
        except StopIteration:
            it = iter(batches)
            X, y = next(it)
        opt.zero_grad()
        F.cross_entropy(net(X), y).backward()
        opt.step()
    with torch.no_grad():
        return float((net(test[0]).argmax(-1) == test[1]).float().mean())


def main(seed: int = 0, search_iters: int = 600, retrain_iters: int = 600, verbose: bool = True):
    train, val, test = splits(seed)
    torch.manual_seed(seed)
    net, arch = Network(), Architecture()
    lr = 0.05
    weights = Weights(
        "weights",
        net,
        torch.optim.SGD(net.parameters(), lr=lr),
        data=Batches(*train, 64, seed),
        config=Config(method="darts", options={"scale": lr}),
    )
    arch_problem = Arch(
        "arch",
        arch,
        torch.optim.Adam(arch.parameters(), lr=3e-3, betas=(0.5, 0.999)),
        data=Batches(*val, 64, seed + 1),
    )
    engine = Engine(
        [weights, arch_problem],
        {"u2l": {"arch": ["weights"]}, "l2u": {"weights": ["arch"]}},
        EngineConfig(train_iters=search_iters),
    )
    engine.run()
    ops = arch.derive()
    acc = retrain(ops, train, test, seed, retrain_iters, lr)
    if verbose:
        print("alpha (softmax):")
        for i, row in enumerate(arch().detach()):
            print(
                f"  edge {i}: "
                + "  ".join(f"{o}={float(p):.3f}" for o, p in zip(OPS, row, strict=True))
            )
        print("derived cell:", ops)
        print(f"test accuracy of the derived cell retrained: {acc:.4f}")
    return {"ops": ops, "test_accuracy": acc}


if __name__ == "__main__":
    main()
