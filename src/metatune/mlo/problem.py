"""A level of a multilevel optimization problem: module, optimizer, data and a training step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from metatune.mlo.config import Config
from metatune.mlo.history import StepHistory


class Problem:
    """One level of a multilevel problem.

    Subclass it and write ``training_step(self, batch) -> loss``. Other problems of the same
    engine are reachable as attributes by name (``self.inner``, ``self.outer``); call ``self(x)``
    (or ``self.module(x)``) for this problem's forward pass.

    It implements :class:`~metatune.mlo.protocol.ProblemLike`, all that hypergradient methods
    use of it (``loss``, ``last_batch``, ``history``, ``trainable_parameters``, ``optimizer``,
    ``step_count``, ...). The methods under "engine hooks" are what the :class:`Engine` calls
    to step it; user code rarely needs them.
    """

    _RESERVED = frozenset(
        {"name", "module", "optimizer", "scheduler", "config", "data", "last_batch"}
    )

    def __init__(
        self,
        name: str,
        module: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        data: Iterable[Any] | None = None,
        scheduler: Any | None = None,
        config: Config | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be a Python identifier, got {name!r}")
        if name.startswith("_") or name in self._RESERVED or hasattr(type(self), name):
            raise ValueError(
                f"name {name!r} clashes with a Problem attribute; choose another problem name"
            )
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        self.name = name
        self.module = module
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.config = config if config is not None else Config()
        if not isinstance(self.config, Config):
            raise TypeError(f"config must be a metatune.mlo.Config, got {type(config).__name__}")
        self.data = data
        self.last_batch: Any = None  # the batch of the latest training step
        self._history = StepHistory(self.config.unroll_steps)
        self._peers: dict[str, Problem] = {}
        self._iter: Iterator[Any] | None = None
        self._epoch_pos = 0
        self._count = 0  # training_step calls
        self._steps = 0  # optimizer steps
        # the module's named parameters, listed once while Engine.run() runs: walking the module
        # tree on every call was a measurable share of a small model's step
        self._named_params: list[tuple[str, nn.Parameter]] | None = None
        self._loss_scale = 2.0**16 if self.config.precision == "fp16" else 1.0
        self._good_steps = 0

    # ------------------------------------------------------------------ user-facing
    def training_step(self, batch: Any) -> Tensor:
        """Return this problem's scalar loss on ``batch``; override in a subclass."""
        raise NotImplementedError(f"problem {self.name!r} must implement training_step(batch)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def __getattr__(self, item: str) -> Any:
        # Called only when normal lookup fails: resolve peer problems by name.
        peers = self.__dict__.get("_peers")
        if peers is not None and item in peers:
            return peers[item]
        raise AttributeError(
            f"{type(self).__name__} {self.__dict__.get('name', '?')!r} has no attribute {item!r}"
            + (f"; known problems: {sorted(peers)}" if peers else "")
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the module that require gradients (the ones this problem optimizes)."""
        return [p for _, p in self.named_trainable_parameters()]

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``trainable_parameters()`` with their names in the module."""
        named = self._named_params
        if named is None:
            named = self.module.named_parameters()
        return [(n, p) for n, p in named if p.requires_grad]

    def loss(self, batch: Any) -> Tensor:
        """The training loss on ``batch`` under this problem's precision, as a float32 (or wider)
        0-d tensor: ``training_step`` run under autocast for bf16/fp16, its result checked."""
        with self._autocast():
            loss = self.training_step(batch)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise TypeError(
                f"training_step of problem {self.name!r} must return a scalar tensor, got {loss!r}"
            )
        if loss.dim() != 0:  # a 0-d loss is returned as is: no view node in its graph
            loss = loss.reshape(())
        return loss.float() if loss.dtype in (torch.bfloat16, torch.float16) else loss

    @property
    def history(self) -> StepHistory:
        """The last ``config.unroll_steps`` optimizer steps (parameter snapshots and batches),
        oldest first; recorded only when the hypergradient method needs it."""
        return self._history

    @property
    def step_count(self) -> int:
        """Number of optimizer steps taken."""
        return self._steps

    @property
    def training_step_count(self) -> int:
        """Number of training steps taken (``gradient_accumulation`` per optimizer step)."""
        return self._count

    @property
    def loss_scale(self) -> float:
        """The factor the loss is multiplied by before differentiation: 1 except under fp16,
        where it is adapted dynamically (halved on an overflow, doubled after 2000 good steps)."""
        return self._loss_scale

    # ------------------------------------------------------------------ engine hooks
    def set_peers(self, peers: Mapping[str, Problem]) -> None:
        """Make the other problems of an engine reachable as attributes by their names."""
        self._peers = {n: q for n, q in peers.items() if n != self.name}

    def next_batch(self) -> Any:
        """The next batch of ``data`` (None without data), cycling a re-iterable at its end."""
        if self.data is None:
            return None
        if self._iter is None:
            self._iter = iter(self.data)
        try:
            batch = next(self._iter)
        except StopIteration:
            if iter(self.data) is self.data:
                raise RuntimeError(
                    f"data of problem {self.name!r} is a one-shot iterator and is exhausted; "
                    "pass a re-iterable (list, DataLoader) so it can be cycled"
                ) from None
            self._iter = iter(self.data)
            self._epoch_pos = 0
            try:
                batch = next(self._iter)
            except StopIteration:
                raise RuntimeError(f"data of problem {self.name!r} is empty") from None
        self._epoch_pos += 1
        return batch

    def accumulate_gradients(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
        """Add one training step's gradients into ``.grad`` (divided by
        ``gradient_accumulation``) and count the step; True when an optimizer step is due."""
        acc = self.config.gradient_accumulation
        for p, g in zip(params, grads, strict=True):
            if acc != 1:
                g = g / acc
            p.grad = g if p.grad is None else p.grad + g
        self._count += 1
        return self._count % acc == 0

    def optimizer_step(self, params: Sequence[Tensor] | None = None) -> None:
        """Step the optimizer (and scheduler) on the accumulated ``.grad`` of ``params``
        (default: the trainable parameters), clip first if configured, clear ``.grad`` and count
        the step. Under fp16 a step with a non-finite gradient is skipped and the scale halved."""
        params = self.trainable_parameters() if params is None else list(params)
        if self.config.precision == "fp16":
            finite = all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)
            if not finite:  # dynamic loss scaling: skip the step, halve the scale
                self._loss_scale /= 2.0
                self._good_steps = 0
                for p in params:
                    p.grad = None
                self._steps += 1  # a skipped step still counts: the schedule stays as planned
                return
            self._good_steps += 1
            if self._good_steps % 2000 == 0:
                self._loss_scale *= 2.0
        if self.config.gradient_clipping is not None:
            torch.nn.utils.clip_grad_norm_(params, self.config.gradient_clipping)
        if self.optimizer is not None:
            self.optimizer.step()
        for p in params:  # also parameters the optimizer does not hold: no stale sums
            p.grad = None
        if self.scheduler is not None:
            self.scheduler.step()
        self._steps += 1

    def list_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """List the module's named parameters once and reuse the list until
        :meth:`forget_parameters` (the engine does so while it runs: modules keep their
        parameters then, as their optimizers assume). Whether they require grad is read live."""
        self._named_params = list(self.module.named_parameters())
        return self._named_params

    def forget_parameters(self) -> None:
        """Walk the module again for its parameters on every call (undoes ``list_parameters``)."""
        self._named_params = None

    # ------------------------------------------------------------------ internals
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        params = self.trainable_parameters()
        device_type = params[0].device.type if params else "cpu"
        return torch.autocast(device_type=device_type, dtype=dtype)

    def _restore_data(self, epoch_pos: int) -> None:
        self._epoch_pos = 0
        self._iter = None
        if self.data is None or epoch_pos == 0:
            return
        if iter(self.data) is self.data:  # one-shot iterator: cannot rewind, continue as is
            self._epoch_pos = epoch_pos
            return
        self._iter = iter(self.data)
        for _ in range(epoch_pos):
            next(self._iter)
        self._epoch_pos = epoch_pos

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume this problem: module, optimizer, scheduler, counters."""
        return {
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "scheduler": self.scheduler.state_dict()
            if self.scheduler is not None and hasattr(self.scheduler, "state_dict")
            else None,
            "count": self._count,
            "steps": self._steps,
            "epoch_pos": self._epoch_pos,
            "last_batch": self.last_batch,
            **self._history.state_dict(),  # "history", "pending", "pending_params"
            "loss_scale": self._loss_scale,
            "good_steps": self._good_steps,
            "grads": [
                None if p.grad is None else p.grad.detach().clone()
                for p in self.trainable_parameters()
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the data iterator is fast-forwarded)."""
        self.module.load_state_dict(state["module"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self._count = state["count"]
        self._steps = state["steps"]
        self.last_batch = state["last_batch"]
        self._history.load_state_dict(state)
        self._loss_scale = state["loss_scale"]
        self._good_steps = state["good_steps"]
        for p, g in zip(self.trainable_parameters(), state["grads"], strict=True):
            p.grad = None if g is None else g.clone()
        self._restore_data(state["epoch_pos"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, method={self.config.method!r})"
