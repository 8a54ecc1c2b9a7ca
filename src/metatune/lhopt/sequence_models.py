"""Small sequence models for the task space: a GRU and a tiny pre-norm transformer.

Both read a batch of sequences ([B, T] token codes, or [B, T, F] real values) and predict from
the last position, so they fit the task space's next-character and next-value tasks. Each is an
`nn.Sequential` of plain layers without buffers, so the lockstep engine can run it with its
batched kernels (`vectorized.batched` knows the layers defined here) or through `vmap`. The GRU
is unrolled with two linear maps (`aten::gru` has no vmap batching rule without autograd), and
attention is a masked softmax over q k^T (`scaled_dot_product_attention`'s CPU kernels have no
batching rule either, so vmap would run them replica by replica).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "AddPosition",
    "CausalSelfAttention",
    "GRULayer",
    "LastStep",
    "Residual",
    "gru_model",
    "tiny_transformer",
    "attention",
    "gru_scan",
]


def gru_scan(
    gates_x: torch.Tensor, step: Callable[[torch.Tensor], torch.Tensor], width: int
) -> torch.Tensor:
    """The GRU recurrence (`nn.GRU`'s gates) over [..., T, 3W] input gates, given the hidden
    map `step(h) -> [..., 3W]`; returns the hidden states [..., T, W]."""
    h = gates_x.new_zeros(*gates_x.shape[:-2], width)
    outs = []
    for t in range(gates_x.shape[-2]):
        xr, xz, xn = gates_x[..., t, :].chunk(3, dim=-1)
        hr, hz, hn = step(h).chunk(3, dim=-1)
        reset = torch.sigmoid(xr + hr)
        update = torch.sigmoid(xz + hz)
        new = torch.tanh(xn + reset * hn)
        h = (1 - update) * new + update * h
        outs.append(h)
    return torch.stack(outs, dim=-2)


def attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """Causal multi-head attention of [..., T, 3W] projections; returns [..., T, W]."""
    *lead, t, three_w = qkv.shape
    w = three_w // 3
    q, k, v = (
        z.reshape(*lead, t, heads, w // heads).transpose(-3, -2) for z in qkv.chunk(3, dim=-1)
    )
    scores = q @ k.transpose(-1, -2) / math.sqrt(w // heads)
    causal = torch.ones(t, t, dtype=torch.bool, device=qkv.device).triu(1)
    mixed = scores.masked_fill(causal, float("-inf")).softmax(-1) @ v
    return mixed.transpose(-3, -2).reshape(*lead, t, w)


class GRULayer(nn.Module):
    """One GRU layer of `width` units, unrolled over time ([B, T, F] -> [B, T, W])."""

    def __init__(self, inputs: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.input_map = nn.Linear(inputs, 3 * width)
        self.hidden_map = nn.Linear(width, 3 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gru_scan(self.input_map(x), self.hidden_map, self.width)


class LastStep(nn.Module):
    """[B, T, W] -> [B, W]: the last position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., -1, :]


class AddPosition(nn.Module):
    """Adds a learned embedding of each position ([B, T, W])."""

    def __init__(self, context: int, width: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(context, width) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.position[: x.shape[-2]]


class CausalSelfAttention(nn.Module):
    """Projections to queries, keys and values, causal attention, an output projection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(attention(self.qkv(x), self.heads))


class Residual(nn.Sequential):
    """x + layers(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x + super().forward(x)


def _inputs(vocab: int, features: int, width: int) -> nn.Module:
    """Token embedding ([B, T] int64) or a linear map of real-valued steps ([B, T, F])."""
    return nn.Embedding(vocab, width) if vocab else nn.Linear(features, width)


def gru_model(
    vocab: int, features: int, width: int, depth: int, outputs: int, norm: bool
) -> nn.Sequential:
    """Inputs -> `depth` GRU layers -> last step -> (LayerNorm) -> linear head."""
    return nn.Sequential(
        _inputs(vocab, features, width),
        *(GRULayer(width, width) for _ in range(depth)),
        LastStep(),
        nn.LayerNorm(width) if norm else nn.Identity(),
        nn.Linear(width, outputs),
    )


def tiny_transformer(
    vocab: int,
    features: int,
    width: int,
    depth: int,
    outputs: int,
    context: int,
    activation: Callable[[], nn.Module],
) -> nn.Sequential:
    """Inputs + positions -> `depth` pre-norm blocks (attention, then a 2x-wide MLP, each a
    residual) -> LayerNorm -> last step -> linear head."""
    heads = 2 if width >= 16 else 1
    blocks: list[nn.Module] = []
    for _ in range(depth):
        blocks.append(Residual(nn.LayerNorm(width), CausalSelfAttention(width, heads)))
        blocks.append(
            Residual(
                nn.LayerNorm(width),
                nn.Linear(width, 2 * width),
                activation(),
                nn.Linear(2 * width, width),
            )
        )
    return nn.Sequential(
        _inputs(vocab, features, width),
        AddPosition(context, width),
        *blocks,
        nn.LayerNorm(width),
        LastStep(),
        nn.Linear(width, outputs),
    )
