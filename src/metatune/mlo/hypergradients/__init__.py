"""Hypergradient methods: best-response vector-Jacobian products, one module per method.

A method is a function ``fn(vector, lower, upper, options) -> list[Tensor]``: given ``vector``
(d loss / d lower parameters), it returns ``vector @ d lower* / d upper`` (one tensor per upper
trainable parameter). The engine chains these along every path of the dependency graph, so every
registered method works on multi-hop paths. Register new ones with ``@register_hypergradient``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from metatune.mlo.problem import Problem

HypergradientFn = Callable[[list[Tensor], "Problem", "Problem", dict[str, Any]], list[Tensor]]

_REGISTRY: dict[str, HypergradientFn] = {}


# option name -> (type, minimum, maximum); None = unbounded. Checked when an Engine is built.
OptionSpec = dict[str, tuple[type, float | None, float | None]]


def register_hypergradient(
    name: str,
    *,
    needs_history: bool = False,
    options: OptionSpec | None = None,
    overwrite: bool = False,
) -> Callable[[HypergradientFn], HypergradientFn]:
    """Decorator registering a hypergradient method under ``name``.

    ``needs_history=True`` makes the engine keep the lower problem's last ``unroll_steps``
    parameter snapshots and batches (``lower._history``), as unrolled differentiation needs.
    ``options`` declares the accepted options as ``{name: (type, min, max)}``; when given, the
    engine refuses unknown options and out-of-range values before any work is done.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def deco(fn: HypergradientFn) -> HypergradientFn:
        if name in _REGISTRY and not overwrite:
            raise ValueError(
                f"hypergradient method {name!r} is already registered; pass overwrite=True"
            )
        fn.needs_history = needs_history  # type: ignore[attr-defined]
        fn.option_spec = options  # type: ignore[attr-defined]
        _REGISTRY[name] = fn
        return fn

    return deco


def get_hypergradient(name: str) -> HypergradientFn:
    """The method registered under ``name``; a clear error lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown hypergradient method {name!r}; known: {sorted(_REGISTRY)}"
        ) from None


def check_options(method: str, options: dict[str, Any], where: str) -> None:
    """Raise a ValueError naming the option and its allowed range if ``options`` is invalid."""
    spec = getattr(get_hypergradient(method), "option_spec", None)
    if spec is None:
        return
    for key, value in options.items():
        if key not in spec:
            raise ValueError(
                f"{where}: unknown option {key!r} for hypergradient method {method!r}; "
                f"allowed: {sorted(spec)}"
            )
        typ, lo, hi = spec[key]
        if typ is str:
            continue
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if typ is int:
            ok_type = ok_type and float(value).is_integer()
        if not ok_type or (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
            raise ValueError(
                f"{where}: option {key!r} of method {method!r} must be a {typ.__name__} in "
                f"{rng}, got {value!r}"
            )


def available_hypergradients() -> list[str]:
    return sorted(_REGISTRY)


# Built-in methods register themselves on import.
from metatune.mlo.hypergradients import cg, darts, neumann, reinforce, unrolled  # noqa: E402, F401

__all__ = [
    "HypergradientFn",
    "available_hypergradients",
    "check_options",
    "get_hypergradient",
    "register_hypergradient",
]
