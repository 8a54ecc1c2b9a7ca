"""What an objective's result or exception becomes when a trial is told: the value, the extra
metrics, a stored error text. Shared by the study and the executors that run trials elsewhere."""

from __future__ import annotations

import math
import numbers
import traceback
from collections.abc import Mapping
from typing import Any

__all__ = ["as_value", "as_values", "describe_error", "split_result"]

_BOOL_DTYPES = ("bool", "torch.bool")


def describe_error(exc: BaseException) -> str:
    """The text a failed trial stores: the exception and the last frames of its traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
    return f"{type(exc).__name__}: {exc}\n{tb}".strip()


def as_value(value: Any) -> float | None:
    """`value` as a float if it is a real number (a NumPy or 0-d tensor one too); None for text,
    booleans and anything else, which would otherwise pass `float()`."""
    if isinstance(value, (str, bytes, bool)) or str(getattr(value, "dtype", "")) in _BOOL_DTYPES:
        return None  # text, and booleans (NumPy's and 1-element tensors' too)
    if not isinstance(value, numbers.Real) and not hasattr(value, "__float__"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor with many elements
        return None


def split_result(result: Any) -> tuple[Any, dict[str, Any]]:
    """(objective value, extra metrics) of a number or a dict with "objective"."""
    if isinstance(result, Mapping):
        if "objective" not in result:
            raise ValueError(f"a dict result needs an 'objective' key, got keys {sorted(result)}")
        return result["objective"], {k: v for k, v in result.items() if k != "objective"}
    if result is None:
        raise ValueError("tell needs a value, or error=... to mark the trial failed")
    return result, {}


def as_values(value: Any, k: int) -> tuple[list[float] | None, str | None]:
    """A multi-objective result as k finite floats, or (None, the reason it is not)."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        return None, f"objective returned {value!r}; this study needs a list of {k} numbers"
    items = list(value.tolist() if hasattr(value, "tolist") else value)
    if len(items) != k:
        return None, f"objective returned {len(items)} values; this study has {k} objectives"
    out = [as_value(v) for v in items]
    if any(v is None or not math.isfinite(v) for v in out):
        return None, f"objective returned {items!r}: every value must be a finite number"
    return [float(v) for v in out], None  # type: ignore[arg-type]
