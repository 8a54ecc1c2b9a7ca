"""Bundled data the real benchmark pipelines share: scikit-learn's digits as tensors, image
shifts for augmentation, and the Python standard library's own sources as a text corpus (all
offline)."""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "augment_params",
    "augmented_digits",
    "digits_tensors",
    "fit_classifier",
    "fit_char_lm",
    "lm_windows",
    "shift_images",
    "small_cnn",
    "stdlib_text",
]


def digits_tensors() -> tuple[Any, Any, Any, Any]:
    """digits as (X_train, y_train, X_val, y_val) tensors, images 1x8x8 in [0, 1]; a fixed
    stratified 75/25 split."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    return (
        torch.from_numpy(X_tr),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy(X_va),
        torch.from_numpy(y_va).long(),
    )


def shift_images(x: Any, dx: int, dy: int) -> Any:
    """Images rolled by (dx, dy) pixels (a cheap translation)."""
    import torch

    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def stdlib_text(names: tuple[str, ...], limit: int) -> str:
    """The first `limit` characters of the named standard-library modules, concatenated."""
    root = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((root / n).read_text(encoding="utf-8", errors="replace") for n in names)
    return text[:limit]


def augment_params() -> dict[str, Any]:
    """The search space of `augmented_digits`: noise, shift and number of copies."""
    from metatune.space import Float, Int

    return {"noise_std": Float(0.0, 0.3), "max_shift": Int(0, 1), "copies": Int(0, 2)}


def augmented_digits(noise_std: float, max_shift: int, copies: int) -> dict:
    """digits' training set and `copies` shifted, noised copies of it (validation untouched):
    {"X", "y", "X_val", "y_val"}."""
    import torch

    X_tr, y_tr, X_va, y_va = digits_tensors()
    gen = torch.Generator().manual_seed(0)
    xs, ys = [X_tr], [y_tr]
    for _ in range(copies):
        dx, dy = (
            torch.randint(-max_shift, max_shift + 1, (2,), generator=gen).tolist()
            if max_shift
            else (0, 0)
        )
        noise = torch.randn(X_tr.shape, generator=gen) * noise_std
        xs.append((shift_images(X_tr, dx, dy) + noise).clamp(0, 1))
        ys.append(y_tr)
    return {"X": torch.cat(xs), "y": torch.cat(ys), "X_val": X_va, "y_val": y_va}


def small_cnn(width: int = 16) -> Any:
    """Two 3x3 convolutions (`width`, then 32 channels), a 2x2 max-pool and a linear layer, for
    1x8x8 images; the same initial weights every time."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(width, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 16, 10),
    )


def fit_classifier(model: Any, data: dict, lr: float, weight_decay: float, epochs: int) -> Any:
    """AdamW on cross-entropy over `data`'s "X" and "y" in shuffled batches of 128 (the same
    order every time); returns the model."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(1)
    n = len(data["y"])
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(128):
            loss = torch.nn.functional.cross_entropy(model(data["X"][idx]), data["y"][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def lm_windows(tokens: Any, context: int, batch: int, steps: int, seed: int):
    """`steps` batches of `batch` random windows of `tokens`: (inputs, next characters), each
    (batch, context); the same windows for the same seed."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(tokens) - context - 1, (batch,), generator=gen)
        chunk = tokens[starts[:, None] + torch.arange(context + 1)[None]]
        yield chunk[:, :-1], chunk[:, 1:]


def fit_char_lm(
    model: Any, tokens: Any, context: int, lr: float, wd: float, steps: int, seed: int
) -> dict:
    """AdamW on next-character cross-entropy over `steps` batches of 32 windows (gradients
    clipped at norm 1); returns a copy of the trained state."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    for x, y in lm_windows(tokens, context, 32, steps, seed):
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
