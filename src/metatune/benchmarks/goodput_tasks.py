"""Tasks of the goodput time-to-target benchmark: a teacher-student classification problem with
enough data that no run of the benchmark sees an example more than about twice, so the
validation loss measures training progress rather than memorisation, and models of three
shapes (cheap steps whose best batch is the largest; a heavier Adam model; a wide model whose
per-example compute makes mid-sized batches best on one core).

The data is generated, not downloaded: a fixed random two-layer network (the teacher) gives
every input a distribution over classes and a label is drawn from it, so the validation loss
has a floor (the teacher's entropy) well above zero and keeps improving with training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TIME_TO_TARGET_TASKS", "TimeToTargetTask", "teacher_classification"]


def teacher_classification(
    n_train: int = 300_000,
    n_val: int = 20_000,
    dim: int = 32,
    classes: int = 10,
    seed: int = 0,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor], float]:
    """(x, y) for training and validation, and the teacher's mean entropy over the validation
    inputs (the lowest expected validation loss any model can reach)."""
    for name, value in (("n_train", n_train), ("n_val", n_val), ("dim", dim)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value!r}")
    if classes < 2:
        raise ValueError(f"classes must be at least 2, got {classes!r}")
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(dim, 64, generator=g) / dim**0.5
    out = torch.randn(64, classes, generator=g) / 8.0
    x = torch.randn(n_train + n_val, dim, generator=g)
    probs = torch.softmax(12.0 * torch.tanh(x @ hidden) @ out, dim=1)
    y = torch.multinomial(probs, 1, generator=g).squeeze(1)
    p_val = probs[n_train:]
    floor = float(-(p_val * torch.log(p_val.clamp_min(1e-12))).sum(1).mean())
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:]), floor


def _mlp(dim: int, width: int, layers: int, classes: int = 10) -> nn.Module:
    mods: list[nn.Module] = [nn.Linear(dim, width), nn.ReLU()]
    for _ in range(layers - 1):
        mods += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(width, classes))


@dataclass(frozen=True)
class TimeToTargetTask:
    """A model and optimizer for the teacher data, the learning-rate rule the controller uses
    for it, and the length of its cosine schedule in M0-equivalent steps."""

    name: str
    make_model: Callable[[], nn.Module]
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    lr_rule: str
    schedule_steps: int
    about: str


TIME_TO_TARGET_TASKS: dict[str, TimeToTargetTask] = {
    t.name: t
    for t in (
        TimeToTargetTask(
            "mlp-sgd",
            lambda: _mlp(32, 256, 1),
            lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
            "adascale",
            40_000,
            "MLP 32-256-10, SGD lr 0.1 at M0, AdaScale rule",
        ),
        TimeToTargetTask(
            "mlp-adam",
            lambda: _mlp(32, 256, 2),
            lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
            "adam-sqrt",
            40_000,
            "MLP 32-256-256-10, Adam lr 1e-3 at M0, Adam square-root rule",
        ),
        TimeToTargetTask(
            "wide-mlp-sgd",
            lambda: _mlp(32, 512, 2),
            lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
            "adascale",
            20_000,
            "MLP 32-512-512-10, SGD lr 0.1 at M0, AdaScale rule",
        ),
    )
}
