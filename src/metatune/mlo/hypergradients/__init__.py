"""Hypergradient methods: best-response vector-Jacobian products, in one registry.

A method is a callable ``fn(vector, lower, upper, options) -> list[Tensor]``: given ``vector``
(d loss / d lower parameters), it returns ``vector @ d lower* / d upper`` (one tensor per upper
trainable parameter). ``lower`` and ``upper`` are used only through the public protocol
:class:`~metatune.mlo.protocol.ProblemLike`. The engine chains these along every path of the
dependency graph, so every registered method works on multi-hop paths.

Built-ins: ``cg``, ``neumann`` and ``finite_difference`` (alias ``darts``) are implicit
differentiation with a linear solver from :mod:`metatune.mlo.linear_solve`
(:class:`~metatune.mlo.hypergradients.implicit.ImplicitHypergradient`); ``unrolled`` is
iterative differentiation through the recorded steps; ``reinforce`` a zero-order estimate.
Register new ones with ``@register_hypergradient``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor

# the built-in modules are bound under private aliases: binding a function named like its
# module (unrolled.unrolled) here would hide the module from `import ...hypergradients.unrolled`
import metatune.mlo.hypergradients.implicit as _implicit
import metatune.mlo.hypergradients.reinforce as _reinforce
import metatune.mlo.hypergradients.unrolled as _unrolled
from metatune._registry import Registry
from metatune.mlo.hypergradients.implicit import ImplicitHypergradient
from metatune.mlo.options import OptionSpec, validate_options
from metatune.mlo.protocol import ProblemLike

__all__ = [
    "HYPERGRADIENTS",
    "HypergradientFn",
    "ImplicitHypergradient",
    "OptionSpec",
    "available_hypergradients",
    "check_options",
    "get_hypergradient",
    "register_hypergradient",
]

HypergradientFn = Callable[
    [Sequence[Tensor], ProblemLike, ProblemLike, Mapping[str, Any]], list[Tensor]
]


def _check_method(obj: Any) -> None:
    if not callable(obj):
        raise TypeError(
            f"a hypergradient method must be callable as fn(vector, lower, upper, options), "
            f"got {obj!r}"
        )


HYPERGRADIENTS: Registry[HypergradientFn] = Registry("hypergradient method", check=_check_method)


def register_hypergradient(
    name: str,
    *,
    needs_history: bool = False,
    options: OptionSpec | None = None,
    reuses_step_graph: bool = False,
    overwrite: bool = False,
) -> Callable[[HypergradientFn], HypergradientFn]:
    """Decorator registering a hypergradient method under ``name``.

    ``needs_history=True`` makes the engine keep the lower problem's last ``unroll_steps``
    parameter snapshots and batches (``lower.history``), as unrolled differentiation needs.
    ``options`` declares the accepted options as ``{name: (type, min, max)}`` (default: the
    method's own ``option_spec``, as an :class:`ImplicitHypergradient` has); when there is a
    spec, the engine refuses unknown options and out-of-range values before any work is done.
    ``reuses_step_graph=True`` lets the engine keep the differentiable gradient of a one-step
    unroll window in the history (see ``HistoryEntry.take_graph``). A name is registered once:
    registering it again, even with the same function, needs ``overwrite=True``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")

    def deco(fn: HypergradientFn) -> HypergradientFn:
        # stricter than Registry.register, which lets the same object register twice: a second
        # registration of a name is more likely a clash than a module imported again
        if name in HYPERGRADIENTS and not overwrite:
            raise ValueError(
                f"hypergradient method {name!r} is already registered; pass overwrite=True"
            )
        spec = options if options is not None else getattr(fn, "option_spec", None)
        HYPERGRADIENTS.register(name, fn, overwrite=True)
        fn.needs_history = needs_history  # type: ignore[attr-defined]
        fn.option_spec = spec  # type: ignore[attr-defined]
        fn.reuses_step_graph = reuses_step_graph  # type: ignore[attr-defined]
        return fn

    return deco


def get_hypergradient(name: str) -> HypergradientFn:
    """The method registered under ``name``; an unknown name's error lists the known ones."""
    return HYPERGRADIENTS.get(name)


def available_hypergradients() -> list[str]:
    """Every registered method name, sorted."""
    return HYPERGRADIENTS.names()


def check_options(method: str, options: Mapping[str, Any], where: str) -> None:
    """Raise a ValueError naming the option and its allowed range if ``options`` is invalid
    for ``method`` (a method registered without a spec accepts anything)."""
    spec = getattr(get_hypergradient(method), "option_spec", None)
    if spec is not None:
        validate_options(spec, options, where, method)


register_hypergradient("cg")(_implicit.cg)
register_hypergradient("neumann")(_implicit.neumann)
register_hypergradient("finite_difference")(_implicit.finite_difference)
register_hypergradient("darts")(_implicit.finite_difference)  # DARTS's name for the same method
register_hypergradient(
    "unrolled", needs_history=True, options=_unrolled.OPTIONS, reuses_step_graph=True
)(_unrolled.unrolled)
register_hypergradient("reinforce", needs_history=True, options=_reinforce.OPTIONS)(
    _reinforce.reinforce
)
