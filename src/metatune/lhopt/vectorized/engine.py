"""The lockstep engine: every replica of a `TaskGroup` trains at once, one batched step at a time.

A step draws each replica's minibatch, runs the forward and backward pass over the stacked
parameters (`vmap(grad_and_value(functional_call(...)))` for any module; for the layers of the task
space, the same passes written with batched kernels, `batched.compile_stacked`), clips and applies Adam/AdamW per replica (`optim`), evaluates validation
losses every `val_every` steps, and, when a policy drives the run, does per replica what
`lhopt.Controller` does in the unbatched engine: gradient statistics every `stats_every` steps,
and at each of its policy steps the same observation, the same policy call (one `Policy.act` per
replica, so sampling uses that replica's own generator) and the same moves and checkpoints.
Replicas may have different run lengths and numbers of policy steps; a replica past its end is
masked out (its parameters stop changing) while the others go on.

What it does not do: the deployment guard (`Controller(guard=True)`; meta-training runs without
it), param groups (one group per replica), and modules with buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call, grad_and_value, vmap

from metatune.lhopt.actions import DEFAULT_KNOBS, HyperparamActions
from metatune.lhopt.controller import Controller
from metatune.lhopt.features import LossFeatures
from metatune.lhopt.policy import CHECKPOINT_ACTIONS, Policy
from metatune.lhopt.vectorized.batched import compile_stacked, stacked_loss
from metatune.lhopt.vectorized.group import INDEX_CHUNK, LOSSES, TaskGroup, batch_indices
from metatune.lhopt.vectorized.optim import (
    HParams,
    Layout,
    Params,
    StackedAdamW,
    StackedCheckpoints,
    StackedClipper,
)
from metatune.lhopt.vectorized.stats import StackedGradientStats

__all__ = [
    "ReplicaStart",
    "LockstepResult",
    "run_lockstep",
    "schedule_factor",
    "SCHEDULES",
    "WARMUP_FRACTION",
    "BACKENDS",
]

Curve = list[tuple[int, float]]
# "warmup_cosine": linear warm-up over the first WARMUP_FRACTION of the run, then cosine to zero
SCHEDULES = ("constant", "cosine", "warmup_cosine")
WARMUP_FRACTION = 0.05
# "batched": forward passes written with batched kernels (`batched.compile_stacked`); "vmap":
# `torch.func.vmap` over `functional_call` (any module); "auto": batched where it applies
BACKENDS = ("auto", "batched", "vmap")


@dataclass(frozen=True)
class ReplicaStart:
    """A replica's starting hyperparameters (torch AdamW's defaults but the learning rate)."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    clip_quantile: float = 0.95

    def group(self) -> dict[str, Any]:
        """A torch-style param_group (what `HyperparamActions` reads and moves)."""
        return {
            "params": [],
            "lr": float(self.lr),
            "betas": (float(self.beta1), float(self.beta2)),
            "eps": float(self.eps),
            "weight_decay": float(self.weight_decay),
        }


@dataclass
class LockstepResult:
    """Per replica: validation curve, PPO record, controller history; the final parameters."""

    curves: list[Curve]
    records: list[list[dict[str, Any]]]
    histories: list[list[dict[str, Any]]]
    params: Params = field(repr=False)


class _Groups:
    """Stands in for one replica's optimizer where `HyperparamActions` expects one."""

    def __init__(self, group: dict[str, Any]) -> None:
        self.param_groups = [group]


class _Quantile:
    """Stands in for a replica's `GradientClipper` (only its quantile is moved)."""

    def __init__(self, quantile: float) -> None:
        self.quantile = float(quantile)


class _Control:
    """The policy side of `Controller`, for every replica of a lockstep run."""

    def __init__(
        self,
        policy: Policy,
        starts: Sequence[ReplicaStart],
        steps: Sequence[int],
        n_policy_steps: Sequence[int],
        seeds: Sequence[int],
        greedy: bool,
        clip: bool,
        stats_every: int,
    ) -> None:
        r = len(starts)
        expected = Controller.policy_config(clip)
        got = policy.config
        if (got.obs_size, list(got.n_choices)) != (expected.obs_size, expected.n_choices):
            raise ValueError(
                f"policy expects observations of size {got.obs_size} and moves {got.n_choices}; "
                f"this engine gives {expected.obs_size} and {expected.n_choices} (clip={clip})"
            )
        self.policy = policy
        self.greedy = greedy
        self.stats_every = stats_every
        self.total = [int(s) for s in steps]
        self.interval = [max(1, t // n) for t, n in zip(self.total, n_policy_steps, strict=True)]
        self.groups = [s.group() for s in starts]
        self.quantiles = [_Quantile(s.clip_quantile) for s in starts] if clip else [None] * r
        self.actions = [
            HyperparamActions(_Groups(g), q, DEFAULT_KNOBS)  # type: ignore[arg-type]
            for g, q in zip(self.groups, self.quantiles, strict=True)
        ]
        self.losses = [LossFeatures() for _ in range(r)]
        self.states = [policy.initial_state() for _ in range(r)]
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.stats = StackedGradientStats(r)
        self.loss_sum = [0.0] * r
        self.loss_n = [0] * r
        self.nonfinite = [False] * r
        self.val: list[float | None] = [None] * r
        self.records: list[list[dict[str, Any]]] = [[] for _ in range(r)]
        self.histories: list[list[dict[str, Any]]] = [[] for _ in range(r)]

    def _segment_loss(self, i: int) -> float:
        if self.nonfinite[i] or not self.loss_n[i]:
            return math.nan
        return self.loss_sum[i] / self.loss_n[i]

    def _reset(self, i: int) -> None:
        self.loss_sum[i], self.loss_n[i], self.nonfinite[i], self.val[i] = 0.0, 0, False, None

    def after_step(
        self,
        t: int,
        losses: list[float],
        vals: list[float | None],
        active: list[bool],
        run: _Lockstep,
    ) -> bool:
        """`Controller.step` for every active replica; True if any hyperparameter moved."""
        for i, on in enumerate(active):
            if not on:
                continue
            if math.isfinite(losses[i]):
                self.loss_sum[i] += losses[i]
                self.loss_n[i] += 1
            else:
                self.nonfinite[i] = True
            if vals[i] is not None:
                self.val[i] = vals[i]
        if t % self.stats_every == 0:
            run.sample_stats(self.stats)
        acting = [
            i
            for i, on in enumerate(active)
            if on and t % self.interval[i] == 0 and t < self.total[i]
        ]
        for i, on in enumerate(active):
            if on and t == self.total[i] and i not in acting:
                self._reset(i)  # the guard's last check is all `Controller` does here
        if not acting:
            return False
        self._act(t, acting, run)
        return True

    def _act(self, t: int, acting: list[int], run: _Lockstep) -> None:
        idx = torch.tensor(acting)
        grad_feats = self.stats.features(idx).tolist()
        clipped = run.clipper.clipped_fraction(idx) if run.clipper else [0.0] * len(acting)
        trains, observations = [], []
        for k, i in enumerate(acting):
            train = self._segment_loss(i)
            obs = (
                grad_feats[k]
                + self.losses[i].update(train, self.val[i])
                + [t / self.total[i]]
                + [float(x) for x in [*self.actions[i].relative(), clipped[k]]]
            )
            trains.append(train)
            observations.append([x if math.isfinite(x) else 0.0 for x in obs])
        decisions = self._decide(acting, observations)
        save = torch.zeros(run.size, dtype=torch.bool)
        restore = torch.zeros(run.size, dtype=torch.bool)
        for k, i in enumerate(acting):
            choices, logp, value = decisions[k]
            self.records[i].append(
                {"obs": observations[k], "choices": choices, "logp": logp, "value": value}
            )
            self.actions[i].apply(choices[:-1])
            checkpoint = CHECKPOINT_ACTIONS[choices[-1]]
            save[i] = checkpoint == "save"
            restore[i] = checkpoint == "restore"
            self.histories[i].append(
                {
                    "step": t,
                    "train_loss": trains[k],
                    "val_loss": self.val[i],
                    "checkpoint": checkpoint,
                    **self.actions[i].values(),
                }
            )
            self._reset(i)
        if bool(save.any()):
            run.checkpoints.save(save, run.params, run.optimizer)
        if bool(restore.any()):
            run.params = run.checkpoints.restore(restore, run.params, run.optimizer)

    @torch.no_grad()
    def _decide(
        self, acting: list[int], observations: list[list[float]]
    ) -> list[tuple[list[int], float, float]]:
        """`Policy.act` for the acting replicas, with one batched forward pass: the same moves,
        each sampled with its replica's own generator (log-probability and value per replica)."""
        h = torch.cat([self.states[i][0] for i in acting])
        c = torch.cat([self.states[i][1] for i in acting])
        logits, values, (h, c) = self.policy(
            torch.tensor(observations, dtype=torch.float32), (h, c)
        )
        logps = [lg.log_softmax(-1) for lg in logits]
        out = []
        for k, i in enumerate(acting):
            self.states[i] = (h[k : k + 1], c[k : k + 1])
            if self.greedy:
                choices = [int(lg[k].argmax(-1)) for lg in logits]
            else:
                choices = [
                    int(torch.multinomial(lg[k].softmax(-1), 1, generator=self.generators[i]))
                    for lg in logits
                ]
            logp = sum(float(lp[k, ch]) for lp, ch in zip(logps, choices, strict=True))
            out.append((choices, logp, float(values[k])))
        return out


class _Lockstep:
    """The stacked state of one run: parameters, optimizer, clipper, checkpoints."""

    def __init__(
        self,
        group: TaskGroup,
        starts: Sequence[ReplicaStart],
        clip: bool,
        decoupled: bool,
        backend: str,
    ) -> None:
        self.group = group
        self.size = group.size
        stacked_params = group.stacked_params()
        self.layout = Layout(stacked_params)
        layout = self.layout
        # one flat [R, D] tensor of weights (`Layout`); a dict so checkpoints and the optimizer
        # see the same structure whatever the layout
        self.params: Params = {"flat": layout.flatten(stacked_params)}
        self.optimizer = StackedAdamW(self.params, decoupled=decoupled)
        self.clipper = (
            StackedClipper(self.size, [s.clip_quantile for s in starts]) if clip else None
        )
        self.checkpoints = StackedCheckpoints(self.params, self.optimizer)
        self.hp = HParams.from_groups([s.group() for s in starts])
        self.grads = torch.zeros(0)
        self.stepped = torch.zeros(self.size, dtype=torch.bool)
        template = group.template()
        stacked = compile_stacked(template) if backend in ("auto", "batched") else None
        if backend == "batched" and stacked is None:
            raise ValueError(
                f"backend='batched' needs an nn.Sequential of supported layers; "
                f"{type(template).__name__} is not one (use backend='vmap' or 'auto')"
            )
        self.backend = "batched" if stacked is not None else "vmap"
        loss_name = group.loss
        if stacked is not None:
            forward = stacked

            def train(
                flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
                # One leaf per parameter tensor (views of `flat`), not the flat tensor itself:
                # the backward of a slice writes into a zero tensor of the whole [R, D] row
                # block, once per parameter tensor, which cost more than the model's own
                # backward on wide layers; the gradients are concatenated once instead.
                views = layout.unflatten(flat.detach())
                leaves = {n: v.requires_grad_() for n, v in views.items()}
                losses = stacked_loss(loss_name, forward(leaves, x), y)
                grads = torch.autograd.grad(losses.sum(), list(leaves.values()), allow_unused=True)
                by_name = {
                    n: g if g is not None else torch.zeros_like(v)
                    for (n, v), g in zip(leaves.items(), grads, strict=True)
                }
                return layout.flatten(by_name), losses

            self._train = train
            self._eval = lambda flat, x, y: stacked_loss(
                loss_name, forward(layout.unflatten(flat), x), y
            )
        else:
            loss_fn = LOSSES[loss_name]

            def loss_of(params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return loss_fn(functional_call(template, params, (x,)), y)

            train_params = vmap(grad_and_value(loss_of))
            eval_params = vmap(loss_of)

            def train_vmap(
                flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
                # per parameter tensor, as the batched backend (see there why)
                grads, losses = train_params(layout.unflatten(flat.detach()), x, y)
                return layout.flatten(grads), losses

            self._train = train_vmap
            self._eval = lambda flat, x, y: eval_params(layout.unflatten(flat), x, y)
        self._rows = torch.arange(self.size)[:, None]
        self._chunk = -1
        self._indices = torch.empty(0)

    def _batch(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        chunk, row = divmod(t - 1, INDEX_CHUNK)
        if chunk != self._chunk:
            g = self.group
            self._indices = torch.stack(
                [
                    torch.from_numpy(batch_indices(s, g.n_train, g.batch_size, chunk))
                    for s in g.index_seeds
                ]
            )
            self._chunk = chunk
        idx = self._indices[:, row]
        return self.group.x_train[self._rows, idx], self.group.y_train[self._rows, idx]

    def train_step(self, t: int, active: torch.Tensor) -> torch.Tensor:
        """One step of every active replica; returns the minibatch losses [R] (before the step)."""
        x, y = self._batch(t)
        grads, losses = self._train(self.params["flat"], x, y)
        losses = losses.detach()
        self.stepped = active & torch.isfinite(losses)
        if self.clipper is not None:
            grads = self.clipper.clip(grads, self.layout, self.stepped)
        self.grads = grads
        self.params = self.optimizer.step(self.params, {"flat": grads}, self.hp, self.stepped)
        return losses

    @torch.no_grad()
    def val_losses(self) -> torch.Tensor:
        v = self._eval(self.params["flat"], self.group.x_val, self.group.y_val)
        return torch.where(torch.isfinite(v), v, math.inf)

    def sample_stats(self, stats: StackedGradientStats) -> None:
        stats.sample(
            self.params["flat"], self.grads, self.optimizer, self.hp, self.stepped, self.layout
        )


def _per_replica(value: int | Sequence[int], r: int, name: str) -> list[int]:
    values = [int(value)] * r if isinstance(value, int) else [int(v) for v in value]
    if len(values) != r or min(values) < 1:
        raise ValueError(f"{name} must be a positive integer or one per replica ({r}): {value!r}")
    return values


def schedule_factor(schedule: str, t: int, steps: int) -> float:
    """The multiplier on the start learning rate after step `t` of `steps` (as torch's
    LambdaLR stepped once per step: step t+1 runs at this factor)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t / steps, 1.0)))
    if schedule == "warmup_cosine":
        warm = max(int(round(WARMUP_FRACTION * steps)), 1)
        if t < warm:
            return (t + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min((t - warm) / max(steps - warm, 1), 1.0)))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def _schedules(schedule: str | Sequence[str], r: int) -> list[str]:
    names = [schedule] * r if isinstance(schedule, str) else list(schedule)
    if len(names) != r:
        raise ValueError(f"schedule must be one name or one per replica ({r}), got {len(names)}")
    bad = sorted({n for n in names if n not in SCHEDULES}, key=str)
    if bad:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {bad[0]!r}")
    return names


def run_lockstep(
    group: TaskGroup,
    starts: Sequence[ReplicaStart],
    steps: int | Sequence[int],
    *,
    policy: Policy | None = None,
    n_policy_steps: int | Sequence[int] = 8,
    seeds: Sequence[int] | None = None,
    greedy: bool = False,
    clip: bool | None = None,
    stats_every: int = 4,
    schedule: str | Sequence[str] = "constant",
    decoupled: bool = True,
    val_every: int = 10,
    backend: str = "auto",
) -> LockstepResult:
    """Train every replica of `group` for its number of `steps`, all at once.

    Args:
        group: the replicas (one architecture).
        starts: per replica, its starting hyperparameters.
        steps: run length, one for all or one per replica.
        policy: a control policy (as `Controller`'s, without the guard); None for plain Adam(W).
        n_policy_steps: per replica, how often the policy acts (as `Controller(n_policy_steps)`).
        seeds: per replica, the seed of the policy's action sampling (default 0 each).
        greedy: take the most likely move instead of sampling.
        clip: gradient clipping at a running quantile; by default on with a policy, off without.
        schedule: without a policy, one of `SCHEDULES` (decaying to zero at each replica's end),
            for all replicas or one per replica; see `schedule_factor`.
        decoupled: AdamW (True) or Adam with L2 weight decay (False).
        val_every: evaluate the validation loss every this many steps and at each replica's end.
        backend: one of `BACKENDS`: how the stacked forward and backward passes run.

    Returns:
        per replica, the validation curve [(step, loss)] as `TrainingTask.run` returns it, and
        with a policy the PPO record and controller history.
    """
    r = group.size
    if len(starts) != r:
        raise ValueError(f"starts needs one ReplicaStart per replica ({r}), got {len(starts)}")
    total = _per_replica(steps, r, "steps")
    schedules = _schedules(schedule, r)
    if policy is not None and any(n != "constant" for n in schedules):
        raise ValueError("schedule must be 'constant' when a policy drives the run")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not isinstance(val_every, int) or val_every < 1:
        raise ValueError(f"val_every must be a positive integer, got {val_every!r}")
    if not isinstance(stats_every, int) or stats_every < 1:
        raise ValueError(f"stats_every must be a positive integer, got {stats_every!r}")
    clip = policy is not None if clip is None else bool(clip)
    control = None
    if policy is not None:
        n_policy = _per_replica(n_policy_steps, r, "n_policy_steps")
        if any(n > t for n, t in zip(n_policy, total, strict=True)):
            raise ValueError("n_policy_steps must be at most each replica's steps")
        control = _Control(
            policy,
            starts,
            total,
            n_policy,
            seeds if seeds is not None else [0] * r,
            greedy,
            clip,
            stats_every,
        )
    run = _Lockstep(group, starts, clip, decoupled, backend)
    base_lr = run.hp.lr.clone()
    scheduled = any(n != "constant" for n in schedules)

    def apply_schedule(t: int) -> None:  # the rate of step t+1
        factor = [schedule_factor(n, t, s) for n, s in zip(schedules, total, strict=True)]
        run.hp.lr = base_lr * torch.tensor(factor, dtype=torch.float64)

    if scheduled:  # the first step already runs at the schedule's factor for step 0
        apply_schedule(0)
    ends = torch.tensor(total)
    curves: list[Curve] = [[] for _ in range(r)]
    for t in range(1, max(total) + 1):
        active = ends >= t
        losses = run.train_step(t, active).tolist()
        due = [t <= n and (t % val_every == 0 or t == n) for n in total]
        vals: list[float | None] = [None] * r
        if any(due):
            v = run.val_losses().tolist()
            for i in range(r):
                if due[i]:
                    vals[i] = v[i]
                    curves[i].append((t, v[i]))
        if control is not None:
            moved = control.after_step(t, losses, vals, active.tolist(), run)
            if moved:
                run.hp = HParams.from_groups(control.groups)
                if run.clipper is not None:
                    run.clipper.quantile = torch.tensor(
                        [q.quantile for q in control.quantiles], dtype=torch.float64
                    )
        elif scheduled:
            apply_schedule(t)
    params = run.layout.unflatten(run.params["flat"])
    if control is None:
        return LockstepResult(curves, [[] for _ in range(r)], [[] for _ in range(r)], params)
    return LockstepResult(curves, control.records, control.histories, params)
