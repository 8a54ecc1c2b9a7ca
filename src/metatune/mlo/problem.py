"""A level of a multilevel optimization problem: module, optimizer, data and a training step."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from metatune.mlo.config import Config

if TYPE_CHECKING:
    from metatune.mlo.engine import Engine


class _HistoryEntry:
    """One optimizer step of a problem: its parameters before the step and the batches used.

    ``grads`` optionally holds the step's direct gradient as a differentiable function of
    ``params`` (and of whatever else the loss read), recorded while the engine took the step so
    that unrolled differentiation need not replay it; ``watch`` pairs each tensor of the other
    problems with its version counter at that time, so the graph is reused only while it still
    describes the current upper parameters (see :meth:`take_graph`).
    """

    __slots__ = ("params", "batches", "grads", "watch")

    def __init__(self, params: list[Tensor], batches: list[Any]) -> None:
        self.params = params
        self.batches = batches
        self.grads: list[Tensor] | None = None
        self.watch: list[tuple[Tensor, int]] = []

    def take_graph(self) -> list[Tensor] | None:
        """The recorded differentiable gradient, once (backward frees it), if still current."""
        grads, self.grads = self.grads, None
        if grads is None or any(t._version != v for t, v in self.watch):
            return None
        return grads

    def drop_graph(self) -> None:
        self.grads = None
        self.watch = []


class Problem:
    """One level of a multilevel problem.

    Subclass it and write ``training_step(self, batch) -> loss``. Other problems of the same
    engine are reachable as attributes by name (``self.inner``, ``self.outer``); call ``self(x)``
    (or ``self.module(x)``) for this problem's forward pass.
    """

    _RESERVED = frozenset({"name", "module", "optimizer", "scheduler", "config", "data"})

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
        self._peers: dict[str, Problem] = {}
        self._engine: Engine | None = None
        self._iter: Iterator[Any] | None = None
        self._epoch_pos = 0
        self._count = 0  # training_step calls
        self._steps = 0  # optimizer steps
        self._last_batch: Any = None
        self._history: deque[_HistoryEntry] = deque(maxlen=self.config.unroll_steps)
        self._pending: list[Any] = []  # batches of the optimizer step in progress
        self._pending_params: list[Tensor] | None = None
        self._keep_history = False
        self._reuse_step_graph = False  # set by the engine: see Engine._records_step_graph
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
        named = self._named_params
        if named is None:
            named = self.module.named_parameters()
        return [(n, p) for n, p in named if p.requires_grad]

    @property
    def step_count(self) -> int:
        """Number of optimizer steps taken."""
        return self._steps

    # ------------------------------------------------------------------ internals
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        params = self.trainable_parameters()
        device_type = params[0].device.type if params else "cpu"
        return torch.autocast(device_type=device_type, dtype=dtype)

    def _loss(self, batch: Any) -> Tensor:
        """The training loss under this problem's precision, as a float32 scalar."""
        with self._autocast():
            loss = self.training_step(batch)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise TypeError(
                f"training_step of problem {self.name!r} must return a scalar tensor, got {loss!r}"
            )
        if loss.dim() != 0:  # a 0-d loss is returned as is: no view node in its graph
            loss = loss.reshape(())
        return loss.float() if loss.dtype in (torch.bfloat16, torch.float16) else loss

    def _next_batch(self) -> Any:
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
            "last_batch": self._last_batch,
            "history": [(h.params, h.batches) for h in self._history],
            "pending": list(self._pending),
            "pending_params": self._pending_params,
            "loss_scale": self._loss_scale,
            "good_steps": self._good_steps,
            "grads": [
                None if p.grad is None else p.grad.detach().clone()
                for p in self.trainable_parameters()
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self._count = state["count"]
        self._steps = state["steps"]
        self._last_batch = state["last_batch"]
        self._history = deque(
            (_HistoryEntry(p, b) for p, b in state["history"]), maxlen=self.config.unroll_steps
        )
        self._pending = list(state["pending"])
        self._pending_params = state["pending_params"]
        self._loss_scale = state["loss_scale"]
        self._good_steps = state["good_steps"]
        for p, g in zip(self.trainable_parameters(), state["grads"], strict=True):
            p.grad = None if g is None else g.clone()
        self._restore_data(state["epoch_pos"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, method={self.config.method!r})"
