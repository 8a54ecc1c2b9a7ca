"""What a hypergradient method may use of a problem: a small public protocol.

Hypergradient methods (and linear solvers through them) type against :class:`ProblemLike`, not
against :class:`~metatune.mlo.Problem`, and touch nothing else of a problem: a method written
against this protocol keeps working however the problem stores its state, and a test can hand
a method any object that has these members. This module imports nothing from metatune, so that
every other mlo module can depend on it without creating an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["ProblemLike", "StepRecord"]


@runtime_checkable
class StepRecord(Protocol):
    """One recorded optimizer step of a problem (an entry of ``problem.history``)."""

    @property
    def params(self) -> Sequence[Tensor]:
        """The problem's trainable parameters just before the step (detached snapshots)."""
        ...

    @property
    def batches(self) -> Sequence[Any]:
        """The batches of the step's training steps (several under gradient accumulation)."""
        ...

    def take_graph(self) -> list[Tensor] | None:
        """The step's direct gradient as a differentiable function of ``params``, if the engine
        kept it and it still describes the current upper parameters; at most once."""
        ...


@runtime_checkable
class ProblemLike(Protocol):
    """The members of a problem that hypergradient methods use.

    ``history`` holds the last ``config.unroll_steps`` optimizer steps, oldest first, and is
    filled only for methods registered with ``needs_history=True``; ``last_batch`` is the batch
    of the problem's latest training step (the one a best-response Jacobian is evaluated on).
    """

    @property
    def name(self) -> str: ...

    @property
    def module(self) -> nn.Module: ...

    @property
    def optimizer(self) -> torch.optim.Optimizer | None: ...

    @property
    def last_batch(self) -> Any: ...

    @property
    def history(self) -> Sequence[StepRecord]: ...

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far."""
        ...

    def loss(self, batch: Any) -> Tensor:
        """The training loss on ``batch`` as a float32 (or wider) scalar, under the problem's
        precision; differentiable w.r.t. the parameters of every problem it reads."""
        ...

    def trainable_parameters(self) -> Sequence[Tensor]:
        """The parameters this problem optimizes (those of its module that require grad)."""
        ...

    def named_trainable_parameters(self) -> Sequence[tuple[str, Tensor]]:
        """``trainable_parameters()`` with their names in the module."""
        ...
