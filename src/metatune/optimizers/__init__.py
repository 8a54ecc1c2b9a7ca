"""Optimizers, looked up by name through a registry users can extend."""

from typing import Any

from metatune.optimizers import random as _random  # noqa: F401  (registers "random")
from metatune.optimizers.base import (
    OPTIMIZERS,
    Optimizer,
    SuggestContext,
    available_optimizers,
    make_optimizer,
    register_optimizer,
)
from metatune.optimizers.random import RandomOptimizer

__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "SuggestContext",
    "GPOptimizer",
    "RandomOptimizer",
    "available_optimizers",
    "make_optimizer",
    "register_optimizer",
]


def __getattr__(name: str) -> Any:
    if name == "GPOptimizer":  # imported lazily: BoTorch takes seconds to import
        from metatune.optimizers.gp import GPOptimizer

        return GPOptimizer
    raise AttributeError(name)
