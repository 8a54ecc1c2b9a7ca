"""The operations a cell's edges may carry, by name, with the role the canonical form needs.

A cell refuses an operation name that is not registered here, so a typo fails when the space is
built rather than when a network is. Register your own with
``OPERATIONS.register("my_conv", Operation())``; `role` tells the canonical form whether the
operation is the zero op (cuts a path), the identity (passes its input through) or anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metatune._registry import Registry

__all__ = ["OPERATIONS", "Operation", "NB201_OPS", "DARTS_OPS"]

Role = Literal["zero", "identity", "op"]


@dataclass(frozen=True)
class Operation:
    """What an operation is to the search space (networks that build it live elsewhere)."""

    role: Role = "op"
    description: str = ""

    def __post_init__(self) -> None:
        if self.role not in ("zero", "identity", "op"):
            raise ValueError(
                f"Operation role must be 'zero', 'identity' or 'op', got {self.role!r}"
            )


def _check(obj: object) -> None:
    if not isinstance(obj, Operation):
        raise TypeError(f"operations are registered as metatune.nas.Operation, got {obj!r}")


OPERATIONS: Registry[Operation] = Registry("operation", check=_check)

for _name, _op in {
    "none": Operation("zero", "the zero operation: no connection"),
    "skip_connect": Operation("identity", "identity"),
    "nor_conv_1x1": Operation("op", "ReLU, 1x1 convolution, batch norm"),
    "nor_conv_3x3": Operation("op", "ReLU, 3x3 convolution, batch norm"),
    "avg_pool_3x3": Operation("op", "3x3 average pooling"),
    "max_pool_3x3": Operation("op", "3x3 max pooling"),
    "sep_conv_3x3": Operation("op", "separable 3x3 convolution"),
    "sep_conv_5x5": Operation("op", "separable 5x5 convolution"),
    "dil_conv_3x3": Operation("op", "dilated 3x3 convolution"),
    "dil_conv_5x5": Operation("op", "dilated 5x5 convolution"),
}.items():
    OPERATIONS.register(_name, _op)

# NAS-Bench-201's five operations and the DARTS space's eight, in their papers' order.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DARTS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
