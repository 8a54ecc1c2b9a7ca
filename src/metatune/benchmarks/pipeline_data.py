"""Bundled data the real benchmark pipelines share: scikit-learn's digits as tensors, image
shifts for augmentation, and the Python standard library's own sources as a text corpus (all
offline)."""

from __future__ import annotations

import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["digits_tensors", "shift_images", "stdlib_text"]


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
