"""A chain (macro) space: a stack of 1..n layers, each with its own choices (width, kernel, ...).

The choices of layer k exist only when the stack has more than k layers: they are conditional
parameters. In the model encoding an absent layer is all zeros, so a surrogate never sees a
made-up width for a layer that is not there, and two stacks of different depth differ in the
depth block and in the layers one of them lacks. A value is a plain list of dicts, one per
layer: ``[{"width": 64, "kernel": 3, "activation": "relu"}, ...]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metatune.space import ParamType

__all__ = ["Chain", "chain_from_dict"]

_CHOICE_TYPES = (str, int, float, bool)
DEFAULT_CHOICES: dict[str, tuple[Any, ...]] = {
    "width": (16, 32, 64, 128),
    "kernel": (3, 5),
    "activation": ("relu", "gelu", "tanh"),
}


class Chain(ParamType):
    """Between `min_layers` and `max_layers` layers, each picking one value per attribute.

    Args:
        max_layers: the deepest stack.
        choices: attribute name -> its allowed values (numbers, strings or booleans).
        min_layers: the shallowest stack (at least 1).
    """

    def __init__(
        self,
        max_layers: int = 4,
        choices: Mapping[str, Sequence[Any]] | None = None,
        *,
        min_layers: int = 1,
    ) -> None:
        for label, v in (("max_layers", max_layers), ("min_layers", min_layers)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Chain {label} must be an integer >= 1, got {v!r}")
        if min_layers > max_layers:
            raise ValueError(
                f"Chain needs min_layers <= max_layers, got {min_layers} > {max_layers}"
            )
        choices = dict(DEFAULT_CHOICES if choices is None else choices)
        if not choices:
            raise ValueError("Chain choices must name at least one layer attribute")
        clean: dict[str, tuple[Any, ...]] = {}
        for name, values in choices.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Chain attribute names must be non-empty strings, got {name!r}")
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise ValueError(f"Chain attribute {name!r} needs a non-empty list of values")
            for v in values:
                if not isinstance(v, _CHOICE_TYPES) or (
                    isinstance(v, float) and not math.isfinite(v)
                ):
                    raise TypeError(f"Chain attribute {name!r}: {v!r} is not a plain value")
            if len({(type(v), v) for v in values}) != len(values):
                raise ValueError(f"Chain attribute {name!r} has duplicated values")
            clean[name] = tuple(values)
        self.max_layers = int(max_layers)
        self.min_layers = int(min_layers)
        self.choices = clean
        self._depths = self.max_layers - self.min_layers + 1
        self._layer_dims = sum(len(v) for v in clean.values())
        self._per_layer = math.prod(len(v) for v in clean.values())

    # -- helpers ------------------------------------------------------------------------------
    def _index(self, attr: str, value: Any) -> int:
        for i, c in enumerate(self.choices[attr]):
            if type(c) is type(value) and c == value:
                return i
        for i, c in enumerate(self.choices[attr]):  # 3 vs 3.0 from JSON, numpy scalars
            if not isinstance(c, bool) and not isinstance(value, bool) and c == value:
                return i
        raise ValueError(f"{value!r} is not one of {list(self.choices[attr])} for {attr!r}")

    def _layers(self, value: Any) -> list[list[int]]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError("a Chain value is a list of layer dicts")
        if not self.min_layers <= len(value) <= self.max_layers:
            raise ValueError(
                f"a Chain value has {self.min_layers}..{self.max_layers} layers, got {len(value)}"
            )
        out = []
        for layer in value:
            if not isinstance(layer, Mapping) or set(layer) != set(self.choices):
                raise ValueError(f"a Chain layer has exactly the keys {sorted(self.choices)}")
            out.append([self._index(a, layer[a]) for a in self.choices])
        return out

    def _value(self, layers: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
        names = list(self.choices)
        return [{a: self.choices[a][i] for a, i in zip(names, idx, strict=True)} for idx in layers]

    def _layer_from_index(self, k: int) -> list[int]:
        idx = []
        for values in reversed(self.choices.values()):
            k, d = divmod(k, len(values))
            idx.append(d)
        return idx[::-1]

    # -- ParamType ----------------------------------------------------------------------------
    @property
    def model_dims(self) -> int:
        return self._depths + self.max_layers * self._layer_dims

    def from_uniform(self, u: float) -> list[dict[str, Any]]:
        """Depth uniform over min..max, then every layer uniform (not uniform over stacks,
        which would put almost all the mass on the deepest)."""
        x = min(max(float(u), 0.0), 1.0 - 1e-12) * self._depths
        depth_i = int(x)
        depth = self.min_layers + depth_i
        rest = int((x - depth_i) * self._per_layer**depth)
        layers = []
        for _ in range(depth):
            rest, k = divmod(rest, self._per_layer)
            layers.append(self._layer_from_index(k))
        return self._value(layers)

    def encode(self, value: Any) -> list[float]:
        layers = self._layers(value)
        out = [0.0] * self.model_dims
        out[len(layers) - self.min_layers] = 1.0
        for k, idx in enumerate(layers):
            start = self._depths + k * self._layer_dims
            for values, i in zip(self.choices.values(), idx, strict=True):
                out[start + i] = 1.0
                start += len(values)
        return out

    def decode(self, u: Sequence[float]) -> list[dict[str, Any]]:
        u = np.asarray(u, dtype=float)
        depth = self.min_layers + int(np.argmax(u[: self._depths]))
        layers = []
        for k in range(depth):
            start = self._depths + k * self._layer_dims
            idx = []
            for values in self.choices.values():
                idx.append(int(np.argmax(u[start : start + len(values)])))
                start += len(values)
            layers.append(idx)
        return self._value(layers)

    def round_model(self, cols: np.ndarray) -> np.ndarray:
        cols = np.atleast_2d(cols)
        return np.array([self.encode(self.decode(row)) for row in cols]).reshape(cols.shape)

    def model_neighbours(self, cols: np.ndarray) -> np.ndarray:
        value = self.decode(np.atleast_2d(cols)[0])
        out = [self.encode(n) for n in self.neighbours(value)]
        return np.array(out) if out else np.empty((0, self.model_dims))

    def neighbours(self, value: Any) -> list[list[dict[str, Any]]]:
        """One layer added (a copy of the last) or the last removed, or one attribute of one
        layer changed."""
        layers = self._layers(value)
        out = []
        if len(layers) < self.max_layers:
            out.append(self._value([*layers, layers[-1]]))
        if len(layers) > self.min_layers:
            out.append(self._value(layers[:-1]))
        for k, idx in enumerate(layers):
            for a, values in enumerate(self.choices.values()):
                for i in range(len(values)):
                    if i != idx[a]:
                        changed = [list(x) for x in layers]
                        changed[k][a] = i
                        out.append(self._value(changed))
        return out

    def mutate(self, value: Any, rng: np.random.Generator, scale: float = 0.1) -> Any:
        options = self.neighbours(value)
        return options[int(rng.integers(len(options)))] if options else self.normalize(value)

    def contains(self, value: Any) -> bool:
        try:
            self._layers(value)
        except (TypeError, ValueError):
            return False
        return True

    def normalize(self, value: Any) -> list[dict[str, Any]]:
        return self._value(self._layers(value))

    def canonical(self, value: Any) -> str:
        return json.dumps(self.normalize(value), sort_keys=True)

    def sample(self, rng: np.random.Generator | int | None = None) -> list[dict[str, Any]]:
        return self.from_uniform(float(np.random.default_rng(rng).random()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "chain",
            "max_layers": self.max_layers,
            "min_layers": self.min_layers,
            "choices": {k: list(v) for k, v in self.choices.items()},
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chain) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        return (
            f"Chain(max_layers={self.max_layers}, choices={ {k: list(v) for k, v in self.choices.items()} }, "
            f"min_layers={self.min_layers})"
        )


def chain_from_dict(d: Mapping[str, Any]) -> Chain:
    return Chain(d["max_layers"], d["choices"], min_layers=d.get("min_layers", 1))
