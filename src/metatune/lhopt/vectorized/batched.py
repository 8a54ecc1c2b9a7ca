"""Stacked forward passes written with batched kernels, for the layers the task space uses.

`torch.func.vmap` runs any module over stacked parameters, but on a CPU each vmapped operation of
a tiny model costs several times the kernel it stands for (a vmapped `linear` of 16 replicas of a
32x32 layer took about 5x a `baddbmm` of the same shapes), and a tiny model's step is made of
such operations. `compile_stacked(module)` writes the forward pass of an `nn.Sequential` of
Linear, LayerNorm, Embedding, Conv2d, MaxPool2d, Flatten, elementwise activations and the
sequence layers of `lhopt.sequence_models` (GRU, attention, positions, residual blocks) directly
on [R, ...] tensors (`baddbmm`, a grouped convolution, indexed gathers), and returns None for any
other module, for which the engine keeps `vmap`. Both give each replica the function of its own
module, up to the rounding of batched reductions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from metatune.lhopt.sequence_models import (
    AddPosition,
    CausalSelfAttention,
    GRULayer,
    LastStep,
    Residual,
    attention,
    gru_scan,
)

__all__ = ["compile_stacked", "stacked_loss", "StackedForward"]

Params = dict[str, torch.Tensor]
StackedForward = Callable[[Params, torch.Tensor], torch.Tensor]
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Identity)


def _linear(prefix: str, layer: nn.Linear) -> StackedForward:
    has_bias = layer.bias is not None

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        w = params[f"{prefix}weight"]  # [R, O, I]
        lead = x.shape[:-1]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        if has_bias:
            out = torch.baddbmm(params[f"{prefix}bias"].unsqueeze(1), flat, w.transpose(1, 2))
        else:
            out = torch.bmm(flat, w.transpose(1, 2))
        return out.reshape(*lead, w.shape[1])

    return forward


def _layer_norm(prefix: str, layer: nn.LayerNorm) -> StackedForward:
    shape, eps, affine = tuple(layer.normalized_shape), layer.eps, layer.elementwise_affine
    has_bias = affine and layer.bias is not None

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x, shape, None, None, eps)
        if affine:
            view = (x.shape[0],) + (1,) * (x.dim() - 1 - len(shape)) + shape
            y = y * params[f"{prefix}weight"].reshape(view)
            if has_bias:
                y = y + params[f"{prefix}bias"].reshape(view)
        return y

    return forward


def _embedding(prefix: str, layer: nn.Embedding) -> StackedForward:
    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        w = params[f"{prefix}weight"]  # [R, V, E]
        rows = torch.arange(w.shape[0]).view(-1, *([1] * (x.dim() - 1)))
        return w[rows, x]

    return forward


def _conv2d(prefix: str, layer: nn.Conv2d) -> StackedForward:
    stride, padding, dilation = layer.stride, layer.padding, layer.dilation
    has_bias = layer.bias is not None

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        w = params[f"{prefix}weight"]  # [R, O, C, k, k]
        r, b = x.shape[:2]
        grouped = x.transpose(0, 1).reshape(b, r * x.shape[2], *x.shape[3:])
        bias = params[f"{prefix}bias"].reshape(-1) if has_bias else None
        out = nn.functional.conv2d(
            grouped, w.reshape(-1, *w.shape[2:]), bias, stride, padding, dilation, groups=r
        )
        return out.reshape(b, r, w.shape[1], *out.shape[2:]).transpose(0, 1)

    return forward


def _pool(layer: nn.MaxPool2d) -> StackedForward:
    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        out = layer(x.reshape(-1, *x.shape[2:]))
        return out.reshape(*x.shape[:2], *out.shape[1:])

    return forward


def _flatten(layer: nn.Flatten) -> StackedForward:
    # one more leading axis: a non-negative dim moves by one, a negative one stays
    start = layer.start_dim + 1 if layer.start_dim >= 0 else layer.start_dim
    end = layer.end_dim + 1 if layer.end_dim >= 0 else layer.end_dim

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(start, end)

    return forward


def _elementwise(layer: nn.Module) -> StackedForward:
    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        return layer(x)

    return forward


def _gru(prefix: str, layer: GRULayer) -> StackedForward:
    input_map = _linear(f"{prefix}input_map.", layer.input_map)
    hidden_map = _linear(f"{prefix}hidden_map.", layer.hidden_map)

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        return gru_scan(input_map(params, x), lambda h: hidden_map(params, h), layer.width)

    return forward


def _position(prefix: str) -> StackedForward:
    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        position = params[f"{prefix}position"]  # [R, context, W]
        view = (x.shape[0],) + (1,) * (x.dim() - 3) + tuple(position.shape[1:])
        return x + position[:, : x.shape[-2]].reshape(view)

    return forward


def _self_attention(prefix: str, layer: CausalSelfAttention) -> StackedForward:
    qkv = _linear(f"{prefix}qkv.", layer.qkv)
    out = _linear(f"{prefix}out.", layer.out)

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        return out(params, attention(qkv(params, x), layer.heads))

    return forward


def _residual(prefix: str, layer: Residual) -> StackedForward | None:
    inner = _sequence(prefix, layer)
    if inner is None:
        return None

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        return x + inner(params, x)

    return forward


def _layer(prefix: str, layer: nn.Module) -> StackedForward | None:
    if type(layer) is GRULayer:
        return _gru(prefix, layer)
    if type(layer) is AddPosition:
        return _position(prefix)
    if type(layer) is CausalSelfAttention:
        return _self_attention(prefix, layer)
    if type(layer) is Residual:
        return _residual(prefix, layer)
    if type(layer) is LastStep:
        return _elementwise(layer)  # indexes the last axes only
    if type(layer) is nn.Linear:
        return _linear(prefix, layer)
    if type(layer) is nn.LayerNorm and len(layer.normalized_shape) == 1:
        return _layer_norm(prefix, layer)
    if type(layer) is nn.Embedding and layer.max_norm is None:
        return _embedding(prefix, layer)
    if type(layer) is nn.Conv2d and layer.groups == 1 and layer.padding_mode == "zeros":
        return _conv2d(prefix, layer)
    if type(layer) is nn.MaxPool2d:
        return _pool(layer)
    if type(layer) is nn.Flatten:
        return _flatten(layer)
    if type(layer) in _ELEMENTWISE:
        return _elementwise(layer)
    return None


def _sequence(prefix: str, module: nn.Sequential) -> StackedForward | None:
    steps = []
    for name, layer in module.named_children():
        step = _layer(f"{prefix}{name}.", layer)
        if step is None:
            return None
        steps.append(step)

    def forward(params: Params, x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(params, x)
        return x

    return forward


def compile_stacked(module: nn.Module) -> StackedForward | None:
    """A forward pass over stacked parameters ([R, ...]) and inputs ([R, B, ...]) for an
    `nn.Sequential` of supported layers; None if any layer is not supported."""
    if type(module) is not nn.Sequential:
        return None
    return _sequence("", module)


def stacked_loss(name: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-replica mean loss ([R]) of outputs [R, B, ...] against targets [R, B] (or
    [R, B, D] for MSE on several target columns)."""
    r, b = y.shape[:2]
    if name == "mse":
        out = out.squeeze(-1) if y.dim() == 2 else out
        return nn.functional.mse_loss(out, y, reduction="none").reshape(r, -1).mean(1)
    if name == "ce":
        flat = nn.functional.cross_entropy(
            out.reshape(r * b, out.shape[-1]), y.reshape(r * b), reduction="none"
        )
        return flat.reshape(r, b).mean(1)
    raise ValueError(f"loss must be 'mse' or 'ce', got {name!r}")
