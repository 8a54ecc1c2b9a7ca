"""Small helpers on lists of tensors shared by the hypergradient methods."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn


def dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def fill_none(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, like, strict=True)]


def grad(
    output: Tensor,
    inputs: Sequence[Tensor],
    grad_outputs: Sequence[Tensor] | None = None,
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
) -> list[Tensor]:
    """torch.autograd.grad with unused inputs returned as zeros (and no error)."""
    if not inputs:
        return []
    outs = [o for o in output] if isinstance(output, (list, tuple)) else [output]
    if grad_outputs is not None and not isinstance(output, (list, tuple)):
        grad_outputs = [grad_outputs]  # type: ignore[list-item]
    if not any(o.requires_grad for o in outs):
        return [torch.zeros_like(p) for p in inputs]
    keep = [i for i, o in enumerate(outs) if o.requires_grad]
    outs = [outs[i] for i in keep]
    gouts = None if grad_outputs is None else [grad_outputs[i] for i in keep]
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
def swap_parameters(module: nn.Module, named: dict[str, Tensor]) -> Iterator[None]:
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


def sgd_hyper(lower: object, options: dict) -> list[tuple[float, float]]:
    """(lr, weight_decay) for each trainable parameter of ``lower``, from its optimizer."""
    params = lower.trainable_parameters()  # type: ignore[attr-defined]
    opt = lower.optimizer  # type: ignore[attr-defined]
    by_id: dict[int, tuple[float, float]] = {}
    if opt is not None:
        for group in opt.param_groups:
            for p in group["params"]:
                by_id[id(p)] = (float(group.get("lr", 0.0)), float(group.get("weight_decay", 0.0)))
    out = []
    for p in params:
        lr, wd = by_id.get(id(p), (None, 0.0))
        if "lr" in options:
            lr = float(options["lr"])
        if lr is None:
            raise ValueError(
                f"problem {lower.name!r}: cannot find a learning rate for a parameter; "  # type: ignore[attr-defined]
                "give the optimizer this parameter or set options['lr']"
            )
        out.append((lr, wd))
    return out


def lower_step_batches(lower: object) -> tuple[list[Tensor] | None, list[list[object]]]:
    """Start parameters and per-step batches of the lower problem's recorded unroll window."""
    hist = list(lower._history)  # type: ignore[attr-defined]
    if not hist:
        return None, []
    return hist[0].params, [h.batches for h in hist]


def sgd_update(
    params: Sequence[Tensor], grads: Sequence[Tensor], hyper: Sequence[tuple[float, float]]
) -> list[Tensor]:
    """``w - lr * (g + wd * w)`` per parameter: the SGD step unrolled differentiation assumes."""
    return [w - lr * (g + wd * w) for w, g, (lr, wd) in zip(params, grads, hyper, strict=True)]


def recorded_step_vjp(
    lower: object,
    upper_params: Sequence[Tensor],
    vector: Sequence[Tensor],
    hyper: Sequence[tuple[float, float]],
) -> list[Tensor] | None:
    """``vector @ d w_1 / d upper`` for a one-step unroll window ``w_1 = w - lr (g + wd w)``,
    from the gradient graph g the engine kept while taking the step: ``-lr * vector`` pulled back
    through g (the ``w`` terms do not depend on the upper parameters). None when there is no
    graph or it no longer applies; the caller then replays the step, which gives the same numbers
    at the cost of a second forward/backward of the lower loss."""
    hist = lower._history  # type: ignore[attr-defined]
    if len(hist) != 1:
        return None
    grads = hist[-1].take_graph()
    if grads is None:
        return None
    pulled = [-v * lr for v, (lr, _) in zip(vector, hyper, strict=True)]
    return grad(grads, upper_params, pulled)


def replay(
    lower: object,
    start: Sequence[Tensor],
    steps: Sequence[Sequence[object]],
    hyper: Sequence[tuple[float, float]],
    *,
    create_graph: bool,
) -> list[Tensor]:
    """Re-run SGD steps of ``lower`` from ``start`` on ``steps`` (batches per step).

    With ``create_graph`` the result is differentiable w.r.t. anything the lower loss reads
    (the upper problems' parameters); otherwise only first-order gradients are taken.
    """
    names = [n for n, _ in lower.named_trainable_parameters()]  # type: ignore[attr-defined]
    cur = [s.detach().clone().requires_grad_(True) for s in start]
    for batches in steps:
        with swap_parameters(lower.module, dict(zip(names, cur, strict=True))):  # type: ignore[attr-defined]
            loss = sum(lower._loss(b) for b in batches) / len(batches)  # type: ignore[attr-defined]
        new = sgd_update(cur, grad(loss, cur, create_graph=create_graph), hyper)
        cur = new if create_graph else [w.detach().requires_grad_(True) for w in new]
    return cur
