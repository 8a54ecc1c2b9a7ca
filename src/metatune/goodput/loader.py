"""The adaptive data loader: micro-batches of the current plan, with their accumulation flag.

Each optimizer step takes the next M = K * m * (s + 1) indices of the epoch's permutation (the
same permutation on every rank, from the seed and the epoch) and splits them into K * (s + 1)
micro-batches, micro-batch j of rank r being piece j * K + r. So K ranks with s accumulation
steps see exactly the examples one process sees with K * (s + 1) micro-batches, and a restart
resumes at the step where the saved state left off. The epoch's last, shorter step is split
into as many equal pieces as it can fill (fewer accumulation steps when needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from metatune.goodput.choice import BatchPlan

__all__ = ["AdaptiveDataLoader", "MicroBatchInfo"]


@dataclass(frozen=True)
class MicroBatchInfo:
    """Where a yielded micro-batch sits in its optimizer step."""

    size: int  # examples in this micro-batch (this rank)
    index: int  # 0 .. steps - 1 within the step
    steps: int  # micro-batches per rank in this step (s + 1, or fewer at the epoch's end)
    rank_total: int  # this rank's examples in the step
    step_total: int  # examples over all ranks in the step
    first_of_iteration: bool  # the first step since iteration (re)started: its time is skipped
    plan: BatchPlan
    split: bool = False  # a one-micro-batch step split in two to measure the noise
    measure: bool = False  # the step measures the gradient noise
    rank_totals: tuple[int, ...] = ()  # every rank's examples in the step

    @property
    def last(self) -> bool:
        """The micro-batch after which the optimizer steps."""
        return self.index == self.steps - 1


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class AdaptiveDataLoader:
    """Yields ``(batch, accumulate)``: `accumulate` is True while more micro-batches of the same
    optimizer step follow. Iterating it runs (the rest of) one epoch.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__`` (a TensorDataset is indexed
            with one tensor operation; a dataset with ``__getitems__`` gets the index list).
        batch_size: the initial total batch M0 (over all replicas).
        shuffle: a new permutation each epoch, from `seed` and the epoch number.
        collate_fn: builds a batch from a list of examples (torch's default_collate if None).
        drop_last: skip the epoch's last, shorter step instead of shrinking it.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        collate_fn: Callable[[list], Any] | None = None,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(dataset)
        if n < 1:
            raise ValueError("dataset is empty")
        r, w = _world()
        self.rank = r if rank is None else int(rank)
        self.world_size = w if world_size is None else int(world_size)
        if batch_size < self.world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must be at least the number of replicas "
                f"({self.world_size}): each replica needs one example"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        k = self.world_size
        self.plan = BatchPlan(micro_batch=max(self.batch_size // k, 1), replicas=k)
        self.epoch = 0
        self.position = 0  # index into the epoch's permutation where the next step starts
        self._step_start = 0
        self._in_step = False
        self.current: MicroBatchInfo | None = None
        # Every `measure_every`-th step measures the gradient noise (0: none). One process
        # without accumulation has a single gradient per step; with `split_measured` such a
        # step is run as two half micro-batches (same examples, same update), so that the
        # noise can be measured without the consecutive-step bias.
        self.measure_every = 0
        self.measure_first = 0  # the first steps all measure (the controller's warm-up)
        self.split_measured = True
        self._steps_started = 0
        self._listeners: list[Callable[[MicroBatchInfo], None]] = []
        self._infos: dict[tuple, MicroBatchInfo] = {}

    # -- plan --------------------------------------------------------------------------------
    def set_plan(self, plan: BatchPlan) -> None:
        """Use `plan` from the next optimizer step on."""
        if plan.replicas != self.world_size:
            raise ValueError(
                f"plan has {plan.replicas} replicas but the loader runs on {self.world_size}"
            )
        self.plan = plan

    def add_listener(self, fn: Callable[[MicroBatchInfo], None]) -> None:
        """Call `fn(info)` just before each micro-batch is yielded (the controller uses it to
        turn DDP's gradient synchronisation on only for a step's last micro-batch)."""
        self._listeners.append(fn)

    # -- iteration ---------------------------------------------------------------------------
    def _permutation(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def _fetch(self, idx: np.ndarray) -> Any:
        ds = self.dataset
        tensors = getattr(ds, "tensors", None)
        if isinstance(tensors, tuple) and tensors:
            import torch

            t = torch.as_tensor(idx, dtype=torch.long)
            return tuple(x[t] for x in tensors)
        if self.collate_fn is None:
            from torch.utils.data import default_collate

            collate = default_collate
        else:
            collate = self.collate_fn
        items = list(idx.tolist())
        getitems = getattr(ds, "__getitems__", None)
        examples = getitems(items) if getitems is not None else [ds[i] for i in items]
        return collate(examples)

    def _split(self, chunk: np.ndarray, steps: int) -> list[np.ndarray]:
        return np.array_split(chunk, steps * self.world_size)

    def __iter__(self) -> Iterator[tuple[Any, bool]]:
        perm = self._permutation()
        n = len(perm)
        k = self.world_size
        if self._in_step:  # interrupted inside a step: redo it
            self.position = self._step_start
            self._steps_started -= 1
            self._in_step = False
        first = True
        while self.position < n:
            plan = self.plan
            want = plan.total
            left = n - self.position
            if left >= want:
                chunk = perm[self.position : self.position + want]
                steps = plan.accum_steps + 1
            else:
                if self.drop_last or left < k:
                    break
                steps = max(min(plan.accum_steps + 1, left // k), 1)
                chunk = perm[self.position :]
            measure = self.measure_every > 0 and (
                self._steps_started < self.measure_first
                or self._steps_started % self.measure_every == 0
            )
            split = measure and self.split_measured and k == 1 and steps == 1 and len(chunk) >= 2
            if split:
                steps = 2
            self._steps_started += 1
            if len(chunk) % (steps * k) == 0:  # equal pieces: slice, no array_split
                m = len(chunk) // (steps * k)
                mine = [
                    chunk[(j * k + self.rank) * m : (j * k + self.rank + 1) * m]
                    for j in range(steps)
                ]
                totals = (m * steps,) * k
            else:
                pieces = self._split(chunk, steps)
                mine = [pieces[j * k + self.rank] for j in range(steps)]
                totals = tuple(sum(len(pieces[j * k + r]) for j in range(steps)) for r in range(k))
            rank_total = totals[self.rank]
            self._step_start = self.position
            self._in_step = True
            self.position += len(chunk)
            for j, idx in enumerate(mine):
                # Steps of one plan repeat the same few records: reuse them (frozen) rather
                # than build one per micro-batch.
                key = (plan, len(idx), j, steps, len(chunk), first, split, measure, totals)
                info = self._infos.get(key)
                if info is None:
                    if len(self._infos) > 256:
                        self._infos.clear()
                    info = self._infos[key] = MicroBatchInfo(
                        size=len(idx),
                        index=j,
                        steps=steps,
                        rank_total=rank_total,
                        step_total=len(chunk),
                        first_of_iteration=first,
                        plan=plan,
                        split=split,
                        measure=measure,
                        rank_totals=totals,
                    )
                self.current = info
                for fn in self._listeners:
                    fn(info)
                if j == steps - 1:
                    self._in_step = False
                yield self._fetch(idx), j < steps - 1
            first = False
        self.epoch += 1
        self.position = 0
        self._in_step = False

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self._step_start if self._in_step else self.position,
            "seed": self.seed,
            "steps_started": self._steps_started - (1 if self._in_step else 0),
            "plan": [self.plan.micro_batch, self.plan.accum_steps, self.plan.replicas],
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._step_start = self.position
        self._in_step = False
        self.seed = int(state["seed"])
        self._steps_started = int(state.get("steps_started", 0))
        m, s, k = state["plan"]
        if int(k) == self.world_size:
            self.plan = BatchPlan(int(m), int(s), int(k))
