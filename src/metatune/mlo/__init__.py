"""Gradient-based multilevel optimization (bilevel and deeper), Betty-style.

Subclass :class:`Problem` for each level, wire them in an :class:`Engine` with ``u2l`` / ``l2u``
dependencies and call ``engine.run()``. Hypergradient methods: ``unrolled``, ``darts`` (alias
``finite_difference``), ``neumann``, ``cg``, ``reinforce``; add more with
:func:`register_hypergradient`.
"""

from metatune.mlo.config import Config, EngineConfig
from metatune.mlo.engine import Engine
from metatune.mlo.hypergradients import (
    available_hypergradients,
    get_hypergradient,
    register_hypergradient,
)
from metatune.mlo.problem import Problem

__all__ = [
    "Config",
    "Engine",
    "EngineConfig",
    "Problem",
    "available_hypergradients",
    "get_hypergradient",
    "register_hypergradient",
]
