"""Torch-side gradient measurements for the noise estimate: Adam preconditioning, squared norms,
snapshots of accumulated gradients, and the DDP communication hook that records each rank's
local squared norm before the all-reduce (so the per-rank norms cost no extra gradient traffic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "LocalNormHook",
    "adam_preconditioner",
    "dot",
    "grads_of",
    "is_adam_type",
    "sqnorm",
]


def is_adam_type(optimizer: torch.optim.Optimizer) -> bool:
    """Adam-family optimizers (Adam, AdamW, NAdam, RAdam, Adamax, ...): `betas` and a name
    with "adam" in it; they keep a second moment the noise can be preconditioned by."""
    return "betas" in optimizer.defaults and "adam" in type(optimizer).__name__.lower()


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor], floor: float = 0.1
) -> list[torch.Tensor | None] | None:
    """1 / (sqrt(v_hat) + eps) per parameter from Adam's bias-corrected second moment, or None
    while the optimizer has not taken a step (no v yet): the noise is then measured raw.

    sqrt(v_hat) is floored at `floor` times its mean over the model: early in training a few
    coordinates with a near-zero second moment get weights up to 1/eps and their noise swamps
    every other coordinate's (the smoothed |G|^2 stays negative and the noise scale infinite).
    The noise scale is a ratio, so a common scale of the weights does not matter; the floor
    only bounds their spread."""
    group_of = {}
    for g in optimizer.param_groups:
        for p in g["params"]:
            group_of[id(p)] = g
    roots: list[torch.Tensor | None] = []
    eps: list[float] = []
    total, count = 0.0, 0
    for p in params:
        st = optimizer.state.get(p, {})
        v = st.get("exp_avg_sq")
        if v is None:
            roots.append(None)
            eps.append(0.0)
            continue
        g = group_of[id(p)]
        step = st.get("step", 1)
        step = float(step.item() if torch.is_tensor(step) else step)
        beta2 = g["betas"][1]
        root = (v / (1.0 - beta2 ** max(step, 1.0))).sqrt()
        roots.append(root)
        eps.append(float(g.get("eps", 1e-8)))
        total += float(root.sum())
        count += root.numel()
    if not count:
        return None
    low = floor * total / count
    return [
        None if r is None else 1.0 / (r.clamp(min=low) + e) for r, e in zip(roots, eps, strict=True)
    ]


def grads_of(params: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    return [p.grad for p in params]


def sqnorm(
    tensors: Sequence[torch.Tensor | None],
    weights: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """sum_i |w_i * t_i|^2 as a 0-d tensor (no host sync); None tensors count as zero."""
    total: torch.Tensor | None = None
    for i, t in enumerate(tensors):
        if t is None:
            continue
        w = weights[i] if weights is not None else None
        x = t if w is None else t * w
        s = torch.dot(x.reshape(-1), x.reshape(-1)) if x.numel() else x.sum()
        total = s if total is None else total + s
    if total is None:
        return torch.zeros(())
    return total.detach().double()


def dot(a: Sequence[torch.Tensor | None], b: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """sum_i <a_i, b_i> as a 0-d float64 tensor; pairs with a None count as zero."""
    total: torch.Tensor | None = None
    for x, y in zip(a, b, strict=True):
        if x is None or y is None or not x.numel():
            continue
        d = torch.dot(x.reshape(-1), y.reshape(-1))
        total = d if total is None else total + d
    if total is None:
        return torch.zeros((), dtype=torch.float64)
    return total.detach().double()


class LocalNormHook:
    """A DDP communication hook that averages each bucket like the default hook and carries
    this rank's (preconditioned, scaled) squared norm of the bucket in one extra element of the
    same all-reduce, so the per-rank norms cost no collective of their own.

    Register with ``ddp_model.register_comm_hook(hook, LocalNormHook.hook)``. Before each
    synchronising backward call `reset` and set `weights` (parameter id -> preconditioner, or
    None) and `scale` (the factor that turns this rank's accumulated gradient into its mean
    gradient); afterwards `mean_sq` is the mean over ranks of |local mean gradient|^2.
    """

    def __init__(self, process_group=None) -> None:
        self.process_group = process_group
        self.weights: dict[int, torch.Tensor] | None = None
        self.scale = 1.0
        self.mean_sq: torch.Tensor | None = None

    def reset(self) -> None:
        self.mean_sq = None

    def _add(self, value: torch.Tensor) -> None:
        self.mean_sq = value if self.mean_sq is None else self.mean_sq + value

    @staticmethod
    def hook(state: LocalNormHook, bucket) -> torch.futures.Future[torch.Tensor]:
        import torch.distributed as dist

        buf = bucket.buffer()
        if state.weights is None:
            s = torch.dot(buf, buf)
        else:
            s = torch.zeros((), dtype=buf.dtype, device=buf.device)
            for p, g in zip(bucket.parameters(), bucket.gradients(), strict=False):
                w = state.weights.get(id(p))
                x = g if w is None else g * w
                s = s + torch.dot(x.reshape(-1), x.reshape(-1))
        group = state.process_group or dist.group.WORLD
        world = dist.get_world_size(group)
        flat = torch.cat([buf, (s * state.scale**2).reshape(1).to(buf.dtype)])
        flat.div_(world)
        fut = dist.all_reduce(flat, group=group, async_op=True).get_future()

        def done(f: torch.futures.Future) -> torch.Tensor:
            out = f.value()[0]
            state._add(out[-1].detach().double())
            buf.copy_(out[:-1])
            return buf

        return fut.then(done)


# DDP checks the hook's return annotation as an object, not the string PEP 563 leaves.
LocalNormHook.hook.__annotations__["return"] = torch.futures.Future[torch.Tensor]
