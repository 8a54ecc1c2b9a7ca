"""Small CNNs for 8x8 images built from a NAS-Bench-201-shaped cell, and their training protocol.

A network is ``stem conv -> `cells` stacked cells -> global average pool -> linear``. Every
edge of a cell carries one operation (the discrete network) or a mixture of all the cell's
operations weighted by an architecture distribution (the DARTS supernet, :class:`SuperNet`).
The two share :class:`CellBlock`, so a supernet given one-hot weights computes exactly the
discrete network holding the same operation weights.

The discrete network evaluates only *live* edges (not "none", on a path from the input to the
output), so cells that differ only in dead edges compute the same function, as the cell's
canonical form assumes.

Operations are an extension point: ``OP_MODULES`` maps a name to ``factory(channels) ->
nn.Module`` (a module that keeps the shape ``(N, channels, H, W)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from metatune._registry import Registry

__all__ = [
    "OP_MODULES",
    "CellBlock",
    "CellLike",
    "Network",
    "SuperNet",
    "TrainingProtocol",
    "digits_splits",
    "evaluate",
    "live_edges",
    "train_and_score",
    "train_network",
]


class CellLike(Protocol):
    """What the builders use of a cell space: its node count, operation names and edge list."""

    nodes: int
    ops: Sequence[str]
    edges: Sequence[tuple[int, int]]


# ---------------------------------------------------------------------------- operations
class Zero(nn.Module):
    """The "none" operation: zeros of the input's shape (cuts the edge)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Module):
    """ReLU -> Conv(k x k, same padding, no bias) -> BatchNorm, as NAS-Bench-201's conv ops."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class AvgPool3x3(nn.Module):
    """3x3 average pooling, stride 1, padding not counted (as NAS-Bench-201's avg_pool_3x3).

    Computed as a fixed depthwise convolution divided by the number of in-image neighbours:
    the same numbers as ``nn.AvgPool2d(3, 1, 1, count_include_pad=False)``, faster on CPU for
    small feature maps.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("kernel", torch.ones(channels, 1, 3, 3), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        ones = x.new_ones(1, 1, x.shape[2], x.shape[3])
        count = nn.functional.conv2d(ones, self.kernel[:1], padding=1)
        return nn.functional.conv2d(x, self.kernel, padding=1, groups=self.channels) / count


def _check_factory(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(
            f"an operation must be a callable factory(channels) -> nn.Module, got {obj!r}"
        )


OP_MODULES: Registry[Callable[[int], nn.Module]] = Registry(
    "operation module", check=_check_factory
)
OP_MODULES.register("none", lambda c: Zero())
OP_MODULES.register("skip_connect", lambda c: nn.Identity())
OP_MODULES.register("nor_conv_1x1", lambda c: ReLUConvBN(c, 1))
OP_MODULES.register("nor_conv_3x3", lambda c: ReLUConvBN(c, 3))
OP_MODULES.register("avg_pool_3x3", lambda c: AvgPool3x3(c))
OP_MODULES.register("max_pool_3x3", lambda c: nn.MaxPool2d(3, stride=1, padding=1))


def _value_tuple(cell: CellLike, value: Sequence[str]) -> tuple[str, ...]:
    """``value`` as a tuple, checked against the cell (one known op per edge)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"value must be a list/tuple of operation names, got {value!r}")
    ops = tuple(value)
    if len(ops) != len(cell.edges):
        raise ValueError(
            f"value has {len(ops)} operations; the cell has {len(cell.edges)} edges {list(cell.edges)}"
        )
    for op in ops:
        if op not in cell.ops:
            raise ValueError(
                f"unknown operation {op!r} in value; the cell's operations: {list(cell.ops)}"
            )
    return ops


def live_edges(cell: CellLike, value: Sequence[str]) -> list[bool]:
    """Per edge (in ``cell.edges`` order): not "none" and on a path from node 0 to the output."""
    ops = _value_tuple(cell, value)
    n = cell.nodes
    on = [op != "none" for op in ops]
    reach_in = [False] * n
    reach_in[0] = True
    for j in range(1, n):  # edges go i -> j with i < j: one pass in node order suffices
        reach_in[j] = any(on[k] and reach_in[i] for k, (i, jj) in enumerate(cell.edges) if jj == j)
    reach_out = [False] * n
    reach_out[n - 1] = True
    for i in range(n - 2, -1, -1):
        reach_out[i] = any(
            on[k] and reach_out[j] for k, (ii, j) in enumerate(cell.edges) if ii == i
        )
    return [on[k] and reach_in[i] and reach_out[j] for k, (i, j) in enumerate(cell.edges)]


# ---------------------------------------------------------------------------- cells
class CellBlock(nn.Module):
    """One cell: every edge holds its candidate operations (one for a discrete cell).

    ``forward(x, weights)``: with ``weights`` None, every edge applies its only candidate
    (edges built as ``None`` are skipped: dead edges); otherwise ``weights[e]`` (a row per edge,
    one entry per candidate) mixes the candidates of edge ``e``.
    """

    def __init__(
        self,
        cell: CellLike,
        candidates: Sequence[Sequence[str] | None],
        channels: int,
    ) -> None:
        super().__init__()
        self.nodes = cell.nodes
        self.edge_list = list(cell.edges)
        self.candidates = [None if c is None else tuple(c) for c in candidates]
        self.edges = nn.ModuleList(
            nn.ModuleList() if c is None else nn.ModuleList(OP_MODULES.get(o)(channels) for o in c)
            for c in self.candidates
        )

    def forward(self, x: Tensor, weights: Tensor | None = None) -> Tensor:
        states: list[Tensor | None] = [x] + [None] * (self.nodes - 1)
        for k, (i, j) in enumerate(self.edge_list):
            src = states[i]
            ops = self.edges[k]
            if src is None or len(ops) == 0:
                continue
            if weights is None:
                out = ops[0](src)
            else:
                w = weights[k]
                out = sum(w[m] * op(src) for m, op in enumerate(ops))
            states[j] = out if states[j] is None else states[j] + out
        last = states[-1]
        return x.mul(0.0) if last is None else last


class _Backbone(nn.Module):
    def __init__(self, blocks: list[CellBlock], channels: int, in_channels: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.cells = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, classes)

    def _forward(self, x: Tensor, weights: Tensor | None) -> Tensor:
        h = self.stem(x)
        for block in self.cells:
            h = block(h, weights)
        return self.head(h.mean(dim=(2, 3)))


class Network(_Backbone):
    """The discrete network of one cell value (the same cell repeated ``cells`` times)."""

    def __init__(
        self,
        cell: CellLike,
        value: Sequence[str],
        *,
        channels: int = 8,
        cells: int = 2,
        in_channels: int = 1,
        classes: int = 10,
    ) -> None:
        ops = _value_tuple(cell, value)
        live = live_edges(cell, ops)
        cand = [[op] if alive else None for op, alive in zip(ops, live, strict=True)]
        super().__init__(
            [CellBlock(cell, cand, channels) for _ in range(cells)], channels, in_channels, classes
        )
        self.value = ops

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x, None)


class SuperNet(_Backbone):
    """The DARTS supernet: every edge of every cell mixes all the cell's operations.

    ``forward(x, weights)`` takes one ``(edges, ops)`` weight matrix shared by all stacked cells
    (rows: ``cell.edges``; columns: ``cell.ops``), e.g. ``softmax(alpha, -1)``.
    """

    def __init__(
        self,
        cell: CellLike,
        *,
        channels: int = 8,
        cells: int = 2,
        in_channels: int = 1,
        classes: int = 10,
    ) -> None:
        cand = [list(cell.ops) for _ in cell.edges]
        super().__init__(
            [CellBlock(cell, cand, channels) for _ in range(cells)], channels, in_channels, classes
        )
        self.cell_ops = tuple(cell.ops)
        self.n_edges = len(cell.edges)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        if weights.shape != (self.n_edges, len(self.cell_ops)):
            raise ValueError(
                f"weights must have shape ({self.n_edges}, {len(self.cell_ops)}) "
                f"(edges x operations), got {tuple(weights.shape)}"
            )
        return self._forward(x, weights)

    def discrete_state(self, value: Sequence[str], network: Network) -> dict[str, Tensor]:
        """A state dict for ``network`` (built from ``value``) holding this supernet's weights of
        the chosen operations, so the two compute the same function under one-hot weights."""
        target = network.state_dict()
        src = self.state_dict()
        out: dict[str, Tensor] = {}
        for key in target:
            parts = key.split(".")
            if parts[0] == "cells":  # cells.<c>.edges.<e>.0.<rest>  ->  candidate index of op
                e = int(parts[3])
                parts[4] = str(self.cell_ops.index(value[e]))
            out[key] = src[".".join(parts)].clone()
        return out


# ---------------------------------------------------------------------------- protocol
@dataclass(frozen=True)
class TrainingProtocol:
    """The fixed protocol every architecture of a table is trained with.

    SGD (Nesterov momentum 0.9, weight decay 5e-4), learning rate ``lr`` on a cosine schedule
    over ``epochs`` epochs (stepped per batch), mini-batches of ``batch_size`` drawn in a
    seeded random order, cross-entropy loss; networks of ``channels`` channels and ``cells``
    stacked cells. The data split is :func:`digits_splits` with ``split_seed``; the weights'
    initialization and the batch order follow ``seed``. Accuracy on the validation and test
    splits is recorded after every epoch (BatchNorm in eval mode).
    """

    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    channels: int = 8
    cells: int = 1
    seed: int = 0
    split_seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def digits_splits(
    seed: int = 0,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """scikit-learn's 8x8 digits (bundled, offline) as ``(N, 1, 8, 8)`` floats in [0, 1], split
    stratified into train / validation / test = 60% / 20% / 20% with ``seed``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_rest, X_te, y_rest, y_te = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y
    )
    X_tr, X_va, y_tr, y_va = train_test_split(
        X_rest, y_rest, test_size=0.25, random_state=seed, stratify=y_rest
    )

    def pack(a: Any, b: Any) -> tuple[Tensor, Tensor]:
        return (
            torch.tensor(a / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8),
            torch.tensor(b, dtype=torch.long),
        )

    return pack(X_tr, y_tr), pack(X_va, y_va), pack(X_te, y_te)


@torch.no_grad()
def evaluate(model: nn.Module, data: tuple[Tensor, Tensor], *args: Any) -> float:
    """Accuracy of ``model(X, *args)`` on ``data`` in eval mode (the mode is restored)."""
    was = model.training
    model.eval()
    try:
        X, y = data
        return float((model(X, *args).argmax(-1) == y).float().mean())
    finally:
        model.train(was)


def train_network(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    protocol: TrainingProtocol,
    *,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """Train ``model`` by ``protocol`` (its seed orders the batches); ``on_epoch(epoch, model)``
    runs after every epoch (1-based), e.g. to record validation accuracy."""
    X, y = train
    n = len(y)
    bs = protocol.batch_size
    steps_per_epoch = -(-n // bs)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=protocol.lr,
        momentum=protocol.momentum,
        nesterov=True,
        weight_decay=protocol.weight_decay,
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=protocol.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(protocol.seed)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(1, protocol.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model


def train_and_score(
    cell: CellLike,
    value: Sequence[str],
    protocol: TrainingProtocol,
    splits: tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, Tensor]],
) -> dict[str, Any]:
    """Train the network of ``value`` by ``protocol`` on ``splits`` (train, validation, test)
    and return its table record: validation and test accuracy after every epoch, the
    cumulative training seconds at every epoch (evaluation excluded) and the parameter count."""
    import time

    train, valid, test = splits
    torch.manual_seed(protocol.seed)
    net = Network(cell, value, channels=protocol.channels, cells=protocol.cells)
    valid_acc: list[float] = []
    test_acc: list[float] = []
    seconds: list[float] = []
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def on_epoch(epoch: int, model: nn.Module) -> None:
        t0 = time.perf_counter()
        seconds.append(t0 - clock["start"] - clock["eval"])
        valid_acc.append(evaluate(model, valid))
        test_acc.append(evaluate(model, test))
        clock["eval"] += time.perf_counter() - t0

    train_network(net, train, protocol, on_epoch=on_epoch)
    return {
        "value": list(value),
        "params": int(sum(p.numel() for p in net.parameters())),
        "valid_accuracy": [round(a, 6) for a in valid_acc],
        "test_accuracy": [round(a, 6) for a in test_acc],
        "train_seconds": [round(s, 4) for s in seconds],
    }
