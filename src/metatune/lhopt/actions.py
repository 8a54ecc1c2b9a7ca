"""Actions of a hyperparameter-control policy: bounded relative changes, clipping, checkpoints.

The policy never sees or sets absolute values. Each knob has a small set of relative moves
(multiplicative for the learning rate, epsilon, weight decay and 1 - beta; a logit shift for the
gradient-clipping quantile), applied to every param_group of the user's own torch optimizer so
that per-group ratios the user chose are kept, and clamped to fixed bounds.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Knob", "DEFAULT_KNOBS", "HyperparamActions", "GradientClipper", "Checkpoints"]


@dataclass(frozen=True)
class Knob:
    """One controlled hyperparameter: its relative moves and its bounds."""

    name: str
    kind: str  # "mul" (value *= choice) or "logit" (logit(value) += choice)
    choices: tuple[float, ...]
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.kind not in ("mul", "logit"):
            raise ValueError(
                f"knob {self.name!r}: kind must be 'mul' or 'logit', got {self.kind!r}"
            )
        if not self.choices:
            raise ValueError(f"knob {self.name!r} needs at least one choice")
        if not 0 < self.low < self.high:
            raise ValueError(
                f"knob {self.name!r} needs 0 < low < high, got {self.low}, {self.high}"
            )
        if (1.0 if self.kind == "mul" else 0.0) not in self.choices:
            raise ValueError(f"knob {self.name!r} needs a 'keep' move (1 for mul, 0 for logit)")
        if self.kind == "logit" and self.high >= 1:
            raise ValueError(f"logit knob {self.name!r} needs high < 1, got {self.high}")

    @property
    def keep_choice(self) -> int:
        """Index of the move that leaves the value unchanged."""
        neutral = 1.0 if self.kind == "mul" else 0.0
        return self.choices.index(neutral)

    def move(self, value: float, choice: int) -> float:
        """The value after taking move `choice`, clamped to the bounds."""
        if not 0 <= choice < len(self.choices):
            raise ValueError(
                f"knob {self.name!r}: choice must be in [0, {len(self.choices)}), got {choice}"
            )
        c = self.choices[choice]
        if self.kind == "mul":
            new = self.low if value <= 0 and c > 1 else value * c  # lets a zero decay turn on
        else:
            v = min(max(value, 1e-12), 1 - 1e-12)
            new = 1.0 / (1.0 + math.exp(-(math.log(v / (1 - v)) + c)))
        return min(max(new, self.low), self.high) if new > 0 else 0.0


# Moves as in LHOPT (Almeida et al., 2021); each set includes "keep" (1 or 0).
DEFAULT_KNOBS: tuple[Knob, ...] = (
    Knob("lr", "mul", (0.5, 0.707, 0.9, 1.0, 1.1, 1.414, 2.0), 1e-8, 1.0),
    Knob("one_minus_beta1", "mul", (0.5, 1.0, 2.0), 1e-3, 0.5),
    Knob("one_minus_beta2", "mul", (0.5, 1.0, 2.0), 1e-5, 0.5),
    Knob("eps", "mul", (0.5, 1.0, 2.0), 1e-12, 1e-3),
    Knob("weight_decay", "mul", (0.5, 1.0, 2.0), 1e-6, 1.0),
    Knob("clip_quantile", "logit", (-1.0, -0.3, 0.0, 0.3, 1.0), 0.5, 0.999),
)


def _get(group: dict[str, Any], name: str) -> float:
    if name == "one_minus_beta1":
        return 1.0 - group["betas"][0]
    if name == "one_minus_beta2":
        return 1.0 - group["betas"][1]
    return float(group[name])


def _set(group: dict[str, Any], name: str, value: float) -> None:
    if name == "one_minus_beta1":
        group["betas"] = (1.0 - value, group["betas"][1])
    elif name == "one_minus_beta2":
        group["betas"] = (group["betas"][0], 1.0 - value)
    else:
        group[name] = value


class HyperparamActions:
    """Applies one move per knob to an Adam/AdamW optimizer (and a clipper), and reports every
    knob's value relative to its start (log ratio) for the policy's observation."""

    OPTIMIZER_KNOBS = ("lr", "one_minus_beta1", "one_minus_beta2", "eps", "weight_decay")

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        clipper: GradientClipper | None = None,
        knobs: Sequence[Knob] = DEFAULT_KNOBS,
    ) -> None:
        self.check_optimizer(optimizer)
        self.optimizer = optimizer
        self.clipper = clipper
        self.knobs = tuple(k for k in knobs if k.name != "clip_quantile" or clipper is not None)
        self._start = {k.name: self._values(k.name) for k in self.knobs}

    @staticmethod
    def check_optimizer(optimizer: torch.optim.Optimizer) -> None:
        """Raise TypeError unless every param_group has Adam's hyperparameters."""
        for group in optimizer.param_groups:
            missing = [k for k in ("lr", "betas", "eps", "weight_decay") if k not in group]
            if missing:
                raise TypeError(
                    f"{type(optimizer).__name__} param_groups lack {missing}: the controller "
                    "drives torch.optim.Adam / AdamW (or an optimizer with the same keys)"
                )

    @property
    def n_choices(self) -> list[int]:
        return [len(k.choices) for k in self.knobs]

    def _values(self, name: str) -> list[float]:
        if name == "clip_quantile":
            assert self.clipper is not None
            return [self.clipper.quantile]
        return [_get(g, name) for g in self.optimizer.param_groups]

    def values(self) -> dict[str, float]:
        """Current value of every knob (of the first param group)."""
        return {k.name: self._values(k.name)[0] for k in self.knobs}

    def apply(self, choices: Sequence[int]) -> None:
        """Take one move per knob (in `self.knobs` order)."""
        if len(choices) != len(self.knobs):
            raise ValueError(f"expected {len(self.knobs)} choices, got {len(choices)}")
        for knob, c in zip(self.knobs, choices, strict=True):
            if knob.name == "clip_quantile":
                assert self.clipper is not None
                self.clipper.quantile = knob.move(self.clipper.quantile, int(c))
            else:
                for group in self.optimizer.param_groups:
                    _set(group, knob.name, knob.move(_get(group, knob.name), int(c)))

    def relative(self) -> list[float]:
        """log(current / start) per knob, averaged over param groups (0 for a zero start)."""
        out = []
        for knob in self.knobs:
            ratios = [
                math.log(v / s) if v > 0 and s > 0 else 0.0
                for v, s in zip(self._values(knob.name), self._start[knob.name], strict=True)
            ]
            out.append(sum(ratios) / len(ratios))
        return out


class GradientClipper:
    """Clips the global gradient norm at a running quantile of recent norms.

    Installed as a step pre-hook on the optimizer, so it runs inside `optimizer.step()` and the
    user's loop needs no extra call. `clipped_fraction()` feeds the policy's features.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, quantile: float = 0.95, window: int = 200):
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        self.optimizer = optimizer
        self.quantile = float(quantile)
        self._norms: deque[float] = deque(maxlen=window)
        self._clipped = 0
        self._seen = 0
        self._handle = optimizer.register_step_pre_hook(self._hook)

    def _params(self) -> Iterable[torch.Tensor]:
        for group in self.optimizer.param_groups:
            yield from (p for p in group["params"] if p.grad is not None)

    def _hook(self, *_: Any) -> None:
        params = list(self._params())
        if not params:
            return
        if len(self._norms) >= 10:
            level = sorted(self._norms)[
                min(int(self.quantile * len(self._norms)), len(self._norms) - 1)
            ]
            norm = float(torch.nn.utils.clip_grad_norm_(params, level))
            self._clipped += int(norm > level)
        else:
            norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
        if math.isfinite(norm):
            self._norms.append(norm)
        self._seen += 1

    def clipped_fraction(self, reset: bool = True) -> float:
        frac = self._clipped / self._seen if self._seen else 0.0
        if reset:
            self._clipped = self._seen = 0
        return frac

    def remove(self) -> None:
        self._handle.remove()


class Checkpoints:
    """Save and restore the parameters and optimizer state in memory, to recover from divergence."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._saved: tuple[list[torch.Tensor], dict[str, Any]] | None = None

    @property
    def has_checkpoint(self) -> bool:
        return self._saved is not None

    @torch.no_grad()
    def save(self) -> None:
        params = [p.detach().clone() for g in self.optimizer.param_groups for p in g["params"]]
        self._saved = (params, copy.deepcopy(self.optimizer.state_dict()))

    @torch.no_grad()
    def restore(self, keep_hyperparams: bool = True) -> bool:
        """Load the saved state; the current hyperparameters stay unless told otherwise.
        Returns False if nothing was saved."""
        if self._saved is None:
            return False
        params, opt_state = self._saved
        current = [
            {k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups
        ]
        live = [p for g in self.optimizer.param_groups for p in g["params"]]
        for p, saved in zip(live, params, strict=True):
            p.copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(opt_state))
        if keep_hyperparams:
            for g, hp in zip(self.optimizer.param_groups, current, strict=True):
                g.update(hp)
        return True
