"""`TaskGroup`: R small training tasks of one architecture, stored as stacked tensors.

Every replica has its own data (same shapes), its own initial weights and its own stream of
minibatch indices; what they share is the module structure, the loss and the batch size, which is
what lets `torch.func.vmap` train them as one batched computation. `training_task(r)` gives the
same replica as an ordinary `TrainingTask` (a module of its own, the same data, the same batches),
so the one-model-per-process engine can run it and the two engines can be compared.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from metatune.lhopt.tasks import TrainingTask

__all__ = ["LOSSES", "TaskGroup", "batch_indices", "INDEX_CHUNK"]

INDEX_CHUNK = 64  # minibatch indices are drawn this many steps at a time, per replica


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(out.squeeze(-1) if y.dim() == 1 else out, y)


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


# loss name -> (model output, targets) -> scalar; the same function serves both engines
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": _mse,
    "ce": _cross_entropy,
}


def batch_indices(seed: int, n: int, batch: int, chunk: int) -> np.ndarray:
    """Minibatch indices for steps chunk*INDEX_CHUNK+1 .. (chunk+1)*INDEX_CHUNK of one replica:
    a pure function of (seed, chunk), so either engine can draw them in any order."""
    rng = np.random.default_rng([int(seed), int(chunk), 0x5EED])
    return rng.integers(0, n, size=(INDEX_CHUNK, batch))


@dataclass
class TaskGroup:
    """R tasks of one architecture. Tensors are stacked on a leading replica axis.

    Args:
        name: the family name (shared by every replica).
        modules: one initialized module per replica (same structure; the first is the template).
        x_train, y_train: [R, N, ...] and [R, N] training data.
        x_val, y_val: [R, Nv, ...] and [R, Nv] validation data (the whole set is evaluated).
        loss: a key of `LOSSES`.
        batch_size: minibatch size of every training step.
        index_seeds: per replica, the seed of its minibatch index stream.
        default_lr: per replica, the learning rate a user would start from.
        labels: per replica, a short description (for tables and logs).
    """

    name: str
    modules: list[nn.Module]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    loss: str
    batch_size: int
    index_seeds: list[int]
    default_lr: list[float]
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        r = len(self.modules)
        if r < 1:
            raise ValueError("a TaskGroup needs at least one replica (modules is empty)")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        sizes = {
            "x_train": self.x_train.shape[0],
            "y_train": self.y_train.shape[0],
            "x_val": self.x_val.shape[0],
            "y_val": self.y_val.shape[0],
            "index_seeds": len(self.index_seeds),
            "default_lr": len(self.default_lr),
        }
        bad = {k: v for k, v in sizes.items() if v != r}
        if bad:
            raise ValueError(f"every per-replica field needs {r} entries (one per module): {bad}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        names = [[n for n, _ in m.named_parameters()] for m in self.modules]
        if any(n != names[0] for n in names):
            raise ValueError("every module of a TaskGroup must have the same parameters")
        if any(len(list(m.buffers())) for m in self.modules):
            raise ValueError("modules with buffers (e.g. BatchNorm) are not supported")

    @property
    def size(self) -> int:
        return len(self.modules)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[1])

    def stacked_params(self) -> dict[str, torch.Tensor]:
        """The initial parameters, name -> [R, ...] (fresh tensors, not views of the modules)."""
        per = [dict(m.named_parameters()) for m in self.modules]
        return {n: torch.stack([p[n].detach() for p in per]).clone() for n in per[0]}

    def template(self) -> nn.Module:
        """A module of this architecture to run with `functional_call` (its weights unused)."""
        return self.modules[0]

    def subset(self, replicas: Sequence[int]) -> TaskGroup:
        """The group restricted to some replicas (same order as given)."""
        idx = list(replicas)
        return TaskGroup(
            self.name,
            [self.modules[i] for i in idx],
            self.x_train[idx],
            self.y_train[idx],
            self.x_val[idx],
            self.y_val[idx],
            self.loss,
            self.batch_size,
            [self.index_seeds[i] for i in idx],
            [self.default_lr[i] for i in idx],
            [self.labels[i] for i in idx] if self.labels else [],
        )

    def training_task(self, replica: int) -> TrainingTask:
        """Replica `replica` as an ordinary task with a module of its own (the unbatched engine)."""
        model = copy.deepcopy(self.modules[replica])
        xt, yt = self.x_train[replica], self.y_train[replica]
        xv, yv = self.x_val[replica], self.y_val[replica]
        loss_fn = LOSSES[self.loss]
        seed, n, b = self.index_seeds[replica], self.n_train, self.batch_size
        cache: dict[int, torch.Tensor] = {}

        def train(t: int) -> torch.Tensor:
            chunk, row = divmod(t - 1, INDEX_CHUNK)
            if chunk not in cache:
                cache.clear()
                cache[chunk] = torch.from_numpy(batch_indices(seed, n, b, chunk))
            idx = cache[chunk][row]
            return loss_fn(model(xt[idx]), yt[idx])

        def val() -> float:
            with torch.no_grad():
                v = float(loss_fn(model(xv), yv))
            return v if np.isfinite(v) else float("inf")

        return TrainingTask(self.name, model, train, val, float(self.default_lr[replica]))
