"""The goodput controller: wraps a model and optimizer, measures gradient noise and step times
while they train, and chooses the batch plan (micro-batch, accumulation steps) and learning rate
that maximise goodput. A plain loop gains about four lines::

    ctl = GoodputController(model, optimizer, batch_size=32, max_batch_size=1024)
    loader = ctl.loader(train_set)
    for epoch in ctl.epochs(10):
        for (x, y), _ in loader:
            ctl.step(loss_fn(ctl.model(x), y))   # backward; optimizer step after the last one

Under torchrun (torch.distributed initialised, world size > 1) the model is wrapped in
DistributedDataParallel. Most steps are DDP's own, untouched; on a measured step
the controller skips DDP's synchronisation and all-reduces the gradients itself, with each
rank's local squared norm in one extra element of that same all-reduce, so the noise estimate
needs no collective of its own and the other steps pay nothing for it (a Python communication
hook on every bucket of every step would). Decisions (when to re-plan, which plan) are taken
on rank 0 and broadcast, so every rank follows the same plan.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from metatune._registry import UnknownNameError
from metatune.goodput import _gradients as G
from metatune.goodput.choice import BatchPlan, choose_plan, plan_for_total
from metatune.goodput.efficiency import gain as gain_of
from metatune.goodput.loader import AdaptiveDataLoader, MicroBatchInfo
from metatune.goodput.lr_rules import LR_RULES, ScaleContext, default_rule
from metatune.goodput.noise import NoiseTracker, from_consecutive, from_means
from metatune.goodput.throughput import ThroughputModel

__all__ = ["GoodputController"]

PRECONDITION_EVERY = 8  # measured steps between recomputations of Adam's preconditioner
AUTO_MEASURE_EVERY = 8  # the shortest interval of measure_every="auto", and where it starts
MAX_MEASURE_EVERY = 128  # the longest: the noise estimate must still follow training


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class GoodputController:
    """Adaptive batch size and learning rate for a torch training loop.

    Args:
        model: the module to train (wrapped in DDP when torch.distributed runs > 1 process;
            call the wrapper, ``ctl.model``).
        optimizer: its optimizer; the learning rates in its groups are the ones for M0.
        batch_size: M0, the total batch size (over all replicas) the run was written for.
        max_batch_size: the largest total batch to consider (>= batch_size).
        max_micro_batch: the most examples one replica can hold in memory at once; larger
            batches use gradient accumulation. Default: no bound beyond max_batch_size.
        lr_rule: a name in ``LR_RULES`` ("adascale", "adam-sqrt", "sqrt", "linear", "legw");
            default "adam-sqrt" for Adam-type optimizers, else "adascale".
        lr_schedule: factor on the M0 learning rate as a function of progress (M0-equivalent
            steps), so a schedule written for M0 keeps its meaning; default constant 1.
        threshold: switch plans only when the predicted goodput gain exceeds this (0.05 = 5%).
        adapt_every: the fewest optimizer steps between re-plans; the interval also grows so
            that fitting and planning take at most `adapt_budget` of the training time so far
            (counted over the whole run, so one costly fit delays the next re-plans a little
            instead of the next hundreds of steps).
        refit_every: re-plans between fits of the step-time model while it has seen no new
            configuration (a re-plan with the fitted model only re-weighs the candidates
            by the latest noise scale, which costs far less than a fit).
        warmup_steps: steps of measurement before the first re-plan.
        noise_decay: EMA decay per noise estimate (each weighs by its step's examples).
        noise_confidence: plans use the noise scale the estimate supports at this many
            standard errors of |G|^2 (``NoiseTracker.noise_scale_bound``), so a noisy estimate
            errs towards the smaller batch and an estimate whose |G|^2 is not yet positive
            still plans; 0 plans on the point estimate and waits while it is infinite.
        precondition: measure noise preconditioned by Adam's second moment ("auto": for
            Adam-type optimizers).
        candidates: total batch sizes evaluated per re-plan (geometric between M0 and max).
        nodes: machines the replicas span (default from LOCAL_WORLD_SIZE; 1 without it).
        measure_every: every n-th optimizer step measures the gradient noise: from its
            accumulation micro-batches, from the replicas' gradients under DDP, or, in one
            process without accumulation, by running it as two half micro-batches (the same
            examples and update); every one of the first `warmup_steps` steps measures, so the
            first re-plan has its estimate. "auto": every 8th step at first, then as often as
            `measure_budget` allows, from the measured extra time of a measured step over a
            plain one (at most every 128th), so that measuring costs the same small share on a
            model whose steps are mostly Python overhead as on a large one; on such models it
            measures rarely, and the noise estimate at a small batch is then too noisy to
            adapt well (see the benchmark page), so it is not the default.
            None or 0: every step, and in one process without accumulation from
            consecutive-step differences instead (no extra work per step, but biased, see
            `noise`).
        measure_budget: with ``measure_every="auto"``, the share of the training time the
            measured steps' extra cost may take.
        adaptive: False keeps M0 fixed but measures as usual (for overhead comparisons).
        clock: what step times are measured with; wall time by default. On a machine shared
            with other jobs, ``time.thread_time`` (this thread's CPU time) measures what a step
            costs rather than how long it waited for a core.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        batch_size: int,
        max_batch_size: int,
        max_micro_batch: int | None = None,
        lr_rule: str | None = None,
        lr_schedule: Callable[[float], float] | None = None,
        threshold: float = 0.05,
        adapt_every: int = 10,
        adapt_budget: float = 0.02,
        refit_every: int = 8,
        warmup_steps: int = 10,
        noise_decay: float = 0.95,
        noise_confidence: float = 1.0,
        precondition: bool | str = "auto",
        candidates: int = 50,
        nodes: int | None = None,
        measure_every: int | str | None = 8,
        measure_budget: float = 0.02,
        adaptive: bool = True,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        import torch.distributed as dist

        self.batch_size = _positive_int("batch_size", batch_size)
        self.max_batch_size = _positive_int("max_batch_size", max_batch_size)
        if self.max_batch_size < self.batch_size:
            raise ValueError(
                f"max_batch_size ({max_batch_size}) must be >= batch_size ({batch_size})"
            )
        if max_micro_batch is not None:
            if isinstance(max_micro_batch, (int, np.integer)) and max_micro_batch < 1:
                raise ValueError(
                    f"max_micro_batch must be at least 1 example (the per-replica memory "
                    f"bound), got {max_micro_batch!r}"
                )
            max_micro_batch = _positive_int("max_micro_batch", max_micro_batch)
        if not 0.0 <= threshold < 10.0:
            raise ValueError(f"threshold must be in [0, 10), got {threshold!r}")
        if not 0.0 <= noise_decay < 1.0:
            raise ValueError(f"noise_decay must be in [0, 1), got {noise_decay!r}")
        if not 0.0 <= noise_confidence <= 10.0:
            raise ValueError(f"noise_confidence must be in [0, 10], got {noise_confidence!r}")
        self.noise_confidence = float(noise_confidence)
        self.adapt_every = _positive_int("adapt_every", adapt_every)
        self.warmup_steps = max(int(warmup_steps), 1)
        self.min_noise_updates = 5
        if not 0.0 < adapt_budget <= 1.0:
            raise ValueError(f"adapt_budget must be in (0, 1], got {adapt_budget!r}")
        self.adapt_budget = float(adapt_budget)
        self.refit_every = _positive_int("refit_every", refit_every)
        self.candidates = _positive_int("candidates", candidates)
        self._measure_auto = isinstance(measure_every, str)
        if self._measure_auto and measure_every != "auto":
            raise ValueError(
                f"measure_every must be 'auto', a positive integer or None, got {measure_every!r}"
            )
        if self._measure_auto:
            self.measure_every = AUTO_MEASURE_EVERY
        else:
            self.measure_every = (
                0 if not measure_every else _positive_int("measure_every", measure_every)
            )
        if not 0.0 < measure_budget <= 1.0:
            raise ValueError(f"measure_budget must be in (0, 1], got {measure_budget!r}")
        self.measure_budget = float(measure_budget)
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(f"lr_schedule must be callable, got {lr_schedule!r}")
        adam = G.is_adam_type(optimizer)
        self.lr_rule = lr_rule if lr_rule is not None else default_rule(adam)
        try:
            self._rule = LR_RULES.get(self.lr_rule)
        except UnknownNameError as exc:
            raise UnknownNameError(f"lr_rule: {exc}") from None
        if precondition not in ("auto", True, False):
            raise ValueError(f"precondition must be 'auto', True or False, got {precondition!r}")
        self.precondition = adam if precondition == "auto" else bool(precondition)

        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        if self.batch_size < self.world_size:
            raise ValueError(
                f"batch_size ({batch_size}) must be at least the number of replicas "
                f"({self.world_size})"
            )
        if nodes is None:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size) or self.world_size)
            nodes = max(self.world_size // max(local, 1), 1)
        self.nodes = _positive_int("nodes", nodes)
        per_replica_max = math.ceil(self.max_batch_size / self.world_size)
        self.max_micro_batch = min(max_micro_batch or per_replica_max, per_replica_max)

        self.optimizer = optimizer
        self.threshold = float(threshold)
        self.lr_schedule = lr_schedule
        self.adaptive = bool(adaptive)
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {clock!r}")
        self.clock = clock
        self._base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        self.model = self._wrap(model)
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._flat = G.FlatBuffers(self._params)
        self._slot = False  # which of the two gradient copies is the newer (_next_copy)
        self.noise = NoiseTracker(noise_decay)
        self.throughput = ThroughputModel()
        self.plan: BatchPlan = plan_for_total(
            self.batch_size, self.max_micro_batch, self.world_size
        )
        self.progress = 0.0  # M0-equivalent steps
        self.steps = 0  # optimizer steps
        self.examples = 0  # training examples over all replicas
        self.last_speedup = 1.0
        self.history: list[tuple[int, float, int, int, float]] = []  # step, progress, m, s, phi
        self._loader: AdaptiveDataLoader | None = None
        self._next_adapt = self.warmup_steps
        self._weights: torch.Tensor | None = None  # flat preconditioner (None: raw)
        self._weights_age = 0  # measured steps since it was computed
        self._prev_micro: torch.Tensor | None = None  # flat accumulated gradient so far
        self._piece_sq: list[torch.Tensor] = []
        self._piece_sizes: list[int] = []
        self._prev_grad: torch.Tensor | None = None  # flat, preconditioned
        self._prev_size = 0
        self._prev_sq = 0.0
        self._last_end: float | None = None
        self._last_plan: BatchPlan | None = None
        self._step_time = float("nan")
        self._plan_time = 0.0  # every re-plan's cost so far
        self._train_time = 0.0  # seconds of training steps so far (see _record_time)
        self._fitted_configs = -1  # configurations the step-time model had at its last fit
        self._plans_since_fit = 0
        self._pending: tuple[Any, torch.Tensor, float] | None = None  # a plan on its way (DDP)
        # measure_every="auto": step times of measured and plain steps at the current plan
        self._cost_plan: BatchPlan | None = None
        self._measured_dt = float("nan")
        self._plain_dt = float("nan")
        self._proposed_every = self.measure_every  # rank 0's proposal (applied in step)
        self._gain_key: tuple[float, int] | None = None  # current_gain's last answer
        self._gain = 1.0
        self._decided_for: tuple[int, BatchPlan] | None = None  # _adapt's inputs last time
        self._last_noise_step: int | None = None  # the step of the last noise estimate
        if self.adaptive:
            self._warm_up_planning()

    # -- set-up ------------------------------------------------------------------------------
    def _warm_up_planning(self) -> None:
        """Fit and choose once on a made-up table of this job's replica count, so the first
        re-plan does not pay the first-call costs (NumPy's and SciPy's, the candidate list's;
        several times a warm re-plan) against the planning budget, which early in a run is a
        share of almost no training time and would hold that first plan for hundreds of steps."""
        k = self.world_size
        model = ThroughputModel()
        for m in (1, 2):
            for s in (0, 1):
                model.observe(m, s, 1e-3 * m * (s + 1), k, self.nodes)
        model.fit()
        start = plan_for_total(self.batch_size, self.max_micro_batch, k)
        choose_plan(  # with this job's arguments: it also builds the cached candidate list
            start,
            model,
            1.0,
            self.batch_size,
            self.max_batch_size,
            self.max_micro_batch,
            nodes=self.nodes,
            count=self.candidates,
        )

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.distributed or self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return model if isinstance(model, DDP) else DDP(model)

    def loader(self, dataset: Any, **kwargs: Any) -> AdaptiveDataLoader:
        """An AdaptiveDataLoader over `dataset` that follows this controller's plan (keyword
        arguments go to the loader: shuffle, seed, collate_fn, drop_last)."""
        loader = AdaptiveDataLoader(
            dataset, self.batch_size, rank=self.rank, world_size=self.world_size, **kwargs
        )
        self.attach(loader)
        return loader

    def attach(self, loader: AdaptiveDataLoader) -> None:
        """Drive `loader` (one made elsewhere) with this controller's plan."""
        if loader.world_size != self.world_size:
            raise ValueError(
                f"loader has world_size {loader.world_size}, the controller {self.world_size}"
            )
        self._loader = loader
        # None/0: every step measures; in one process without accumulation by consecutive
        # differences, so no step is split.
        loader.measure_every = self.measure_every or 1
        # Every warm-up step measures, so that the first re-plan has its noise updates.
        loader.measure_first = self.warmup_steps
        loader.split_measured = bool(self.measure_every)
        loader.set_plan(self.plan)
        loader.add_listener(self._on_micro_batch)

    def _on_micro_batch(self, info: MicroBatchInfo) -> None:
        # Adam's preconditioner, only for steps that measure. It costs a few passes over the
        # optimizer state, and Adam's second moment moves slowly (beta2 near 1), so it is
        # recomputed every PRECONDITION_EVERY measured steps.
        if info.index == 0 and self.precondition and info.measure:
            if self._weights is None or self._weights_age >= PRECONDITION_EVERY:
                self._weights = G.flat_adam_preconditioner(self.optimizer, self._params)
                self._weights_age = 0
            self._weights_age += 1
        if self.world_size > 1:
            # DDP synchronises only a step's last micro-batch, and not at all on a measured
            # step, whose gradients the controller all-reduces itself (`_measure_ranks`).
            sync = info.last and not info.measure
            if self.model.require_backward_grad_sync != sync:
                self.model.require_backward_grad_sync = sync

    def epochs(self, count: int) -> Iterator[int]:
        """Epoch numbers from where training stands (after a restart: the saved epoch) up to
        `count` - 1; iterate the loader once inside each."""
        count = int(count)
        if self._loader is None:
            raise RuntimeError("create the data loader first: loader = ctl.loader(dataset)")
        while self._loader.epoch < count:
            start = self._loader.epoch
            yield start
            if self._loader.epoch == start:  # the loop body did not finish the epoch
                return

    # -- the step ----------------------------------------------------------------------------
    def step(self, loss: torch.Tensor) -> bool:
        """Back-propagate one micro-batch's mean loss; after a step's last micro-batch, measure,
        set the learning rate, step the optimizer, zero the gradients and maybe re-plan.
        Returns True when the optimizer stepped."""
        info = self._loader.current if self._loader is not None else None
        if info is None:
            raise RuntimeError("step() needs micro-batches from ctl.loader(dataset)")
        k = self.world_size
        scale = info.size * k / info.step_total  # DDP averages over k
        (loss if scale == 1.0 else loss * scale).backward()
        pieces = k == 1 and info.steps > 1 and info.measure
        if pieces:
            self._measure_piece(info, info.size / info.step_total)
        if not info.last:
            return False
        self._measure_step(info, pieces)
        self._apply_lr(info.step_total)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1
        self.examples += info.step_total
        self._record_time(info)
        if self._pending is not None:
            self._receive_plan()
        elif self.adaptive and self.steps >= self._next_adapt:
            self._adapt()
        return True

    def _next_copy(self) -> torch.Tensor:
        """The gradients copied into the one of two flat buffers not holding the previous
        copy (which the caller may still need)."""
        self._slot = not self._slot
        return self._flat.grads("a" if self._slot else "b")

    def _measure_piece(self, info: MicroBatchInfo, weight: float) -> None:
        # The accumulated gradient minus the one before this micro-batch is this
        # micro-batch's share; all on flat copies, with one host sync per step (at its end).
        flat = self._next_copy()
        prev = self._prev_micro
        if prev is None or info.index == 0:
            diff = flat
        else:
            diff = torch.sub(flat, prev, out=self._flat.buffer("diff"))
        self._piece_sq.append(self._flat.weighted_sqnorm(diff, self._weights) / weight**2)
        self._piece_sizes.append(info.size)
        self._prev_micro = flat

    def _measure_step(self, info: MicroBatchInfo, pieces: bool) -> None:
        big = float(info.step_total)
        if self.world_size > 1:
            if info.measure:
                self._measure_ranks(info)
        elif pieces:
            n = len(self._piece_sizes)
            # the last copy is the whole step's gradient
            last = self._flat.weighted_sqnorm(self._prev_micro, self._weights)
            sums = torch.stack([torch.stack(self._piece_sq).sum(), last])
            piece_total, total_sq = sums.double().tolist()
            mean_inv = sum(1.0 / b for b in self._piece_sizes) / n
            self._fold(
                from_means(piece_total / n, mean_inv, big, total_sq, self._population()),
                info.step_total,
            )
            self._piece_sq.clear()
            self._piece_sizes.clear()
            self._prev_micro = None
            # The pieces reused the flat buffers: a consecutive difference after a switch back
            # to one micro-batch per step starts afresh rather than from an overwritten copy.
            self._prev_grad = None
        elif not self.measure_every:
            self._measure_consecutive(info.step_total)
        # else: a plain step between split ones, nothing to measure

    def _measure_ranks(self, info: MicroBatchInfo) -> None:
        """All-reduce this rank's local gradient (DDP did not) with its squared norm in one
        extra element, write the average back into the gradients, and estimate the noise from
        the ranks' norms and the average's; the ranks' sizes follow from the loader's
        deterministic split."""
        import torch.distributed as dist

        k = self.world_size
        buf = self._flat.grads("ranks", extra=2)
        # The local gradient is sum_i (b_i k / B) grad_i; this rank's mean is B / (k B_k) x it.
        local_sq = self._flat.weighted_sqnorm(buf[:-2], self._weights)
        buf[-2] = local_sq * (info.step_total / (k * info.rank_total)) ** 2
        buf.div_(k)
        # The last element carries rank 0's measuring interval, so that every rank switches
        # to it at this same step (their own step times differ).
        buf[-1] = float(self._proposed_every) if self.rank == 0 else 0.0
        dist.all_reduce(buf)
        mean = buf[:-2]
        self._flat.write_grads(mean)
        total = self._flat.weighted_sqnorm(mean, self._weights)
        mean_sq, total_sq, every = torch.stack([buf[-2], total, buf[-1]]).double().tolist()
        if self._measure_auto:
            self._set_measure_every(round(every))
        mean_inv = sum(1.0 / b for b in info.rank_totals) / len(info.rank_totals)
        est = from_means(mean_sq, mean_inv, float(info.step_total), total_sq, self._population())
        self._fold(est, info.step_total)

    def _measure_consecutive(self, size: int) -> None:
        """|g - g_prev|^2 and |(g + g_prev) / 2|^2 from three dot products (|g_prev|^2 kept
        from the last step) on flat copies; each gradient is preconditioned by the weights of
        its own step."""
        x = self._next_copy()
        if self._weights is not None:
            x.mul_(self._weights)
        prev = self._prev_grad
        if prev is not None:
            g2, cross = torch.stack([torch.dot(x, x), torch.dot(x, prev)]).double().tolist()
            p2 = self._prev_sq
            est = from_consecutive(
                g2 + p2 - 2.0 * cross,
                (g2 + p2 + 2.0 * cross) / 4.0,
                size,
                self._prev_size,
                self._population(),
            )
            self._fold(est, size)
            self._prev_sq = g2
        else:
            self._prev_sq = float(torch.dot(x, x))
        self._prev_grad = x
        self._prev_size = size

    def _fold(self, est: Any, examples: int) -> None:
        """One noise estimate, from a step of `examples`, into the EMA. It weighs in
        proportion to its examples (an estimate at 16x M0 counts 16 times one at M0), so after
        a switch to a larger batch the few, much noisier estimates made at M0 do not hold the
        average for the next hundred steps. With measure_every="auto" an estimate after a
        longer interval also counts for that many of the shortest intervals (at least one),
        so the average follows training at the same pace however sparse the measurements
        get; a fixed interval keeps one EMA step per estimate."""
        elapsed = 1.0
        if self._measure_auto and self._last_noise_step is not None:
            elapsed = max((self.steps - self._last_noise_step) / AUTO_MEASURE_EVERY, 1.0)
        self._last_noise_step = self.steps
        self.noise.update(est, elapsed, weight=examples / self.batch_size)

    def _population(self) -> float:
        return float(len(self._loader.dataset)) if self._loader is not None else math.inf

    def set_plan(self, plan: BatchPlan | int) -> None:
        """Use `plan` (or the plan for a total batch) from the next step on; with
        ``adaptive=False`` it stays (fixed-batch baselines measured the same way)."""
        if isinstance(plan, (int, np.integer)):
            plan = plan_for_total(int(plan), self.max_micro_batch, self.world_size)
        if plan.replicas != self.world_size or plan.micro_batch < 1 or plan.accum_steps < 0:
            raise ValueError(f"plan {plan} does not fit {self.world_size} replicas")
        self.plan = plan
        if self._loader is not None:
            self._loader.set_plan(plan)

    def current_gain(self, total: float | None = None) -> float:
        """M0-equivalent steps one step at `total` (default: the plan's) makes now."""
        total = float(self.plan.total if total is None else total)
        key = (total, self.noise.count)  # the estimate changes only with an update
        if key == self._gain_key:
            return self._gain
        phi = self.noise.noise_scale
        if total <= self.batch_size or math.isnan(phi):  # at M0, or no estimate yet
            g = min(total / self.batch_size, 1.0)
        else:
            g = float(gain_of(phi, self.batch_size, total))
        self._gain_key, self._gain = key, g
        return g

    def _apply_lr(self, total: int) -> None:
        g = self.current_gain(total)
        ctx = ScaleContext(
            scale=total / self.batch_size,
            gain=g,
            progress=self.progress,
            examples=self.examples / self.batch_size,
        )
        factor = float(self._rule(ctx))
        if self.lr_schedule is not None:
            factor *= float(self.lr_schedule(self.progress))
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = base * factor
        self.progress += g

    def _record_time(self, info: MicroBatchInfo) -> None:
        now = self.clock()
        if self._last_end is not None and not info.first_of_iteration:
            dt = now - self._last_end
            # Training time for the planning budget: a gap far longer than a step (an
            # evaluation, a checkpoint, other work of the loop) counts as one long step.
            if self._step_time == self._step_time:
                self._train_time += min(dt, 4.0 * self._step_time)
            whole = self._last_plan == info.plan and info.step_total == info.plan.total
            if whole and not info.split:
                p = info.plan
                self.throughput.observe(p.micro_batch, p.accum_steps, dt, p.replicas, self.nodes)
                self._step_time = (
                    dt if self._step_time != self._step_time else 0.9 * self._step_time + 0.1 * dt
                )
            if whole and self._measure_auto:
                self._track_measure_cost(info, dt)
        self._last_plan = info.plan
        self._last_end = now

    def _track_measure_cost(self, info: MicroBatchInfo, dt: float) -> None:
        """Keep the measured steps' extra time within `measure_budget` of the training time:
        every measured step proposes the interval at which its extra cost over a plain step,
        spread over the steps in between, is that share of a plain step."""
        if info.plan != self._cost_plan:  # a new plan costs differently: start afresh
            self._cost_plan = info.plan
            self._measured_dt = self._plain_dt = float("nan")
        # A gap for evaluation or a checkpoint is not a step: each kind is clipped at four
        # times its own average.
        if info.measure:
            m = self._measured_dt
            self._measured_dt = dt if m != m else 0.7 * m + 0.3 * min(dt, 4.0 * m)
        else:
            ref = self._plain_dt
            self._plain_dt = dt if ref != ref else 0.9 * ref + 0.1 * min(dt, 4.0 * ref)
        plain, measured = self._plain_dt, self._measured_dt
        if not (info.measure and plain > 0 and measured == measured):
            return
        extra = max(measured - plain, 0.0)
        every = math.ceil(extra / (self.measure_budget * plain) - 1e-6)  # no rounding noise
        self._proposed_every = min(max(every, AUTO_MEASURE_EVERY), MAX_MEASURE_EVERY)
        if self.world_size == 1:
            self._set_measure_every(self._proposed_every)

    def _set_measure_every(self, every: int) -> None:
        self.measure_every = int(every)
        if self._loader is not None:
            self._loader.measure_every = self.measure_every

    # -- planning ----------------------------------------------------------------------------
    def _decide(self) -> tuple[BatchPlan, int, float]:
        import scipy.optimize  # noqa: F401 - imported here so its first import is not timed

        t0 = self.clock()
        plan, speedup = self.plan, 1.0
        # Plan on the noise scale the estimate supports at noise_confidence standard errors of
        # |G|^2: finite while the smoothed |G|^2 is not yet positive, where the point estimate
        # (+inf) would read as "every batch size is free" and jump to the maximum.
        phi = self.noise.noise_scale_bound(self.noise_confidence)
        trusted = self.noise.count >= self.min_noise_updates and math.isfinite(phi)
        if self.throughput.configurations and trusted:
            configs = len(self.throughput.configurations)
            if configs != self._fitted_configs or self._plans_since_fit >= self.refit_every:
                self.throughput.fit()
                self._fitted_configs, self._plans_since_fit = configs, 0
            else:
                self._plans_since_fit += 1
            plan, speedup = choose_plan(
                self.plan,
                self.throughput,
                phi,
                self.batch_size,
                self.max_batch_size,
                self.max_micro_batch,
                nodes=self.nodes,
                threshold=self.threshold,
                count=self.candidates,
            )
        now = self.clock()
        self._plan_time += now - t0
        wait = self.adapt_every
        # A plan for a configuration never measured rests on a predicted step time: check it
        # against its measurement after adapt_every steps whatever the budget says (early in a
        # run the budget, a share of the training time so far, would keep an untried plan for
        # hundreds of steps). There are at most as many of these as configurations tried.
        key = (plan.micro_batch, plan.accum_steps, plan.replicas, self.nodes)
        untried = key not in self.throughput.configurations
        if not untried and self._step_time == self._step_time and self._step_time > 0:
            # Steps until planning so far is within its share of the training time so far.
            behind = self._plan_time / self.adapt_budget - self._train_time
            wait = max(wait, math.ceil(behind / self._step_time))
        return plan, self.steps + wait, speedup

    def _adapt(self) -> None:
        # The choice depends on the noise estimate and the current plan (the step-time model
        # is refitted only when a choice is made): with neither changed since the last choice,
        # it would be the same, so skip it. Both are the same on every rank, so under DDP the
        # ranks skip together without a word.
        key = (self.noise.count, self.plan)
        if key == self._decided_for:
            self._next_adapt = self.steps + self.adapt_every
            return
        self._decided_for = key
        if not (self.distributed and self.world_size > 1):
            plan, next_adapt, speedup = self._decide()
            self._apply_plan(plan, next_adapt, speedup)
            return
        import torch.distributed as dist

        # Rank 0 decides and broadcasts without waiting: the other ranks go on with the next
        # step and every rank applies the plan at the end of that step (the same step on all
        # of them), so no rank idles in a collective of its own while rank 0 fits.
        plan, next_adapt, speedup = self._decide() if self.rank == 0 else (self.plan, 0, 1.0)
        dev = self._params[0].device if self._params else torch.device("cpu")
        msg = torch.tensor(
            [plan.micro_batch, plan.accum_steps, next_adapt], dtype=torch.int64, device=dev
        )
        work = dist.broadcast(msg, src=0, async_op=True)
        self._pending = (work, msg, speedup)

    def _receive_plan(self) -> None:
        work, msg, speedup = self._pending
        self._pending = None
        work.wait()
        m, s, next_adapt = (int(v) for v in msg.tolist())
        self._apply_plan(BatchPlan(m, s, self.world_size), next_adapt, speedup)

    def _apply_plan(self, plan: BatchPlan, next_adapt: int, speedup: float) -> None:
        self._next_adapt = next_adapt
        self.last_speedup = speedup
        self.history.append(
            (self.steps, self.progress, plan.micro_batch, plan.accum_steps, self.noise.noise_scale)
        )
        if plan != self.plan:
            self.plan = plan
            if self._loader is not None:
                self._loader.set_plan(plan)

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plan, progress, counters, the noise EMAs, the throughput model (its measurements and
        fit) and the loader's position. Save the model and optimizer alongside it."""
        return {
            "plan": [self.plan.micro_batch, self.plan.accum_steps, self.plan.replicas],
            "progress": self.progress,
            "steps": self.steps,
            "examples": self.examples,
            # a plan still on its way (DDP) is decided again right after a restart
            "next_adapt": self.steps if self._pending is not None else self._next_adapt,
            "base_lrs": list(self._base_lrs),
            "noise": self.noise.state_dict(),
            "throughput": self.throughput.state_dict(),
            "loader": None if self._loader is None else self._loader.state_dict(),
            "history": [list(h) for h in self.history],
            "batch_size": self.batch_size,
            "measure_every": self.measure_every,
            "last_noise_step": self._last_noise_step,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved; the plan is recomputed for a different replica
        count (a restart on fewer or more processes keeps the total batch)."""
        if int(state["batch_size"]) != self.batch_size:
            raise ValueError(
                f"checkpoint was written for batch_size {state['batch_size']}, "
                f"this controller has {self.batch_size}"
            )
        m, s, k = (int(v) for v in state["plan"])
        plan = BatchPlan(m, s, k)
        if k != self.world_size:
            plan = plan_for_total(plan.total, self.max_micro_batch, self.world_size)
        self.plan = plan
        self.progress = float(state["progress"])
        self.steps = int(state["steps"])
        self.examples = int(state["examples"])
        self._next_adapt = int(state["next_adapt"])
        self._pending = None
        self._base_lrs = [float(x) for x in state["base_lrs"]]
        self.noise.load_state_dict(state["noise"])
        # derived from the noise estimate and the plan, which were just replaced
        self._gain_key = self._decided_for = None
        self.throughput.load_state_dict(state["throughput"])
        self.history = [tuple(h) for h in state["history"]]  # type: ignore[misc]
        self._last_noise_step = state.get("last_noise_step")
        if self._measure_auto and "measure_every" in state:
            self._set_measure_every(int(state["measure_every"]) or AUTO_MEASURE_EVERY)
        if self._loader is not None and state["loader"] is not None:
            self._loader.load_state_dict(state["loader"])
        if self._loader is not None:
            self._loader.set_plan(self.plan)
