"""Data-parallel multilevel optimization over ``torch.distributed`` (one all-reduce per update).

Each process (rank) runs the same :class:`~metatune.mlo.Engine` on its own shard of every
problem's data. With ``EngineConfig(distributed=True)`` (the default process group must already
be initialized, e.g. ``dist.init_process_group("gloo", ...)``):

- at construction, every problem's parameters and buffers are broadcast from rank 0, so the
  replicas start identical;
- the full gradient of a problem (its direct gradient plus every hypergradient contribution,
  summed over ``gradient_accumulation`` training steps) is assembled locally with
  ``torch.autograd.grad`` (no communication), then flattened into one bucket and all-reduced
  **once** per optimizer step, averaged over the world size, before clipping, fp16 overflow checks
  and the optimizer step. The replicas therefore take identical steps.

What the average means: a problem's *direct* gradient is linear in its loss, so with equal-size
shards and mean losses the averaged direct gradient is the combined-batch gradient (a lowest
problem's updates are therefore exact). The hypergradient term ``v @ d lower* / d upper`` is
linear in ``v`` (the upper loss's gradient), so it is the combined-batch hypergradient when the
upper problem's data is sharded and the lower batch that the best-response Jacobian reads is the
same on every rank. When the lower problem's data is sharded too, the result is the mean of the
per-rank hypergradients (Betty's DDP semantics), not the combined-batch value for nonlinear
methods (CG, Neumann, finite differences, unrolled): that would need an all-reduce inside every
Hessian-vector product.

Modules are not wrapped in ``torch.nn.parallel.DistributedDataParallel``: its reducer fires on
``backward()``, which the engine does not use, and it broadcasts buffers on every forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn


def is_active() -> bool:
    """True when torch.distributed is available and the default process group is initialized."""
    return dist.is_available() and dist.is_initialized()


def require_process_group() -> None:
    if not dist.is_available():
        raise RuntimeError("distributed=True but torch.distributed is not available in this build")
    if not dist.is_initialized():
        raise RuntimeError(
            "distributed=True needs an initialized default process group: call "
            "torch.distributed.init_process_group(backend, rank=..., world_size=...) first"
        )


def all_reduce_gradients(params: Sequence[Tensor], group: object | None = None) -> None:
    """Average ``p.grad`` over all ranks with a single all-reduce of one flattened bucket.

    Parameters without a gradient take part as zeros (and keep a zero gradient afterwards), so
    every rank sends a bucket of the same size. Mixed dtypes are reduced in the widest one.
    """
    params = list(params)
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    dtype = grads[0].dtype
    for g in grads[1:]:
        dtype = torch.promote_types(dtype, g.dtype)
    bucket = torch.cat([g.detach().reshape(-1).to(dtype) for g in grads])
    dist.all_reduce(bucket, op=dist.ReduceOp.SUM, group=group)
    bucket /= dist.get_world_size(group)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = bucket[offset : offset + n].view_as(g).to(g.dtype).clone()
        offset += n


def all_reduce_tensors(tensors: Sequence[Tensor], group: object | None = None) -> list[Tensor]:
    """The mean over ranks of a list of tensors, with a single all-reduce (a new list)."""
    tensors = list(tensors)
    if not tensors:
        return []
    bucket = torch.cat([t.detach().reshape(-1) for t in tensors])
    dist.all_reduce(bucket, op=dist.ReduceOp.SUM, group=group)
    bucket /= dist.get_world_size(group)
    out, offset = [], 0
    for t in tensors:
        out.append(bucket[offset : offset + t.numel()].view_as(t).clone())
        offset += t.numel()
    return out


def broadcast_module(module: nn.Module, src: int = 0, group: object | None = None) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank (in place)."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=src, group=group)
