"""What a linear solver is: ``solver(matvec, b, options) -> x`` with ``matvec(x) ~= b``.

Vectors are lists of tensors shaped like a problem's parameters; ``matvec`` is a
Hessian-vector product of the lower problem's loss, so a solver never sees a matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, overload

from torch import Tensor

__all__ = ["LinearSolver", "MatVec", "ScaledVector"]

MatVec = Callable[[list[Tensor]], list[Tensor]]


class LinearSolver(Protocol):
    """Approximately solve ``A x = b`` for a symmetric ``A`` given only ``matvec(v) = A v``.

    ``options`` holds the solver's own options (those of its spec); a solver reads them with
    defaults and must not keep ``b`` or ``matvec`` after it returns (peak memory).
    """

    def __call__(
        self, matvec: MatVec, b: list[Tensor], options: Mapping[str, Any]
    ) -> Sequence[Tensor]: ...


class ScaledVector(Sequence[Tensor]):
    """A solver's result that is ``scale * base``: its items are the products (made on access),
    and a consumer that is linear in the result may use ``base`` and ``scale`` instead.

    The finite-difference cross term does: it steps along ``base`` by ``alpha / ||base||`` and
    multiplies the difference quotient by ``scale``, as DARTS's rule is written, instead of
    stepping along the rounded product (whose rounding the quotient would amplify by 1 / eps).
    """

    def __init__(self, base: Sequence[Tensor], scale: float) -> None:
        self.base = list(base)
        self.scale = float(scale)

    def __len__(self) -> int:
        return len(self.base)

    @overload
    def __getitem__(self, index: int) -> Tensor: ...

    @overload
    def __getitem__(self, index: slice) -> list[Tensor]: ...

    def __getitem__(self, index: int | slice) -> Tensor | list[Tensor]:
        if isinstance(index, slice):
            return [self.scale * v for v in self.base[index]]
        return self.scale * self.base[index]
