"""Linear solvers for implicit differentiation, one module per solver, in one registry.

Implicit differentiation needs ``x = H^-1 v`` for the lower problem's Hessian H, which is never
formed: a solver gets only Hessian-vector products (see :class:`LinearSolver`). Solvers are kept
apart from the hypergradient that uses them (as TorchOpt keeps ``linear_solve`` apart from
``implicit_diff``), so a new implicit method is just a new solver::

    @register_linear_solver("richardson", options={"iterations": (int, 0, None)})
    def richardson(matvec, b, options): ...

    register_hypergradient("richardson")(ImplicitHypergradient("richardson"))

Built-ins: ``cg`` (conjugate gradient), ``neumann`` (truncated Neumann series) and
``identity`` (``scale * I``, used by the finite-difference method).
"""

from __future__ import annotations

from typing import Any

from metatune._registry import Registry
from metatune.mlo.linear_solve.base import LinearSolver, MatVec
from metatune.mlo.linear_solve.cg import OPTIONS as CG_OPTIONS
from metatune.mlo.linear_solve.cg import solve_cg
from metatune.mlo.linear_solve.identity import OPTIONS as IDENTITY_OPTIONS
from metatune.mlo.linear_solve.identity import solve_identity
from metatune.mlo.linear_solve.neumann import OPTIONS as NEUMANN_OPTIONS
from metatune.mlo.linear_solve.neumann import solve_neumann
from metatune.mlo.options import OptionSpec

__all__ = [
    "LINEAR_SOLVERS",
    "LinearSolver",
    "MatVec",
    "available_linear_solvers",
    "get_linear_solver",
    "register_linear_solver",
]


def _check_solver(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(
            f"a linear solver must be callable as solver(matvec, b, options), got {obj!r}"
        )


LINEAR_SOLVERS: Registry[LinearSolver] = Registry("linear solver", check=_check_solver)


def register_linear_solver(
    name: str,
    solver: LinearSolver | None = None,
    *,
    options: OptionSpec | None = None,
    overwrite: bool = False,
) -> Any:
    """Register ``solver`` under ``name`` (as a call, or a decorator without ``solver``).

    ``options`` declares the solver's options as ``{name: (type, min, max)}``; it becomes
    ``solver.option_spec`` and part of the spec of every implicit method built on the solver,
    so bad values are refused before any work is done. None accepts any option unchecked.
    """

    def deco(fn: LinearSolver) -> LinearSolver:
        LINEAR_SOLVERS.register(name, fn, overwrite=overwrite)
        fn.option_spec = options  # type: ignore[attr-defined]
        return fn

    return deco if solver is None else deco(solver)


def get_linear_solver(name: str) -> LinearSolver:
    """The solver registered as ``name``; an unknown name's error lists the known ones."""
    return LINEAR_SOLVERS.get(name)


def available_linear_solvers() -> list[str]:
    """Every registered solver name, sorted."""
    return LINEAR_SOLVERS.names()


register_linear_solver("cg", solve_cg, options=CG_OPTIONS)
register_linear_solver("neumann", solve_neumann, options=NEUMANN_OPTIONS)
register_linear_solver("identity", solve_identity, options=IDENTITY_OPTIONS)
