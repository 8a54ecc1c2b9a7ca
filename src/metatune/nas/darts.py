"""DARTS (Liu et al., ICLR 2019) on a cell space, through :mod:`metatune.mlo`.

The supernet (:class:`~metatune.nas.networks.SuperNet`) mixes, on every edge, all the cell's
operations with the weights ``softmax(alpha[edge])``. Two levels: the network weights on the
training data (lower problem), the architecture parameters ``alpha`` on the validation data
(upper problem). ``order=1`` steps alpha by its gradient at the current weights;
``order=2`` adds DARTS's second-order term through mlo's ``darts`` (finite-difference)
hypergradient, with the scale set to the weights' learning rate. The derived cell keeps the
strongest operation other than "none" on every edge and is returned as a value of the same
cell, ready to be trained and scored like any other.

The known failure of long searches, skip connections taking over (DARTS+, Liang et al. 2019),
has two remedies here, off by default and applied the same way whatever the seed:
``warmup_steps`` (weights-only steps before alpha moves) and ``max_skips`` (stop the search,
DARTS+-style, once the derived cell would hold more skip connections than that, keeping the
last cell derived before).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metatune.nas.networks import CellLike, SuperNet, evaluate

__all__ = ["DartsResult", "darts_search", "derive"]


@dataclass
class DartsResult:
    """What a search found.

    ``value``: the derived cell (one operation name per edge of ``cell.edges``); ``alpha``:
    the final architecture parameters, shape ``(edges, ops)`` in ``cell.ops`` order;
    ``history``: one dict per check (``step``, mean ``train_loss`` and ``valid_loss`` since
    the previous check, the supernet's ``valid_accuracy``, the ``value`` derived then);
    ``stopped_early``: whether ``max_skips`` ended the search before ``steps``.
    """

    value: tuple[str, ...]
    alpha: Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    steps: int = 0

    def weights(self) -> Tensor:
        """``softmax(alpha)`` per edge: the mixing weights of the final supernet."""
        return F.softmax(self.alpha, dim=-1)


def derive(cell: CellLike, alpha: Tensor) -> tuple[str, ...]:
    """The discrete cell of ``alpha``: per edge, the operation with the largest weight among
    those other than "none" (all of them when the cell has only "none")."""
    ops = list(cell.ops)
    scores = alpha.detach().clone().float()
    if "none" in ops and len(ops) > 1:
        scores[:, ops.index("none")] = -float("inf")
    return tuple(ops[int(i)] for i in scores.argmax(dim=-1))


class _Alpha(nn.Module):
    def __init__(self, edges: int, ops: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(1e-3 * torch.randn(edges, ops))

    def forward(self) -> Tensor:
        return F.softmax(self.alpha, dim=-1)


class _Batches:
    """Seeded shuffled mini-batches of ``(X, y)``, re-iterable (a fresh order each pass)."""

    def __init__(self, data: tuple[Tensor, Tensor], batch_size: int, seed: int) -> None:
        self.X, self.y = data
        self.bs = min(batch_size, len(self.y))
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(len(self.y), generator=self.gen)
        for i in range(0, len(perm) - self.bs + 1, self.bs):
            idx = perm[i : i + self.bs]
            yield self.X[idx], self.y[idx]


def _problems():  # the mlo problem classes, built on first use (mlo imports are light, but lazy)
    from metatune.mlo import Problem

    class Weights(Problem):
        def training_step(self, batch: Any) -> Tensor:
            X, y = batch
            return F.cross_entropy(self(X, self.arch()), y)

    class Arch(Problem):
        def training_step(self, batch: Any) -> Tensor:
            X, y = batch
            return F.cross_entropy(self.weights(X, self.module()), y)

    return Weights, Arch


def _check_data(name: str, data: Any) -> tuple[Tensor, Tensor]:
    ok = (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, Tensor) for t in data)
        and len(data[0]) == len(data[1])
        and len(data[1]) > 0
    )
    if not ok:
        raise TypeError(f"{name} must be a non-empty pair of tensors (X, y) of equal length")
    return data[0], data[1]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )


def darts_search(
    cell: CellLike,
    train: tuple[Tensor, Tensor],
    valid: tuple[Tensor, Tensor],
    *,
    order: int = 1,
    steps: int = 800,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    alpha_lr: float = 3e-3,
    alpha_weight_decay: float = 1e-3,
    warmup_steps: int = 0,
    max_skips: int | None = None,
    check_every: int = 50,
    channels: int = 8,
    cells: int = 2,
    in_channels: int | None = None,
    classes: int | None = None,
) -> DartsResult:
    """Search ``cell`` by DARTS and return the derived cell as a value of it.

    Args:
        cell: the cell space (a :class:`metatune.nas.Cell` or anything with ``nodes``, ``ops``
            and ``edges``).
        train: ``(X, y)`` the weights are trained on, ``X`` of shape ``(N, C, H, W)``.
        valid: ``(X, y)`` alpha is trained on (and the supernet's accuracy measured on).
        order: 1 (alpha's gradient at the current weights) or 2 (plus the finite-difference
            second-order term).
        steps: search iterations (one weights step, then one alpha step once warmed up).
        seed: seeds the supernet's and alpha's initialization and both batch orders.
        batch_size, lr, momentum, weight_decay: the weights' SGD.
        alpha_lr, alpha_weight_decay: alpha's Adam (betas 0.5, 0.999, as DARTS).
        warmup_steps: weights-only steps before alpha's first step.
        max_skips: stop once the derived cell would have more than this many "skip_connect"
            edges, returning the cell derived at the check before (None: never stop early).
        check_every: steps between checks (history entries and the ``max_skips`` test).
        channels, cells: the supernet's width and number of stacked cells.
        in_channels, classes: default to ``X``'s channels and ``max(y) + 1``.
    """
    from metatune.mlo import Config, Engine, EngineConfig

    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    _check_int("steps", steps, 1)
    _check_int("seed", seed, 0)
    _check_int("batch_size", batch_size, 1)
    _check_int("warmup_steps", warmup_steps, 0)
    _check_int("check_every", check_every, 1)
    _check_int("channels", channels, 1)
    _check_int("cells", cells, 1)
    if max_skips is not None:
        _check_int("max_skips", max_skips, 0)
    for name, v in (("lr", lr), ("alpha_lr", alpha_lr)):
        _check_positive(name, v)
    for name, v in (
        ("momentum", momentum),
        ("weight_decay", weight_decay),
        ("alpha_weight_decay", alpha_weight_decay),
    ):
        _check_positive(name, v, allow_zero=True)
    ops = list(getattr(cell, "ops", ()))
    edges = list(getattr(cell, "edges", ()))
    if not ops or not edges:
        raise ValueError("cell must have operations and edges (a metatune.nas.Cell)")
    X_tr, y_tr = _check_data("train", train)
    X_va, y_va = _check_data("valid", valid)
    if X_tr.dim() != 4 or X_va.shape[1:] != X_tr.shape[1:]:
        raise ValueError(
            f"train and valid X must be (N, C, H, W) of one shape; got {tuple(X_tr.shape)} "
            f"and {tuple(X_va.shape)}"
        )
    in_channels = int(X_tr.shape[1]) if in_channels is None else in_channels
    classes = int(max(int(y_tr.max()), int(y_va.max())) + 1) if classes is None else classes

    torch.manual_seed(seed)
    net = SuperNet(cell, channels=channels, cells=cells, in_channels=in_channels, classes=classes)
    arch = _Alpha(len(edges), len(ops))
    Weights, Arch = _problems()
    config = Config(method="darts", options={"scale": float(lr)}, warmup_steps=warmup_steps)
    weights = Weights(
        "weights",
        net,
        torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay),
        data=_Batches((X_tr, y_tr), batch_size, seed),
        config=config,
    )
    arch_problem = Arch(
        "arch",
        arch,
        torch.optim.Adam(
            arch.parameters(), lr=alpha_lr, betas=(0.5, 0.999), weight_decay=alpha_weight_decay
        ),
        data=_Batches((X_va, y_va), batch_size, seed + 1),
    )
    deps: dict[str, dict[str, list[str]]] = {"u2l": {"arch": ["weights"]}}
    if order == 2:  # the validation loss reads the weights: the hop that brings the 2nd order
        deps["l2u"] = {"weights": ["arch"]}
    engine = Engine([weights, arch_problem], deps, EngineConfig(train_iters=0))

    history: list[dict[str, Any]] = []
    value = derive(cell, arch.alpha)
    stopped = False
    skip = "skip_connect"
    while engine.global_step < steps:
        engine.config.train_iters = min(steps, engine.global_step + check_every)
        seen = {n: len(v) for n, v in engine.losses.items()}
        engine.run()
        new_value = derive(cell, arch.alpha)
        losses = {n: [loss for _, loss in v[seen[n] :]] for n, v in engine.losses.items()}
        with torch.no_grad():
            acc = evaluate(net, (X_va, y_va), arch())
        history.append(
            {
                "step": engine.global_step,
                "train_loss": _mean(losses["weights"]),
                "valid_loss": _mean(losses["arch"]),
                "valid_accuracy": acc,
                "value": list(new_value),
            }
        )
        if max_skips is not None and new_value.count(skip) > max_skips:
            stopped = True
            break
        value = new_value
    return DartsResult(
        value=value,
        alpha=arch.alpha.detach().clone(),
        history=history,
        stopped_early=stopped,
        steps=engine.global_step,
    )


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
