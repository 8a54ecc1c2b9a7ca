"""A procedurally generated task distribution for meta-training, built for the lockstep engine.

A *family* fixes the kind of model and data; `sample_group(family, rng, replicas)` draws one
architecture (depth, width, activation, normalization, init gain), one batch size and run
length (200 to 5,000 steps, log-uniform), and `replicas` tasks of that shape that differ in
their data (generator seed, dataset split or source file), initial weights and minibatches. A
group trains as one batched computation (`metatune.lhopt.vectorized`); `group.training_task(r)`
runs one replica in the ordinary engine.

Families (`FAMILIES`; `split` says which are for training and which are held out, declared
here before any policy is trained on them):

| family | model | data | loss | split |
| --- | --- | --- | --- | --- |
| mlp-friedman | MLP | scikit-learn's Friedman #1/#2/#3 generators, target scale 10^U(-2, 1) | MSE | train |
| mlp-linreg | MLP | `make_regression`, squashed target, scale 10^U(-2, 1) | MSE | train |
| mlp-classify | MLP | `make_classification` (2-6 classes) | cross-entropy | train |
| mlp-bundled | MLP | wine, breast cancer, iris, digits | cross-entropy | train |
| cnn-digits | small CNN | digits 8x8 | cross-entropy | train |
| mlp-charlm | embedding + MLP | next character after k characters of stdlib source | cross-entropy | train |
| gru-charlm | embedding + GRU | the same next-character windows | cross-entropy | train |
| transformer-charlm | tiny causal transformer | the same next-character windows | cross-entropy | train |
| mlp-moons | MLP | `make_moons`/`make_circles` with noise | cross-entropy | validation |
| mlp-hastie | MLP | `make_hastie_10_2` (binary, 10 features) | cross-entropy | validation |
| mlp-sparse | MLP | `make_sparse_uncorrelated` (4 of 10 features matter) | MSE | validation |
| cnn-blobs | small CNN | synthetic 10x10 images: how many blobs (1-3), with noise | cross-entropy | validation |
| gru-balance | GRU | noisy sequence: first half's sum minus the second half's | MSE | validation |
| mlp-diabetes | MLP | diabetes (bundled) | MSE | held out |
| cnn-bars | small CNN | synthetic 12x12 images: bar orientation, with noise | cross-entropy | held out |
| gru-signal | GRU | next value of noisy synthetic sequences (sums of sines, AR(2)) | MSE | held out |
| transformer-signal | tiny causal transformer | the same sequences | MSE | held out |
| mlp-denoise | MLP autoencoder | digits 8x8 plus Gaussian noise -> the clean digit | MSE (64 outputs) | held out |
| mlp-quantiles | MLP | `make_gaussian_quantiles` (3-4 nested shells) | cross-entropy | held out |

Validation families choose among trained policies (docs/lhopt-selection-rule.md); held-out
families only report (benchmarks/lhopt.py).

The sequence models are in `lhopt.sequence_models`. Not here yet: BatchNorm (buffers) and
families mixing architectures in one group.
Nothing downloads: the data are scikit-learn generators, its bundled sets and the Python
standard library's source files.
"""

from __future__ import annotations

import math
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from metatune.lhopt.sequence_models import gru_model, tiny_transformer
from metatune.lhopt.tasks import TrainingTask
from metatune.lhopt.vectorized.group import TaskGroup

__all__ = [
    "FAMILIES",
    "TRAIN_FAMILIES",
    "HELD_OUT_FAMILIES",
    "VALIDATION_FAMILIES",
    "Family",
    "GroupSpec",
    "sample_group",
    "training_task",
    "MIN_STEPS",
    "MAX_STEPS",
]

MIN_STEPS, MAX_STEPS = 200, 5000
MAX_VAL = 512  # validation samples kept per task: it is evaluated every 10 steps
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
}
_WIDTHS = (8, 16, 32, 64, 128)
_BATCHES = (16, 32, 64, 128)

Data = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, y_train, x_val, y_val


@dataclass(frozen=True)
class GroupSpec:
    """What one group drew: shared by its replicas."""

    family: str
    kind: str  # "mlp", "cnn", "charlm", "gru" or "transformer"
    depth: int
    width: int
    activation: str
    norm: str  # "none" or "layer"
    init_gain: float
    batch_size: int
    steps: int
    extra: tuple[tuple[str, float | int | str], ...] = ()

    def label(self) -> str:
        return (
            f"{self.family} {self.kind} d{self.depth} w{self.width} {self.activation} "
            f"{self.norm} g{self.init_gain:.2g} b{self.batch_size} T{self.steps}"
        )


@dataclass(frozen=True)
class Family:
    """A family: its split, model kind and loss, and how it draws data.

    `draw(rng)` returns the family's shared shape options (e.g. number of features) as a dict;
    `data(options, seed)` returns one replica's arrays for a data seed.
    """

    name: str
    split: str  # "train", "validation" or "heldout"
    kind: str
    loss: str
    draw: Callable[[np.random.Generator], dict[str, int | float | str]]
    data: Callable[[dict[str, int | float | str], int], Data]


def _standardize(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    std = ref.std(0)
    std = np.where(std > 1e-6, std, 1.0)  # a constant training column (a blank digit pixel)
    return ((x - ref.mean(0)) / std).astype(np.float32)


def _split(X: np.ndarray, y: np.ndarray, seed: int, val: float = 0.3) -> Data:
    perm = np.random.default_rng([seed, 11]).permutation(len(y))
    cut = int(len(y) * (1 - val))
    tr, va = perm[:cut], perm[cut:]
    return X[tr], y[tr], X[va], y[va]


def _regression_data(X: np.ndarray, y: np.ndarray, seed: int, scale: float = 1.0) -> Data:
    """Standardized inputs; targets standardized, then multiplied by `scale` (a target left
    in its own units, as users often leave it: Adam's best rate moves with the scale)."""
    xt, yt, xv, yv = _split(X, y, seed)
    mean, std = yt.mean(), (yt.std() + 1e-8) / scale
    return (
        _standardize(xt, xt),
        ((yt - mean) / std).astype(np.float32),
        _standardize(xv, xt),
        ((yv - mean) / std).astype(np.float32),
    )


def _target_scale(rng: np.random.Generator) -> float:
    return float(10 ** rng.uniform(-2.0, 1.0))


def _classification_data(X: np.ndarray, y: np.ndarray, seed: int) -> Data:
    xt, yt, xv, yv = _split(X, y, seed)
    return _standardize(xt, xt), yt.astype(np.int64), _standardize(xv, xt), yv.astype(np.int64)


# -- data of each family ---------------------------------------------------------------------


def _friedman_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {
        "which": int(rng.integers(1, 4)),
        "n": int(rng.choice([600, 1500, 3000])),
        "scale": _target_scale(rng),
    }


def _friedman_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_friedman1, make_friedman2, make_friedman3

    n = int(o["n"])
    if o["which"] == 1:
        X, y = make_friedman1(n_samples=n, n_features=10, noise=0.5, random_state=seed)
    elif o["which"] == 2:
        X, y = make_friedman2(n_samples=n, noise=30.0, random_state=seed)
    else:
        X, y = make_friedman3(n_samples=n, noise=0.05, random_state=seed)
    return _regression_data(X, y, seed, float(o["scale"]))


def _linreg_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {
        "features": int(rng.choice([5, 10, 20, 40])),
        "n": int(rng.choice([600, 1500, 3000])),
        "noise": float(rng.choice([0.5, 5.0, 20.0])),
        "scale": _target_scale(rng),
    }


def _linreg_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_regression

    f = int(o["features"])
    X, y = make_regression(
        n_samples=int(o["n"]),
        n_features=f,
        n_informative=max(2, f // 2),
        noise=float(o["noise"]),
        random_state=seed,
    )
    y = 3 * np.tanh(y / y.std()) + 0.1 * y / y.std()
    return _regression_data(X, y, seed, float(o["scale"]))


def _classify_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {
        "features": int(rng.choice([8, 16, 32])),
        "classes": int(rng.integers(2, 7)),
        "n": int(rng.choice([600, 1500, 3000])),
        "flip": float(rng.choice([0.0, 0.05, 0.2])),
    }


def _classify_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_classification

    f = int(o["features"])
    X, y = make_classification(
        n_samples=int(o["n"]),
        n_features=f,
        n_informative=max(2, f // 2),
        n_classes=int(o["classes"]),
        n_clusters_per_class=2 if int(o["classes"]) <= 4 else 1,
        flip_y=float(o["flip"]),
        random_state=seed,
    )
    return _classification_data(X, y, seed)


_BUNDLED = ("wine", "breast_cancer", "iris", "digits")


def _bundled_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"dataset": _BUNDLED[int(rng.integers(len(_BUNDLED)))]}


def _bundled_xy(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return X.astype(np.float64), y


def _bundled_data(o: dict[str, int | float | str], seed: int) -> Data:
    X, y = _bundled_xy(str(o["dataset"]))
    return _classification_data(X, y, seed)


def _diabetes_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {}


def _diabetes_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    return _regression_data(X, y, seed)


def _moons_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {
        "shape": "moons" if rng.random() < 0.5 else "circles",
        "noise": float(rng.choice([0.1, 0.2, 0.3])),
        "n": int(rng.choice([600, 1500])),
    }


def _moons_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_circles, make_moons

    n, noise = int(o["n"]), float(o["noise"])
    if o["shape"] == "moons":
        X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    else:
        X, y = make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
    return _classification_data(X, y, seed)


def _hastie_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"n": int(rng.choice([1000, 2000, 4000]))}


def _hastie_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_hastie_10_2

    X, y = make_hastie_10_2(n_samples=int(o["n"]), random_state=seed)
    return _classification_data(X, (y > 0).astype(np.int64), seed)


def _sparse_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"n": int(rng.choice([800, 2000])), "scale": _target_scale(rng)}


def _sparse_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_sparse_uncorrelated

    X, y = make_sparse_uncorrelated(n_samples=int(o["n"]), n_features=10, random_state=seed)
    return _regression_data(X, y, seed, float(o["scale"]))


def _blobs_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"noise": float(rng.choice([0.2, 0.4, 0.6])), "n": int(rng.choice([800, 1600]))}


def _blobs_data(o: dict[str, int | float | str], seed: int) -> Data:
    """10x10 images holding 1-3 Gaussian blobs at random places, in Gaussian noise; the label
    is the number of blobs minus one."""
    rng = np.random.default_rng([seed, 37])
    n, size = int(o["n"]), 10
    y = rng.integers(0, 3, n)
    grid = np.arange(size)
    X = rng.normal(0, float(o["noise"]), (n, 1, size, size))
    for i in range(n):
        for cy, cx in rng.uniform(1, size - 2, (y[i] + 1, 2)):
            X[i, 0] += np.exp(-((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2) / 2.0)
    xt, yt, xv, yv = _split(X.astype(np.float32), y, seed)
    return xt, yt.astype(np.int64), xv, yv.astype(np.int64)


def _balance_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"length": int(rng.choice([8, 12, 16])), "n": int(rng.choice([1500, 3000]))}


def _balance_data(o: dict[str, int | float | str], seed: int) -> Data:
    """Sequences of `length` standard normal values ([N, length, 1]); the target is the sum of
    the first half minus the sum of the second, plus noise: the GRU must count and then
    subtract."""
    rng = np.random.default_rng([seed, 41])
    n, length = int(o["n"]), int(o["length"])
    s = rng.normal(size=(n, length))
    y = s[:, : length // 2].sum(1) - s[:, length // 2 :].sum(1) + 0.3 * rng.normal(size=n)
    return _regression_data(s[:, :, None], y, seed)


def _quantiles_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {
        "features": int(rng.integers(2, 7)),
        "classes": int(rng.integers(3, 5)),
        "n": int(rng.choice([1000, 2000])),
    }


def _quantiles_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import make_gaussian_quantiles

    X, y = make_gaussian_quantiles(
        n_samples=int(o["n"]),
        n_features=int(o["features"]),
        n_classes=int(o["classes"]),
        random_state=seed,
    )
    return _classification_data(X, y, seed)


def _denoise_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"noise": float(rng.choice([0.2, 0.4, 0.6]))}


def _denoise_data(o: dict[str, int | float | str], seed: int) -> Data:
    """Digits (pixels / 16) with Gaussian noise in, the clean image out: 64 regression targets."""
    from sklearn.datasets import load_digits

    clean = (load_digits().data / 16.0).astype(np.float32)
    noisy = clean + np.random.default_rng([seed, 29]).normal(0, float(o["noise"]), clean.shape)
    xt, yt, xv, yv = _split(noisy.astype(np.float32), clean, seed)
    return xt, yt, xv, yv


def _digits_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {}


def _digits_data(o: dict[str, int | float | str], seed: int) -> Data:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8)
    xt, yt, xv, yv = _split(X, y, seed)
    return xt.astype(np.float32), yt, xv.astype(np.float32), yv


def _bars_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"noise": float(rng.choice([0.3, 0.6, 1.0])), "n": int(rng.choice([800, 1600]))}


def _bars_data(o: dict[str, int | float | str], seed: int) -> Data:
    """12x12 images of one bar (horizontal, vertical, or either diagonal) in Gaussian noise."""
    rng = np.random.default_rng([seed, 23])
    n, size = int(o["n"]), 12
    y = rng.integers(0, 4, n)
    X = rng.normal(0, float(o["noise"]), (n, 1, size, size))
    pos = rng.integers(2, size - 2, n)
    ar = np.arange(size)
    for i in range(n):
        if y[i] == 0:
            X[i, 0, pos[i], :] += 1.0
        elif y[i] == 1:
            X[i, 0, :, pos[i]] += 1.0
        elif y[i] == 2:
            X[i, 0, ar, ar] += 1.0
        else:
            X[i, 0, ar, size - 1 - ar] += 1.0
    xt, yt, xv, yv = _split(X, y, seed)
    return xt.astype(np.float32), yt, xv.astype(np.float32), yv


_STDLIB_FILES = (
    "textwrap.py",
    "string.py",
    "shlex.py",
    "fnmatch.py",
    "glob.py",
    "argparse.py",
    "difflib.py",
    "inspect.py",
    "pathlib.py",
    "dataclasses.py",
    "calendar.py",
    "heapq.py",
)


def _charlm_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {"context": int(rng.integers(3, 9)), "embed": int(rng.choice([8, 16, 32]))}


def _charlm_data(o: dict[str, int | float | str], seed: int) -> Data:
    """Windows of `context` characters (ASCII codes, others as '?') and the next character,
    from one standard-library source file chosen by the seed: 4,000 train, 1,000 validation."""
    root = Path(sysconfig.get_paths()["stdlib"])
    available = [root / f for f in _STDLIB_FILES if (root / f).exists()]
    if not available:
        raise FileNotFoundError(f"no standard-library source files found under {root}")
    path = available[seed % len(available)]
    text = path.read_text(encoding="utf-8", errors="replace")
    codes = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8).astype(np.int64)
    k = int(o["context"])
    rng = np.random.default_rng([seed, 29])
    cut = int(len(codes) * 0.8)

    def windows(lo: int, hi: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        starts = rng.integers(lo, hi - k - 1, n)
        return codes[starts[:, None] + np.arange(k)], codes[starts + k]

    xt, yt = windows(0, cut, 4000)
    xv, yv = windows(cut, len(codes), 1000)
    return xt, yt, xv, yv


def _signal_draw(rng: np.random.Generator) -> dict[str, int | float | str]:
    return {
        "length": int(rng.choice([8, 12, 16])),
        "process": "sines" if rng.random() < 0.5 else "ar2",
        "noise": float(rng.choice([0.05, 0.2, 0.5])),
        "n": int(rng.choice([1500, 3000])),
    }


def _signal_data(o: dict[str, int | float | str], seed: int) -> Data:
    """Sequences of `length` values ([N, length, 1]) and the next value: each a sum of three
    sines of its own frequencies and phases, or a stable AR(2) process of its own coefficients,
    plus Gaussian noise of scale `noise`."""
    rng = np.random.default_rng([seed, 31])
    n, length = int(o["n"]), int(o["length"])
    steps = np.arange(length + 1)
    if o["process"] == "sines":
        freq = rng.uniform(0.05, 0.45, (n, 3, 1))
        phase = rng.uniform(0.0, 2 * np.pi, (n, 3, 1))
        amp = rng.uniform(0.3, 1.0, (n, 3, 1))
        s = (amp * np.sin(2 * np.pi * freq * steps + phase)).sum(1)
    else:
        radius, angle = rng.uniform(0.7, 0.98, n), rng.uniform(0.1, np.pi - 0.1, n)
        a1, a2 = 2 * radius * np.cos(angle), -(radius**2)
        s = np.zeros((n, length + 1))
        s[:, :2] = rng.normal(size=(n, 2))
        for k in range(2, length + 1):
            s[:, k] = a1 * s[:, k - 1] + a2 * s[:, k - 2] + 0.3 * rng.normal(size=n)
    s = s + float(o["noise"]) * rng.normal(size=s.shape)
    return _regression_data(s[:, :length, None], s[:, length], seed)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("mlp-friedman", "train", "mlp", "mse", _friedman_draw, _friedman_data),
        Family("mlp-linreg", "train", "mlp", "mse", _linreg_draw, _linreg_data),
        Family("mlp-classify", "train", "mlp", "ce", _classify_draw, _classify_data),
        Family("mlp-bundled", "train", "mlp", "ce", _bundled_draw, _bundled_data),
        Family("cnn-digits", "train", "cnn", "ce", _digits_draw, _digits_data),
        Family("mlp-charlm", "train", "charlm", "ce", _charlm_draw, _charlm_data),
        Family("gru-charlm", "train", "gru", "ce", _charlm_draw, _charlm_data),
        Family("transformer-charlm", "train", "transformer", "ce", _charlm_draw, _charlm_data),
        Family("mlp-moons", "validation", "mlp", "ce", _moons_draw, _moons_data),
        Family("mlp-hastie", "validation", "mlp", "ce", _hastie_draw, _hastie_data),
        Family("mlp-sparse", "validation", "mlp", "mse", _sparse_draw, _sparse_data),
        Family("cnn-blobs", "validation", "cnn", "ce", _blobs_draw, _blobs_data),
        Family("gru-balance", "validation", "gru", "mse", _balance_draw, _balance_data),
        Family("mlp-diabetes", "heldout", "mlp", "mse", _diabetes_draw, _diabetes_data),
        Family("cnn-bars", "heldout", "cnn", "ce", _bars_draw, _bars_data),
        Family("gru-signal", "heldout", "gru", "mse", _signal_draw, _signal_data),
        Family("transformer-signal", "heldout", "transformer", "mse", _signal_draw, _signal_data),
        Family("mlp-denoise", "heldout", "mlp", "mse", _denoise_draw, _denoise_data),
        Family("mlp-quantiles", "heldout", "mlp", "ce", _quantiles_draw, _quantiles_data),
    )
}
TRAIN_FAMILIES = [n for n, f in FAMILIES.items() if f.split == "train"]
VALIDATION_FAMILIES = [n for n, f in FAMILIES.items() if f.split == "validation"]
HELD_OUT_FAMILIES = [n for n, f in FAMILIES.items() if f.split == "heldout"]


# -- architectures ---------------------------------------------------------------------------


def _mlp(inputs: int, outputs: int, spec: GroupSpec) -> list[nn.Module]:
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(spec.depth):
        layers.append(nn.Linear(width, spec.width))
        if spec.norm == "layer":
            layers.append(nn.LayerNorm(spec.width))
        layers.append(_ACTIVATIONS[spec.activation]())
        width = spec.width
    layers.append(nn.Linear(width, outputs))
    return layers


def _build(spec: GroupSpec, x: np.ndarray, outputs: int) -> nn.Module:
    if spec.kind == "mlp":
        return nn.Sequential(*_mlp(x.shape[-1], outputs, spec))
    if spec.kind in ("gru", "transformer"):
        tokens = x.dtype.kind in "iu"  # [N, T] character codes, else [N, T, F] values
        vocab, features = (128, 0) if tokens else (0, x.shape[-1])
        outputs = 128 if tokens else outputs
        if spec.kind == "gru":
            return gru_model(vocab, features, spec.width, spec.depth, outputs, spec.norm == "layer")
        activation = _ACTIVATIONS[spec.activation]
        return tiny_transformer(
            vocab, features, spec.width, spec.depth, outputs, x.shape[1], activation
        )
    if spec.kind == "charlm":
        context, embed = x.shape[-1], int(dict(spec.extra)["embed"])
        return nn.Sequential(
            nn.Embedding(128, embed), nn.Flatten(-2), *_mlp(context * embed, 128, spec)
        )
    # cnn: `depth` conv layers of `width` channels (3x3, same padding), a 2x2 max-pool after the
    # first, then a linear classifier
    channels, side = x.shape[-3], x.shape[-1]
    layers: list[nn.Module] = []
    for i in range(spec.depth):
        layers.append(nn.Conv2d(channels if i == 0 else spec.width, spec.width, 3, padding=1))
        layers.append(_ACTIVATIONS[spec.activation]())
        if i == 0:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(-3), nn.Linear(spec.width * (side // 2) ** 2, outputs)]
    return nn.Sequential(*layers)


def _draw_spec(family: Family, rng: np.random.Generator, steps: int | None) -> GroupSpec:
    if family.kind == "cnn":
        depth, width = int(rng.integers(1, 3)), int(rng.choice([4, 8, 16]))
        norm = "none"
    elif family.kind in ("gru", "transformer"):
        depth, width = int(rng.integers(1, 3)), int(rng.choice([8, 16, 32, 64]))
        norm = "layer" if family.kind == "transformer" or rng.random() < 0.3 else "none"
    else:
        depth, width = int(rng.integers(1, 5)), int(rng.choice(_WIDTHS))
        norm = "layer" if rng.random() < 0.3 else "none"
    activation = list(_ACTIVATIONS)[int(rng.integers(len(_ACTIVATIONS)))]
    gain = float(10 ** rng.uniform(-0.5, 0.5))
    batch = int(rng.choice(_BATCHES))
    if steps is None:
        steps = int(round(math.exp(rng.uniform(math.log(MIN_STEPS), math.log(MAX_STEPS))), -2))
    options = family.draw(rng)
    return GroupSpec(
        family.name,
        family.kind,
        depth,
        width,
        activation,
        norm,
        gain,
        batch,
        int(steps),
        tuple(sorted(options.items())),
    )


def sample_group(
    family: str,
    rng: np.random.Generator,
    replicas: int,
    steps: int | None = None,
) -> tuple[TaskGroup, GroupSpec]:
    """One group of `replicas` tasks of `family` (one architecture, own data and weights).

    `steps` fixes the run length; by default it is drawn log-uniformly in [200, 5000].
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; available: {sorted(FAMILIES)}")
    if not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be a positive integer, got {replicas!r}")
    if steps is not None and not MIN_STEPS <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [{MIN_STEPS}, {MAX_STEPS}], got {steps!r}")
    fam = FAMILIES[family]
    spec = _draw_spec(fam, rng, steps)
    options = dict(spec.extra)
    rows = rng.integers(0, 2**31, size=(replicas, 3))
    data = [fam.data(options, int(r[0])) for r in rows]
    n_train = min(len(d[1]) for d in data)
    n_val = min(min(len(d[3]) for d in data), MAX_VAL)
    if fam.loss == "mse":  # one output per target column
        outputs = int(data[0][1].shape[-1]) if data[0][1].ndim > 1 else 1
    else:
        outputs = int(max(int(d[1].max()) for d in data) + 1)
    modules = []
    for r in rows:
        torch.manual_seed(int(r[1]))
        model = _build(spec, data[0][0], outputs)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.mul_(spec.init_gain)
        modules.append(model)

    def stack(i: int, n: int) -> torch.Tensor:
        return torch.stack([torch.from_numpy(np.ascontiguousarray(d[i][:n])) for d in data])

    group = TaskGroup(
        family,
        modules,
        stack(0, n_train),
        stack(1, n_train),
        stack(2, n_val),
        stack(3, n_val),
        fam.loss,
        min(spec.batch_size, n_train),
        [int(r[2]) for r in rows],
        [1e-3] * replicas,
        [spec.label()] * replicas,
    )
    return group, spec


def training_task(family: str, seed: int, steps: int | None = None) -> TrainingTask:
    """One task of `family` for the ordinary engine (a group of one, drawn from `seed`)."""
    group, _ = sample_group(family, np.random.default_rng(seed), 1, steps)
    return group.training_task(0)
