"""Option specs of hypergradient methods and linear solvers, checked before any work is done.

A spec maps each accepted option to ``(type, minimum, maximum)`` (None: unbounded; ``str``
options are not range-checked). It lives here, apart from both registries, because a method
built on a solver takes its options from the solver's spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OptionSpec", "merge_specs", "validate_options"]

OptionSpec = dict[str, tuple[type, float | None, float | None]]


def validate_options(spec: OptionSpec, options: Mapping[str, Any], where: str, method: str) -> None:
    """Raise a ValueError naming the option and its allowed range if ``options`` is invalid.

    ``where`` says whose options these are (e.g. "problem 'inner'"), ``method`` which method
    they are for; both appear in the message.
    """
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


def merge_specs(*specs: OptionSpec | None) -> OptionSpec | None:
    """One spec accepting the options of every part (None if any part accepts anything).

    A name declared by two parts is refused: one option would silently set both.
    """
    merged: OptionSpec = {}
    for spec in specs:
        if spec is None:
            return None
        for key, value in spec.items():
            if key in merged:
                raise ValueError(f"option {key!r} is declared by two parts of one method")
            merged[key] = value
    return merged
