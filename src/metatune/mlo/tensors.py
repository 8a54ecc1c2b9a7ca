"""Helpers on lists of tensors shared by the engine, the hypergradient methods and the solvers.

A problem's parameters are a list of tensors, so vectors in parameter space (gradients,
Hessian-vector products, solver iterates) are lists of tensors too. This module depends on
torch only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["dot", "fill_none", "grad", "swap_parameters"]


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """The inner product of two parameter-space vectors, as a scalar tensor."""
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def fill_none(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    """``grads`` with every None replaced by zeros shaped like the matching tensor of ``like``."""
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, like, strict=True)]


def grad(
    output: Tensor | Sequence[Tensor],
    inputs: Sequence[Tensor],
    grad_outputs: Tensor | Sequence[Tensor] | None = None,
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
) -> list[Tensor]:
    """torch.autograd.grad with unused inputs returned as zeros (and no error).

    ``output`` may be a list of tensors (with ``grad_outputs`` a list of the same length): the
    result is then the vector-Jacobian product ``grad_outputs @ d output / d inputs``; outputs
    that do not require grad contribute nothing.
    """
    if not inputs:
        return []
    outs = list(output) if isinstance(output, (list, tuple)) else [output]
    if grad_outputs is not None and not isinstance(output, (list, tuple)):
        grad_outputs = [grad_outputs]  # type: ignore[list-item]
    if not any(o.requires_grad for o in outs):
        return [torch.zeros_like(p) for p in inputs]
    keep = [i for i, o in enumerate(outs) if o.requires_grad]
    outs = [outs[i] for i in keep]
    gouts = None if grad_outputs is None else [grad_outputs[i] for i in keep]  # type: ignore[index]
    g = torch.autograd.grad(
        outs,
        list(inputs),
        grad_outputs=gouts,
        retain_graph=retain_graph or create_graph,
        create_graph=create_graph,
        allow_unused=True,
    )
    return fill_none(g, inputs)


@contextlib.contextmanager
def swap_parameters(module: nn.Module, named: Mapping[str, Tensor]) -> Iterator[None]:
    """Temporarily replace ``module``'s parameters by (possibly non-leaf) tensors.

    The same reparametrization torch.func.functional_call performs, but kept open as a context
    so user code calling ``self.module(x)`` or reading ``self.module.weight`` sees the tensors.
    """
    saved: list[tuple[nn.Module, str, object]] = []
    try:
        for name, tensor in named.items():
            prefix, _, attr = name.rpartition(".")
            sub = module.get_submodule(prefix) if prefix else module
            saved.append((sub, attr, sub._parameters[attr]))
            sub._parameters[attr] = tensor  # type: ignore[assignment]
        yield
    finally:
        for sub, attr, old in reversed(saved):
            sub._parameters[attr] = old  # type: ignore[assignment]
