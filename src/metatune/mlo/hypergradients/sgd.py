"""The lower problem's recorded SGD steps, replayed: shared by ``unrolled`` and ``reinforce``.

Both methods need the lower parameters as a function of the upper ones over the last unroll
window; they get it by re-running the window's steps from the recorded start on the recorded
batches, as plain SGD with the optimizer's learning rate and weight decay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from metatune.mlo.protocol import ProblemLike
from metatune.mlo.tensors import grad, swap_parameters

__all__ = ["recorded_step_vjp", "replay", "sgd_hyper", "sgd_update", "unroll_window"]


def sgd_hyper(lower: ProblemLike, options: Mapping[str, Any]) -> list[tuple[float, float]]:
    """(lr, weight_decay) for each trainable parameter of ``lower``, from its optimizer;
    ``options["lr"]`` overrides the learning rate."""
    params = lower.trainable_parameters()
    opt = lower.optimizer
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
                f"problem {lower.name!r}: cannot find a learning rate for a parameter; "
                "give the optimizer this parameter or set options['lr']"
            )
        out.append((lr, wd))
    return out


def unroll_window(lower: ProblemLike) -> tuple[Sequence[Tensor] | None, list[Sequence[Any]]]:
    """Start parameters and per-step batches of the lower problem's recorded unroll window
    (``(None, [])`` before its first recorded step)."""
    hist = list(lower.history)
    if not hist:
        return None, []
    return hist[0].params, [h.batches for h in hist]


def sgd_update(
    params: Sequence[Tensor], grads: Sequence[Tensor], hyper: Sequence[tuple[float, float]]
) -> list[Tensor]:
    """``w - lr * (g + wd * w)`` per parameter: the SGD step unrolled differentiation assumes."""
    return [w - lr * (g + wd * w) for w, g, (lr, wd) in zip(params, grads, hyper, strict=True)]


def recorded_step_vjp(
    lower: ProblemLike,
    upper_params: Sequence[Tensor],
    vector: Sequence[Tensor],
    hyper: Sequence[tuple[float, float]],
) -> list[Tensor] | None:
    """``vector @ d w_1 / d upper`` for a one-step unroll window ``w_1 = w - lr (g + wd w)``,
    from the gradient graph g the engine kept while taking the step: ``-lr * vector`` pulled back
    through g (the ``w`` terms do not depend on the upper parameters). None when there is no
    graph or it no longer applies; the caller then replays the step, which gives the same numbers
    at the cost of a second forward/backward of the lower loss."""
    hist = lower.history
    if len(hist) != 1:
        return None
    grads = hist[-1].take_graph()
    if grads is None:
        return None
    pulled = [-v * lr for v, (lr, _) in zip(vector, hyper, strict=True)]
    return grad(grads, upper_params, pulled)


def replay(
    lower: ProblemLike,
    start: Sequence[Tensor],
    steps: Sequence[Sequence[Any]],
    hyper: Sequence[tuple[float, float]],
    *,
    create_graph: bool,
) -> list[Tensor]:
    """Re-run SGD steps of ``lower`` from ``start`` on ``steps`` (batches per step).

    With ``create_graph`` the result is differentiable w.r.t. anything the lower loss reads
    (the upper problems' parameters); otherwise only first-order gradients are taken.
    """
    names = [n for n, _ in lower.named_trainable_parameters()]
    cur = [s.detach().clone().requires_grad_(True) for s in start]
    for batches in steps:
        with swap_parameters(lower.module, dict(zip(names, cur, strict=True))):
            loss = sum(lower.loss(b) for b in batches) / len(batches)
        new = sgd_update(cur, grad(loss, cur, create_graph=create_graph), hyper)
        cur = new if create_graph else [w.detach().requires_grad_(True) for w in new]
    return cur
