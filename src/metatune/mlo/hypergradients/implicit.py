"""Implicit differentiation: ``vector @ d w* / d upper = -d2L/(d upper d w) @ H^-1 vector``.

At a minimum ``w*`` of the lower loss L, ``dL/dw (w*, upper) = 0``; differentiating that
identity gives the best-response Jacobian through the inverse Hessian ``H^-1`` of L. The
inverse-Hessian-vector product comes from a linear solver of :mod:`metatune.mlo.linear_solve`
(looked up by name), the cross term from autograd or from finite differences. The built-in
methods ``cg``, ``neumann`` and ``finite_difference`` (alias ``darts``) are instances of
:class:`ImplicitHypergradient`; a new solver gives a new method without a new hypergradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from metatune.mlo.hypergradients.finite_difference import OPTIONS as FINITE_DIFFERENCE_OPTIONS
from metatune.mlo.hypergradients.finite_difference import finite_difference_cross_term
from metatune.mlo.linear_solve import get_linear_solver
from metatune.mlo.options import merge_specs
from metatune.mlo.protocol import ProblemLike
from metatune.mlo.tensors import grad

__all__ = ["CROSS_TERMS", "ImplicitHypergradient", "cg", "finite_difference", "neumann"]

CROSS_TERMS = ("autograd", "finite_difference")


class ImplicitHypergradient:
    """A hypergradient method by implicit differentiation with the linear solver ``solver``.

    Calling it as ``method(vector, lower, upper, options)`` solves ``H x = vector`` with the
    solver (H: the Hessian of the lower loss on its last batch w.r.t. the lower parameters,
    available to the solver as Hessian-vector products) and returns ``-d2L/(d upper d w) @ x``,
    one tensor per upper trainable parameter. ``cross`` picks how that last product is taken:
    ``"autograd"`` (exact, reuses the gradient graph of the Hessian-vector products) or
    ``"finite_difference"`` (central differences of the upper gradient; option ``alpha``).

    ``option_spec`` is the solver's spec plus that of the cross term; the options are split
    between the two accordingly. The lower gradient's graph is built only if a Hessian-vector
    product or the autograd cross term needs it, so a solver that never calls ``matvec`` with
    the finite-difference cross term costs two first-order gradients.
    """

    needs_history = False
    reuses_step_graph = False

    def __init__(self, solver: str, *, cross: str = "autograd", doc: str | None = None) -> None:
        if cross not in CROSS_TERMS:
            raise ValueError(f"cross must be one of {CROSS_TERMS}, got {cross!r}")
        self.solver = solver
        self.cross = cross
        self._solve = get_linear_solver(solver)
        solver_spec = getattr(self._solve, "option_spec", None)
        self._solver_keys = None if solver_spec is None else frozenset(solver_spec)
        cross_spec = FINITE_DIFFERENCE_OPTIONS if cross == "finite_difference" else {}
        self.option_spec = merge_specs(solver_spec, cross_spec)
        if doc is not None:
            self.__doc__ = doc

    def __repr__(self) -> str:
        return f"ImplicitHypergradient({self.solver!r}, cross={self.cross!r})"

    def __call__(
        self,
        vector: Sequence[Tensor],
        lower: ProblemLike,
        upper: ProblemLike,
        options: Mapping[str, Any],
    ) -> list[Tensor]:
        keys = self._solver_keys
        solver_options = {k: v for k, v in options.items() if keys is None or k in keys}
        cross_options = {k: v for k, v in options.items() if keys is not None and k not in keys}
        params = list(lower.trainable_parameters())
        lower_grad: list[Tensor] | None = None

        def gradient() -> list[Tensor]:  # dL/dw with its graph, built on first use
            nonlocal lower_grad
            if lower_grad is None:
                lower_grad = grad(lower.loss(lower.last_batch), params, create_graph=True)
            return lower_grad

        def hvp(v: list[Tensor]) -> list[Tensor]:
            return grad(gradient(), params, v, retain_graph=True)

        x = self._solve(hvp, [v.detach() for v in vector], solver_options)
        upper_params = list(upper.trainable_parameters())
        if self.cross == "finite_difference":
            return finite_difference_cross_term(x, lower, upper_params, cross_options)
        cross = grad(gradient(), upper_params, list(x))
        return [-c for c in cross]


cg = ImplicitHypergradient(
    "cg",
    doc="""Implicit differentiation with H^-1 vector by conjugate gradient.

Options: ``iterations`` (default 10), ``tol`` (relative residual at which to stop early,
default 1e-10), ``damping`` (added to H, default 0).""",
)

neumann = ImplicitHypergradient(
    "neumann",
    doc="""Implicit differentiation with H^-1 ~= alpha * sum_{j=0..K} (I - alpha H)^j.

Converges to the implicit-function-theorem hypergradient when alpha < 2 / lambda_max(H) and the
lower problem is at a minimum. Options: ``iterations`` K (default 10), ``alpha`` (0.1).""",
)

finite_difference = ImplicitHypergradient(
    "identity",
    cross="finite_difference",
    doc="""``-scale * d2L/(d upper d w) @ vector`` by central differences.

Implicit differentiation with H^-1 replaced by ``scale * I``; DARTS's second-order rule uses
scale = the lower learning rate. Options: ``alpha`` (perturbation radius, eps = alpha /
||vector||, default 0.01), ``scale`` (default 1.0).""",
)
