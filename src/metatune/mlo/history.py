"""A problem's record of its latest optimizer steps, which unrolled methods replay.

Kept apart from :mod:`metatune.mlo.problem` and the engine so that both (and the hypergradient
methods that read it) can use it without importing each other. Depends on torch only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, overload

from torch import Tensor

__all__ = ["HistoryEntry", "StepHistory"]


class HistoryEntry:
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

    def attach_graph(self, grads: list[Tensor], watch: list[tuple[Tensor, int]]) -> None:
        """Keep the step's differentiable gradient, valid while every ``watch`` tensor still
        has the version it had when the gradient was taken."""
        self.grads = grads
        self.watch = watch

    def take_graph(self) -> list[Tensor] | None:
        """The recorded differentiable gradient, once (backward frees it), if still current."""
        grads, self.grads = self.grads, None
        if grads is None or any(t._version != v for t, v in self.watch):
            return None
        return grads

    def drop_graph(self) -> None:
        """Forget the recorded gradient (and what it watched), freeing its graph."""
        self.grads = None
        self.watch = []


class StepHistory(Sequence[HistoryEntry]):
    """The last ``maxlen`` optimizer steps of a problem, oldest first, plus the step in progress.

    Nothing is recorded unless ``recording`` is set (the engine sets it when the problem's
    hypergradient method needs history): snapshots of the parameters cost memory. Under
    gradient accumulation an optimizer step spans several training steps; :meth:`note` is
    called on each and :meth:`commit` once the optimizer step is taken.
    """

    def __init__(self, maxlen: int) -> None:
        self.recording = False
        self._entries: deque[HistoryEntry] = deque(maxlen=maxlen)
        self._pending_batches: list[Any] = []
        self._pending_params: list[Tensor] | None = None

    # -- the sequence of committed steps -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> HistoryEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[HistoryEntry]: ...

    def __getitem__(self, index: int | slice) -> HistoryEntry | list[HistoryEntry]:
        if isinstance(index, slice):
            return list(self._entries)[index]
        return self._entries[index]

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self._entries)

    # -- recording -------------------------------------------------------------------------------
    def note(
        self, params: Sequence[Tensor], batch: Any, *, requires_grad: bool = False
    ) -> list[Tensor] | None:
        """Record a training step on ``batch``; at the first training step of an optimizer step
        also snapshot ``params`` (detached copies, leaves requiring grad if ``requires_grad``).

        Returns the snapshot of the optimizer step in progress (None while not recording).
        """
        if not self.recording:
            return None
        if not self._pending_batches:
            self._pending_params = [
                p.detach().clone().requires_grad_(requires_grad) for p in params
            ]
        self._pending_batches.append(batch)
        return self._pending_params

    def commit(self) -> HistoryEntry | None:
        """The optimizer step in progress was taken: it becomes the newest entry (the oldest
        falls out beyond ``maxlen``). Returns the entry (None while not recording)."""
        entry = None
        if self.recording and self._pending_params is not None:
            entry = HistoryEntry(self._pending_params, self._pending_batches)
            self._entries.append(entry)
        self._pending_batches = []
        self._pending_params = None
        return entry

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Snapshots and batches of the committed steps and of the step in progress."""
        return {
            "history": [(h.params, h.batches) for h in self._entries],
            "pending": list(self._pending_batches),
            "pending_params": self._pending_params,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._entries = deque(
            (HistoryEntry(p, b) for p, b in state["history"]), maxlen=self._entries.maxlen
        )
        self._pending_batches = list(state["pending"])
        self._pending_params = state["pending_params"]
