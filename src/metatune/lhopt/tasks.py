"""The meta-training task distribution: small training problems that run in seconds on a CPU.

Each task family builds, from a seed, a model, its data and a validation loss; a run is
`TrainingTask.run(optimizer_factory, steps, on_step)`. Families: noisy quadratics, MLPs on
bundled tabular datasets, a small CNN on digits, a tiny character-level LM on standard-library
source, and a small RNN on an algorithmic task (majority vote over a bit sequence); opt-in, not
in the default mix the shipped policy was trained on: MLP regression on scikit-learn's synthetic
generators (`mlp-regression`).
Families are entries of the `TASK_FAMILIES` registry (name -> ``seed -> TrainingTask``).
Held-out tasks for evaluation live in `metatune.benchmarks.lhopt_tasks`, never here.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metatune._registry import Registry

__all__ = ["TrainingTask", "TASK_FAMILIES", "DEFAULT_FAMILIES", "sample_task"]


@dataclass
class TrainingTask:
    """A model with a training-batch sampler and a validation loss."""

    name: str
    model: nn.Module
    train_loss: Callable[[int], torch.Tensor]  # step -> loss on that step's batch
    val_loss: Callable[[], float]
    default_lr: float

    def run(
        self,
        optimizer: torch.optim.Optimizer,
        steps: int,
        on_step: Callable[[int, float, float | None], None] | None = None,
        val_every: int = 10,
    ) -> list[tuple[int, float]]:
        """Train for `steps`; returns (step, validation loss) every `val_every` steps and at the end.

        `on_step(step, loss, val_loss_or_None)` runs after every optimizer step (the controller's
        hook). A non-finite loss stops nothing: the policy has to learn to recover.
        """
        curve = []
        for t in range(1, steps + 1):
            loss = self.train_loss(t)
            optimizer.zero_grad()
            if torch.isfinite(loss):
                loss.backward()
                optimizer.step()
            val = self.val_loss() if (t % val_every == 0 or t == steps) else None
            if val is not None:
                curve.append((t, val))
            if on_step is not None:
                on_step(t, float(loss.detach()), val)
        return curve


def _eval(fn: Callable[[], torch.Tensor]) -> Callable[[], float]:
    def wrapped() -> float:
        with torch.no_grad():
            v = float(fn())
        return v if np.isfinite(v) else float("inf")

    return wrapped


def _quadratic(seed: int) -> TrainingTask:
    g = torch.Generator().manual_seed(seed)
    d = int(torch.randint(10, 100, (1,), generator=g))
    curv = 10 ** (torch.rand(d, generator=g) * 4 - 2)  # condition number up to 1e4
    center = torch.randn(d, generator=g)
    noise = float(10 ** (torch.rand(1, generator=g) * 2 - 2))
    w = nn.Parameter(torch.zeros(d))
    model = nn.Module()
    model.w = w

    def train(t: int) -> torch.Tensor:
        gt = torch.Generator().manual_seed(seed * 100_003 + t)
        jitter = 1 + noise * torch.randn(d, generator=gt)
        return 0.5 * (curv * jitter * (w - center) ** 2).sum() / d

    return TrainingTask(
        "quadratic", model, train, _eval(lambda: 0.5 * (curv * (w - center) ** 2).sum() / d), 0.1
    )


def _classification(
    name: str,
    model: nn.Module,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    stride: int,
    default_lr: float,
) -> TrainingTask:
    """A classifier trained on batches of 64 drawn per step, judged by validation cross-entropy."""
    X_tr, y_tr, X_va, y_va = data
    Xt, yt = torch.from_numpy(X_tr), torch.from_numpy(y_tr).long()
    Xv, yv = torch.from_numpy(X_va), torch.from_numpy(y_va).long()

    def train(t: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed + stride * t)
        idx = torch.randint(0, len(yt), (64,), generator=g)
        return nn.functional.cross_entropy(model(Xt[idx]), yt[idx])

    val = _eval(lambda: nn.functional.cross_entropy(model(Xv), yv))
    return TrainingTask(name, model, train, val, default_lr)


def _tabular(seed: int) -> TrainingTask:
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    loaders = [load_breast_cancer, load_wine, load_digits]
    X, y = loaders[seed % len(loaders)](return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    torch.manual_seed(seed)
    act = [nn.ReLU, nn.Tanh, nn.GELU][seed % 3]
    width = [32, 64, 128][(seed // 3) % 3]
    model = nn.Sequential(
        nn.Linear(X.shape[1], width),
        act(),
        nn.Linear(width, width),
        act(),
        nn.Linear(width, int(y.max()) + 1),
    )
    return _classification(
        "mlp-tabular", model, (X_tr, y_tr, X_va, y_va), seed=seed, stride=7, default_lr=1e-3
    )


def _cnn_digits(seed: int) -> TrainingTask:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 16, 10),
    )
    return _classification(
        "cnn-digits", model, (X_tr, y_tr, X_va, y_va), seed=seed, stride=11, default_lr=3e-3
    )


def _stdlib_chars(limit: int = 60_000) -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    text = ""
    for name in ("textwrap.py", "string.py", "shlex.py", "fnmatch.py", "glob.py"):
        path = root / name
        if path.exists():
            text += path.read_text(encoding="utf-8", errors="replace")
    return text[:limit]


def _char_lm(seed: int) -> TrainingTask:
    text = _stdlib_chars()
    vocab = sorted(set(text))
    data = torch.tensor([vocab.index(c) for c in text], dtype=torch.long)
    cut = int(len(data) * 0.9)
    train_data, val_data = data[:cut], data[cut:]
    torch.manual_seed(seed)

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(len(vocab), 24)
            self.rnn = nn.GRU(24, 48, batch_first=True)
            self.out = nn.Linear(48, len(vocab))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.rnn(self.emb(x))[0])

    model = LM()
    ctx = 32

    def batch(src: torch.Tensor, g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, len(src) - ctx - 1, (n,), generator=g)
        chunk = src[starts[:, None] + torch.arange(ctx + 1)]
        return chunk[:, :-1], chunk[:, 1:]

    def train(t: int) -> torch.Tensor:
        x, y = batch(train_data, torch.Generator().manual_seed(seed + 13 * t), 16)
        return nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())

    xv, yvv = batch(val_data, torch.Generator().manual_seed(seed), 32)
    return TrainingTask(
        "char-lm",
        model,
        train,
        _eval(lambda: nn.functional.cross_entropy(model(xv).flatten(0, 1), yvv.flatten())),
        3e-3,
    )


def _majority_rnn(seed: int) -> TrainingTask:
    torch.manual_seed(seed)
    length = 9 + 2 * (seed % 4)  # odd: no ties
    model = nn.ModuleDict({"rnn": nn.GRU(1, 32, batch_first=True), "out": nn.Linear(32, 2)})

    def loss_on(g: torch.Generator, n: int) -> torch.Tensor:
        bits = torch.randint(0, 2, (n, length), generator=g).float()
        target = (bits.sum(1) * 2 > length).long()
        h = model["rnn"](bits.unsqueeze(-1))[0][:, -1]
        return nn.functional.cross_entropy(model["out"](h), target)

    def train(t: int) -> torch.Tensor:
        return loss_on(torch.Generator().manual_seed(seed + 17 * t), 64)

    return TrainingTask(
        "majority-rnn",
        model,
        train,
        _eval(lambda: loss_on(torch.Generator().manual_seed(12345), 256)),
        3e-3,
    )


def _mlp_regression(seed: int) -> TrainingTask:
    """Mean-squared error of an MLP on a synthetic regression (Friedman #1 for even seeds, a
    squashed random linear model for odd ones), 1500 samples, standardized target. At Adam's
    usual 1e-3 these are undertrained in a few hundred steps: the best rate is 10-30x higher and
    a constant rate beats a decaying one, unlike most classification families here."""
    from sklearn.datasets import make_friedman1, make_regression

    n = 1500
    if seed % 2 == 0:
        X, y = make_friedman1(n_samples=n, n_features=10, noise=0.5, random_state=seed)
    else:
        X, y = make_regression(
            n_samples=n, n_features=20, n_informative=10, noise=5.0, random_state=seed
        )
        y = 3 * np.tanh(y / y.std()) + 0.1 * y / y.std()
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    cut = int(0.7 * n)
    Xt, yt = torch.from_numpy(X[:cut]), torch.from_numpy(y[:cut])
    Xv, yv = torch.from_numpy(X[cut:]), torch.from_numpy(y[cut:])
    torch.manual_seed(seed)
    width = [32, 64, 128][(seed // 2) % 3]
    act = [nn.ReLU, nn.Tanh, nn.SiLU][(seed // 6) % 3]
    model = nn.Sequential(
        nn.Linear(X.shape[1], width), act(), nn.Linear(width, width), act(), nn.Linear(width, 1)
    )

    def train(t: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed + 19 * t)
        idx = torch.randint(0, len(yt), (64,), generator=g)
        return nn.functional.mse_loss(model(Xt[idx]).squeeze(-1), yt[idx])

    val = _eval(lambda: nn.functional.mse_loss(model(Xv).squeeze(-1), yv))
    return TrainingTask("mlp-regression", model, train, val, 1e-3)


def _check_family(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(f"a task family must be a callable seed -> TrainingTask, got {obj!r}")


TASK_FAMILIES: Registry[Callable[[int], TrainingTask]] = Registry(
    "task family", check=_check_family
)
for _name, _family in (
    ("quadratic", _quadratic),
    ("mlp-tabular", _tabular),
    ("cnn-digits", _cnn_digits),
    ("char-lm", _char_lm),
    ("majority-rnn", _majority_rnn),
    ("mlp-regression", _mlp_regression),
):
    TASK_FAMILIES.register(_name, _family)
del _name, _family
# the mix the shipped policy was meta-trained on (`make lhopt-policy` must keep reproducing it)
DEFAULT_FAMILIES = ["quadratic", "mlp-tabular", "cnn-digits", "char-lm", "majority-rnn"]


def sample_task(rng: np.random.Generator, families: list[str] | None = None) -> TrainingTask:
    """A random task from the distribution (the family and its seed drawn from `rng`)."""
    names = families or list(DEFAULT_FAMILIES)
    unknown = sorted(set(names) - set(TASK_FAMILIES))
    if unknown:
        raise ValueError(f"unknown task families {unknown}; available: {TASK_FAMILIES.names()}")
    name = names[int(rng.integers(len(names)))]
    return TASK_FAMILIES.get(name)(int(rng.integers(0, 10_000)))
