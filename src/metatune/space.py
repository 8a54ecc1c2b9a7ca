"""Search spaces: parameter types, validation, sampling and the unit-cube encoding the GP sees.

Every parameter has two views of the unit cube:

* a *sampling* view, one dimension per parameter, used by Sobol and random search
  (a uniform point maps to a uniform draw in the parameter's own scale);
* a *model* view used by surrogate models, where a categorical parameter becomes a one-hot
  block (so choices are never treated as ordered) and an integer the centre of its bin.

`Space.decode(Space.encode(params)) == params` holds exactly for integers and categoricals and
to floating-point precision for floats (which are then clipped into their bounds).
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from metatune._registry import Registry

__all__ = ["PARAM_TYPES", "Float", "Int", "Categorical", "Space", "Param", "ParamType"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_CHOICE_TYPES = (str, int, float, bool, type(None))


def _check_when(when: Any, kind: str) -> tuple[str, tuple[Any, ...]] | None:
    """`when` as (parent, allowed values); None for an unconditional parameter."""
    if when is None:
        return None
    if isinstance(when, tuple) and len(when) == 2 and isinstance(when[1], tuple):
        parent, values = when  # already normalized (a dataclass copy)
    else:
        if not isinstance(when, Mapping) or len(when) != 1:
            raise ValueError(
                f"{kind} when= must be a dict with one parent parameter, e.g. "
                f"when={{'optimizer': 'sgd'}} or when={{'optimizer': ['sgd', 'rmsprop']}}; "
                f"got {when!r}"
            )
        ((parent, values),) = when.items()
        values = tuple(values) if isinstance(values, (list, tuple, set, frozenset)) else (values,)
    if not isinstance(parent, str) or not values:
        raise ValueError(f"{kind} when= needs a parent name and at least one value, got {when!r}")
    return parent, tuple(values)


def _when_dict(when: tuple[str, tuple[Any, ...]] | None) -> dict[str, Any]:
    return {} if when is None else {"when": {when[0]: list(when[1])}}


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


class ParamType(abc.ABC):
    """Base class of parameter types defined outside this module (architectures, ...).

    A subclass gives both views of the unit cube (see the module docstring), its valid discrete
    moves in the model view, and a plain JSON form of its values (lists, strings, numbers), so
    that storage, resume and every optimizer work as for the built-in types. Register its
    `from_dict` under the `type` its `to_dict` writes: ``PARAM_TYPES.register("cell", fn)``.
    """

    @property
    @abc.abstractmethod
    def model_dims(self) -> int:
        """Columns of the model encoding."""

    @abc.abstractmethod
    def from_uniform(self, u: float) -> Any:
        """A value from one coordinate of the sampling cube (uniform over the raw values)."""

    @abc.abstractmethod
    def encode(self, value: Any) -> list[float]:
        """The model encoding of a valid value."""

    @abc.abstractmethod
    def decode(self, u: Sequence[float]) -> Any:
        """A valid value from any model-space columns."""

    @abc.abstractmethod
    def round_model(self, cols: np.ndarray) -> np.ndarray:
        """(n, model_dims) columns snapped to encodings of valid values."""

    @abc.abstractmethod
    def model_neighbours(self, cols: np.ndarray) -> np.ndarray:
        """Encodings (m, model_dims) of the values one discrete move from the encoded `cols`."""

    @abc.abstractmethod
    def contains(self, value: Any) -> bool: ...

    @abc.abstractmethod
    def normalize(self, value: Any) -> Any:
        """The plain JSON form of a valid value (what storage and a pipeline's cache see)."""

    @abc.abstractmethod
    def mutate(self, value: Any, rng: np.random.Generator, scale: float = 0.1) -> Any:
        """A different valid value one move away (an edge's operation changed, ...)."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def uniform_to_model(self, u: np.ndarray) -> np.ndarray:
        """Vectorized `from_uniform` then `encode`, (n,) -> (n, model_dims)."""
        return np.array([self.encode(self.from_uniform(x)) for x in np.asarray(u, dtype=float)])

    def features(self, value: Any) -> np.ndarray:
        """What a surrogate model of this value sees (the model encoding unless overridden)."""
        return np.asarray(self.encode(value), dtype=float)


@dataclass(frozen=True)
class Float:
    """A real-valued parameter in [low, high]; `log=True` searches it on a log scale."""

    low: float
    high: float
    log: bool = False
    when: Any = None  # {"parent": value or [values]}: active only then (see Space)

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _check_when(self.when, "Float"))
        low = _check_number("Float low", self.low)
        high = _check_number("Float high", self.high)
        if low >= high:
            raise ValueError(f"Float needs low < high, got low={low!r}, high={high!r}")
        if self.log and low <= 0:
            raise ValueError(f"Float with log=True needs low > 0, got low={low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def model_dims(self) -> int:
        return 1

    def _bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    def from_uniform(self, u: float) -> float:
        a, b = self._bounds()
        v = a + float(u) * (b - a)
        x = math.exp(v) if self.log else v
        return min(max(x, self.low), self.high)

    def encode(self, value: Any) -> list[float]:
        a, b = self._bounds()
        v = math.log(value) if self.log else float(value)
        return [(v - a) / (b - a)]

    def decode(self, u: Sequence[float]) -> float:
        return self.from_uniform(min(max(float(u[0]), 0.0), 1.0))

    def round_model(self, cols: np.ndarray) -> np.ndarray:
        return np.clip(cols, 0.0, 1.0)

    def uniform_to_model(self, u: np.ndarray) -> np.ndarray:
        return np.clip(u, 0.0, 1.0)[:, None]

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool)
            and self.low <= float(value) <= self.high
        )

    def mutate(self, value: Any, rng: np.random.Generator, scale: float = 0.1) -> float:
        """A Gaussian step of `scale` (in the unit encoding) from `value`, kept in bounds."""
        return self.decode([self.encode(value)[0] + scale * float(rng.normal())])

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "float",
            "low": self.low,
            "high": self.high,
            "log": self.log,
            **_when_dict(self.when),
        }


@dataclass(frozen=True)
class Int:
    """An integer parameter in [low, high] (both included); `log=True` for a log scale."""

    low: int
    high: int
    log: bool = False
    when: Any = None  # {"parent": value or [values]}: active only then (see Space)

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _check_when(self.when, "Int"))
        for label, v in (("low", self.low), ("high", self.high)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Int {label} must be an integer, got {v!r}")
        low, high = int(self.low), int(self.high)
        if low >= high:
            raise ValueError(f"Int needs low < high, got low={low!r}, high={high!r}")
        if self.log and low <= 0:
            raise ValueError(f"Int with log=True needs low >= 1, got low={low!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def model_dims(self) -> int:
        return 1

    @property
    def n_values(self) -> int:
        return self.high - self.low + 1

    def _bounds(self) -> tuple[float, float]:
        # Bins of equal width (linear) or equal log-width (log) around every integer.
        if self.log:
            return math.log(self.low - 0.5), math.log(self.high + 0.5)
        return self.low - 0.5, self.high + 0.5

    def _from_scaled(self, v: float) -> int:
        x = math.exp(v) if self.log else v
        return int(min(max(round(x), self.low), self.high))

    def from_uniform(self, u: float) -> int:
        a, b = self._bounds()
        return self._from_scaled(a + float(u) * (b - a))

    def encode(self, value: Any) -> list[float]:
        a, b = self._bounds()
        v = math.log(int(value)) if self.log else float(int(value))
        return [(v - a) / (b - a)]

    def decode(self, u: Sequence[float]) -> int:
        return self.from_uniform(min(max(float(u[0]), 0.0), 1.0))

    def _snap(self, scaled: np.ndarray) -> np.ndarray:
        """Vectorized: scaled coordinates -> model coordinates of the nearest valid integers."""
        a, b = self._bounds()
        x = np.exp(scaled) if self.log else scaled
        k = np.clip(np.round(x), self.low, self.high)
        v = np.log(k) if self.log else k
        return ((v - a) / (b - a))[:, None]

    def round_model(self, cols: np.ndarray) -> np.ndarray:
        a, b = self._bounds()
        return self._snap(a + np.clip(cols[:, 0], 0.0, 1.0) * (b - a))

    def uniform_to_model(self, u: np.ndarray) -> np.ndarray:
        return self.round_model(u[:, None])

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            return False
        if not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        return self.low <= int(value) <= self.high

    def mutate(self, value: Any, rng: np.random.Generator, scale: float = 0.1) -> int:
        """A different integer: a Gaussian step of `scale` in the unit encoding, at least one."""
        k = self.decode([self.encode(value)[0] + scale * float(rng.normal())])
        if k == int(value):
            k = int(value) + (1 if (rng.random() < 0.5 and k < self.high) or k == self.low else -1)
        return k

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "int",
            "low": self.low,
            "high": self.high,
            "log": self.log,
            **_when_dict(self.when),
        }


@dataclass(frozen=True)
class Categorical:
    """An unordered choice among strings, numbers, booleans or None."""

    choices: tuple[Any, ...]
    when: Any = None  # {"parent": value or [values]}: active only then (see Space)

    def __init__(self, choices: Sequence[Any], when: Any = None) -> None:
        object.__setattr__(self, "when", _check_when(when, "Categorical"))
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
            raise TypeError(f"Categorical choices must be a list or tuple, got {choices!r}")
        choices = tuple(choices)
        if not choices:
            raise ValueError("Categorical needs at least one choice, got an empty list")
        for c in choices:
            if not isinstance(c, _CHOICE_TYPES) or (isinstance(c, float) and not math.isfinite(c)):
                raise TypeError(
                    f"Categorical choices must be str, int, finite float, bool or None; got {c!r}"
                )
        keys = [(type(c), c) for c in choices]
        if len(set(keys)) != len(keys):
            dupes = sorted(
                {repr(c) for c, k in zip(choices, keys, strict=False) if keys.count(k) > 1}
            )
            raise ValueError(
                f"Categorical choices must be distinct, duplicated: {', '.join(dupes)}"
            )
        object.__setattr__(self, "choices", choices)

    @property
    def model_dims(self) -> int:
        return len(self.choices)

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if type(c) is type(value) and c == value:
                return i
        for i, c in enumerate(self.choices):  # e.g. numpy scalars or 1 vs 1.0 from JSON
            if not isinstance(c, bool) and not isinstance(value, bool) and c == value:
                return i
        raise ValueError(f"{value!r} is not one of the choices {list(self.choices)!r}")

    def from_uniform(self, u: float) -> Any:
        i = min(int(float(u) * len(self.choices)), len(self.choices) - 1)
        return self.choices[max(i, 0)]

    def encode(self, value: Any) -> list[float]:
        out = [0.0] * len(self.choices)
        out[self.index(value)] = 1.0
        return out

    def decode(self, u: Sequence[float]) -> Any:
        return self.choices[int(np.argmax(np.asarray(u, dtype=float)))]

    def round_model(self, cols: np.ndarray) -> np.ndarray:
        return np.eye(len(self.choices))[np.argmax(cols, axis=1)]

    def uniform_to_model(self, u: np.ndarray) -> np.ndarray:
        idx = np.clip((u * len(self.choices)).astype(int), 0, len(self.choices) - 1)
        return np.eye(len(self.choices))[idx]

    def contains(self, value: Any) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True

    def mutate(self, value: Any, rng: np.random.Generator, scale: float = 0.1) -> Any:
        """Another choice, uniformly (the same one when there is only one)."""
        others = [c for i, c in enumerate(self.choices) if i != self.index(value)]
        return others[int(rng.integers(len(others)))] if others else value

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices), **_when_dict(self.when)}


Param = Float | Int | Categorical | ParamType

# `type` of a parameter's to_dict() -> a function rebuilding the parameter from that dict.
PARAM_TYPES: Registry[Any] = Registry("parameter type")
PARAM_TYPES.register(
    "float",
    lambda d: Float(d["low"], d["high"], log=bool(d.get("log", False)), when=d.get("when")),
)
PARAM_TYPES.register(
    "int",
    lambda d: Int(int(d["low"]), int(d["high"]), log=bool(d.get("log", False)), when=d.get("when")),
)
PARAM_TYPES.register("categorical", lambda d: Categorical(d["choices"], when=d.get("when")))
# Architecture spaces: imported when a stored space first names them.
PARAM_TYPES.register_lazy("cell", "metatune.nas.cell:cell_from_dict")
PARAM_TYPES.register_lazy("choice_cell", "metatune.nas.cell:choice_cell_from_dict")
PARAM_TYPES.register_lazy("chain", "metatune.nas.chain:chain_from_dict")


def _param_from_dict(d: Mapping[str, Any]) -> Param:
    return PARAM_TYPES.get(d.get("type"))(d)


def is_param(obj: Any) -> bool:
    """True for an instance of a built-in parameter type or of a ParamType subclass."""
    return isinstance(obj, (Float, Int, Categorical, ParamType))


def same_value(a: Any, b: Any) -> bool:
    """Equality of parameter values as a Categorical compares them (True is not 1)."""
    return (
        type(a) is type(b)
        and a == b
        or (not isinstance(a, bool) and not isinstance(b, bool) and a == b)
    )


class Space(Mapping[str, Param]):
    """An ordered, named collection of parameters, e.g. ``Space({"lr": Float(1e-4, 1, log=True)})``.

    A parameter declared with ``when={"parent": values}`` is *conditional*: it exists only when
    its parent (declared before it, and itself active) takes one of `values`; a point omits it
    otherwise. `optional` names parameters that may be absent from a point with no rule (a
    define-by-run space learned from trials). In the model view each conditional or optional
    parameter has an extra column saying whether it is active, and its value columns are zero
    when it is not: every inactive configuration of a parameter is one point, at a distance the
    model learns from every active value, instead of pretending to be some value.
    """

    def __init__(self, params: Mapping[str, Param], optional: Iterable[str] = ()) -> None:
        if not isinstance(params, Mapping):
            raise TypeError(f"Space takes a dict of name -> parameter, got {type(params).__name__}")
        if not params:
            raise ValueError("Space needs at least one parameter, got an empty dict")
        for name, p in params.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(
                    f"bad parameter name {name!r}: use letters, digits, '_', '.', '-', "
                    "starting with a letter or '_'"
                )
            if not is_param(p):
                raise TypeError(
                    f"parameter {name!r} must be Float, Int, Categorical or a ParamType, "
                    f"got {type(p).__name__}"
                )
        self._params: dict[str, Param] = dict(params)
        self._optional = frozenset(optional)
        unknown = sorted(self._optional - set(self._params))
        if unknown:
            raise ValueError(f"optional names {unknown} are not parameters of the space")
        self._rules: dict[str, tuple[str, tuple[Any, ...]]] = {}
        seen: list[str] = []
        for name, p in self._params.items():
            when = getattr(p, "when", None)
            if when is not None:
                self._rules[name] = self._check_rule(name, when, seen)
            seen.append(name)
        self._indicator: dict[str, int] = {}
        self._slices: dict[str, slice] = {}
        start = 0
        for name, p in self._params.items():
            if name in self._rules or name in self._optional:
                self._indicator[name] = start
                start += 1
            self._slices[name] = slice(start, start + p.model_dims)
            start += p.model_dims
        self._dim = start

    def _check_rule(
        self, name: str, when: tuple[str, tuple[Any, ...]], before: list[str]
    ) -> tuple[str, tuple[Any, ...]]:
        parent, values = when
        if parent not in self._params:
            raise ValueError(f"parameter {name!r} is conditional on {parent!r}, not in the space")
        if parent not in before:
            raise ValueError(
                f"parameter {name!r} is conditional on {parent!r}, declared after it; "
                "declare a parent before the parameters that depend on it"
            )
        bad = [v for v in values if not self._params[parent].contains(v)]
        if bad:
            raise ValueError(
                f"parameter {name!r} is conditional on {parent!r} taking {bad}, which "
                f"{parent!r} = {self._params[parent]!r} cannot take"
            )
        return parent, values

    # Mapping protocol -------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Space)
            and self.to_dict() == other.to_dict()
            and self._optional == other._optional
        )

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self._params.items())
        return f"Space({{{inner}}})"

    # Conditions --------------------------------------------------------------------------------
    @property
    def is_conditional(self) -> bool:
        """True when a point may leave some parameters out (conditional or optional ones)."""
        return bool(self._indicator)

    def condition_of(self, name: str) -> tuple[str, tuple[Any, ...]] | None:
        """(parent, values) under which `name` is active, or None when it has no rule."""
        return self._rules.get(name)

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether `name` belongs in a point whose other values are `params`."""
        if name in self._optional:
            return name in params
        rule = self._rules.get(name)
        if rule is None:
            return True
        parent, values = rule
        return (
            self.is_active(parent, params)
            and parent in params
            and any(same_value(params[parent], v) for v in values)
        )

    def active(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` without the parameters their parents make inactive (and unknown names)."""
        out: dict[str, Any] = {}
        for name in self._params:
            if name in params and self.is_active(name, out if name in self._rules else params):
                out[name] = params[name]
        return out

    def repair(self, params: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """A valid point from `params` after a move: inactive parameters dropped, newly active
        ones drawn at random (a mutation that switches a parent on)."""
        out: dict[str, Any] = {}
        for name, p in self._params.items():
            if name in self._optional:
                if name in params:
                    out[name] = params[name]
                continue
            if name in self._rules and not self.is_active(name, out):
                continue
            value = params.get(name)
            out[name] = (
                value
                if name in params and p.contains(value)
                else p.from_uniform(float(rng.random()))
            )
        return out

    # Encoding -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of dimensions of the model encoding (one-hot categoricals count per choice,
        a conditional parameter one more for whether it is active)."""
        return self._dim

    def slice_of(self, name: str) -> slice:
        """Columns of the model encoding that hold the value of parameter `name`."""
        return self._slices[name]

    def indicator_of(self, name: str) -> int | None:
        """The column saying whether conditional parameter `name` is active (None: always)."""
        return self._indicator.get(name)

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Map a complete, valid parameter dict to a point of the model unit cube."""
        self.validate(params)
        out = np.zeros(self._dim)
        for name, p in self._params.items():
            if name not in params:
                continue  # inactive: indicator and value columns stay zero
            out[self._slices[name]] = p.encode(params[name])
            if name in self._indicator:
                out[self._indicator[name]] = 1.0
        return out

    def decode(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Map a point of the model unit cube (any real values) back to valid parameters."""
        u = np.asarray(u, dtype=float).reshape(-1)
        if u.shape[0] != self._dim:
            raise ValueError(f"expected a vector of length {self._dim}, got {u.shape[0]}")
        out: dict[str, Any] = {}
        for name, p in self._params.items():
            if name in self._optional and u[self._indicator[name]] < 0.5:
                continue
            if name in self._rules and not self.is_active(name, out):
                continue
            out[name] = p.decode(u[self._slices[name]])
        return out

    def round(self, X: np.ndarray) -> np.ndarray:
        """Snap model-space points (n, dim) to encodings of valid parameters, vectorized."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        out = np.zeros_like(X)
        for name, p in self._params.items():
            sl = self._slices[name]
            out[:, sl] = p.round_model(X[:, sl])
        if not self._indicator:
            return out
        active: dict[str, np.ndarray] = {}
        for name in self._params:
            if name in self._optional:
                mask = X[:, self._indicator[name]] >= 0.5
            elif name in self._rules:
                parent, values = self._rules[name]
                mask = active[parent] & self._takes(parent, out, values)
            else:
                mask = np.ones(len(X), dtype=bool)
            active[name] = mask
            if name in self._indicator:
                out[:, self._indicator[name]] = mask
                out[~mask, self._slices[name]] = 0.0
        return out

    def _takes(self, name: str, X: np.ndarray, values: tuple[Any, ...]) -> np.ndarray:
        """(n,) whether parameter `name`, in the rounded model points X, is one of `values`."""
        p, cols = self._params[name], X[:, self._slices[name]]
        if isinstance(p, Categorical):
            allowed = [i for i, c in enumerate(p.choices) if any(same_value(c, v) for v in values)]
            return np.isin(np.argmax(cols, axis=1), allowed)
        return np.array([any(same_value(p.decode(c), v) for v in values) for c in cols])

    def uniform_to_model(self, U: np.ndarray) -> np.ndarray:
        """Map sampling-cube points (n, len(space)) to model-space points (n, dim), vectorized."""
        U = np.atleast_2d(np.asarray(U, dtype=float))
        out = np.zeros((len(U), self._dim))
        for i, (name, p) in enumerate(self._params.items()):
            out[:, self._slices[name]] = p.uniform_to_model(U[:, i])
            if name in self._indicator:
                out[:, self._indicator[name]] = 1.0
        return self.round(out) if self._indicator else out

    def from_uniform(self, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
        """Map a point of the sampling cube [0, 1)^len(space) to parameters (inactive
        conditional ones left out; optional ones all drawn)."""
        u = np.asarray(u, dtype=float).reshape(-1)
        if u.shape[0] != len(self._params):
            raise ValueError(f"expected a vector of length {len(self._params)}, got {u.shape[0]}")
        drawn = {
            name: p.from_uniform(x) for (name, p), x in zip(self._params.items(), u, strict=False)
        }
        return self.active(drawn) if self._rules else drawn

    def sample(self, rng: np.random.Generator | int | None = None) -> dict[str, Any]:
        """One independent uniform draw (log-uniform for log parameters)."""
        rng = np.random.default_rng(rng)
        return self.from_uniform(rng.random(len(self._params)))

    # Validation and serialization --------------------------------------------------------------
    def validate(self, params: Mapping[str, Any]) -> None:
        """Raise a clear error if `params` is not a complete, in-range assignment of this space
        (conditional parameters present exactly when their parent makes them active)."""
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict, got {type(params).__name__}")
        missing = [
            k
            for k in self._params
            if k not in params and k not in self._optional and self.is_active(k, params)
        ]
        extra = [k for k in params if k not in self._params]
        if missing or extra:
            raise ValueError(f"params do not match the space: missing {missing}, unknown {extra}")
        for name in params:
            if name in self._rules and not self.is_active(name, params):
                parent, values = self._rules[name]
                raise ValueError(
                    f"parameter {name!r} is inactive here: it exists only when {parent!r} is "
                    f"one of {list(values)}, and {parent!r} is "
                    f"{params.get(parent, 'absent')!r}"
                )
        for name, p in self._params.items():
            if name in params and not p.contains(params[name]):
                raise ValueError(f"parameter {name!r}={params[name]!r} is outside {p!r}")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: p.to_dict() for name, p in self._params.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Mapping[str, Any]]) -> Space:
        return cls({name: _param_from_dict(pd) for name, pd in d.items()})
