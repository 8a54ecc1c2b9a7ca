"""The methods the pipeline benchmarks compare, and method labels with optimizer options.

A method is a registered optimizer name, optionally followed by ``+option=value`` pairs passed to
it (``eeipu+cost_inputs=prefix+n_top=3``): a variant is compared under its full label.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = [
    "BASELINES",
    "COLORS",
    "METHODS",
    "check_method",
    "ordered_methods",
    "parse_method",
]

METHODS = ("eeipu", "eeipu-memo", "ei", "eips", "carbo", "ms-carbo", "ms-bo", "random")
BASELINES = ("ei", "eips", "carbo", "ms-carbo", "ms-bo", "random")  # eeipu-memo is our variant
COLORS = {
    "eeipu": "tab:red",
    "eeipu-memo": "tab:pink",
    "ei": "tab:blue",
    "eips": "tab:orange",
    "carbo": "tab:green",
    "ms-carbo": "tab:purple",
    "ms-bo": "tab:brown",
    "random": "tab:gray",
}


def ordered_methods(labels: Iterable[str]) -> list[str]:
    """The standard methods in their usual order, then variants (``name+option=value``)."""
    have = set(labels)
    return [m for m in METHODS if m in have] + sorted(have - set(METHODS))


def parse_method(label: str) -> tuple[str, dict[str, Any]]:
    """``"eeipu+cost_inputs=prefix+n_top=3"`` -> ``("eeipu", {"cost_inputs": "prefix",
    "n_top": 3})``; values are read as JSON where they parse (numbers, true/false), else text."""
    name, *pairs = label.split("+")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"method {label!r}: expected +option=value, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return name, options


def check_method(label: str) -> None:
    """Raise ValueError naming the bad part of a method label, before any run starts."""
    from metatune.optimizers import available_optimizers, make_optimizer

    name, options = parse_method(label)
    if name not in available_optimizers():
        raise ValueError(f"unknown method {name!r}; known: {available_optimizers()}")
    try:
        make_optimizer(name, options or None)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"method {label!r}: {exc}") from exc
