"""Gradient-based multilevel optimization (bilevel and deeper), Betty-style.

Subclass :class:`Problem` for each level, wire them in an :class:`Engine` with ``u2l`` / ``l2u``
dependencies and call ``engine.run()``. Hypergradient methods: ``unrolled``, ``darts`` (alias
``finite_difference``), ``neumann``, ``cg``, ``reinforce``; add more with
:func:`register_hypergradient` (written against :class:`ProblemLike`, the members of a problem
a method may use), or add a linear solver for implicit differentiation with
:func:`register_linear_solver`.

Modules depend one way: ``engine -> problem -> history``, ``engine -> hypergradients ->
linear_solve``, and all of them on the neutral ``protocol``, ``tensors``, ``options`` and
``config``.
"""

from metatune.mlo.config import Config, EngineConfig
from metatune.mlo.engine import Engine
from metatune.mlo.hypergradients import (
    ImplicitHypergradient,
    available_hypergradients,
    get_hypergradient,
    register_hypergradient,
)
from metatune.mlo.linear_solve import (
    available_linear_solvers,
    get_linear_solver,
    register_linear_solver,
)
from metatune.mlo.problem import Problem
from metatune.mlo.protocol import ProblemLike

__all__ = [
    "Config",
    "Engine",
    "EngineConfig",
    "ImplicitHypergradient",
    "Problem",
    "ProblemLike",
    "available_hypergradients",
    "available_linear_solvers",
    "get_hypergradient",
    "get_linear_solver",
    "register_hypergradient",
    "register_linear_solver",
]
