"""Statistical efficiency from the gradient noise scale (Pollux, after McCandlish et al. 2018).

With noise scale phi = tr(Sigma) / |G|^2, one step at total batch M makes the progress of
gain(M) = (phi + M0) / (phi / S + M0) steps at the user's M0 (S = M / M0), so each example at M
is worth E(M) = gain / S = (phi + M0) / (phi + M) examples at M0. A large phi (noisy gradients,
late in training) keeps E near 1 for large batches; a small one makes them wasteful.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["efficiency", "gain"]


def _check(noise_scale: float, base_batch: float) -> float:
    if base_batch <= 0:
        raise ValueError(f"base_batch must be positive, got {base_batch!r}")
    if noise_scale != noise_scale:  # NaN: nothing measured yet, assume perfect scaling is unsafe
        raise ValueError("noise_scale is NaN (no estimate yet)")
    return max(float(noise_scale), 0.0)


def gain(noise_scale: float, base_batch: float, batch: np.ndarray | float) -> np.ndarray | float:
    """M0-equivalent steps made by one step at `batch` (1 at M0, at most batch / M0); a float
    for a scalar `batch` (the controller asks every step, where NumPy's overhead shows)."""
    phi = _check(noise_scale, base_batch)
    scalar = isinstance(batch, (int, float, np.integer, np.floating))
    scale = float(batch) / base_batch if scalar else np.asarray(batch, dtype=float) / base_batch
    if math.isinf(phi):
        return scale
    return (phi + base_batch) / (phi / scale + base_batch)


def efficiency(noise_scale: float, base_batch: float, batch: np.ndarray | float) -> np.ndarray:
    """E(M) = (phi + M0) / (phi + M): the worth of an example at `batch` relative to M0."""
    phi = _check(noise_scale, base_batch)
    m = np.asarray(batch, dtype=float)
    if math.isinf(phi):
        return np.ones_like(m)
    return (phi + base_batch) / (phi + m)
