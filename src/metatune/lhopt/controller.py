"""`Controller`: a learned policy adjusting a torch Adam/AdamW optimizer while it trains.

Two lines in any training loop::

    ctl = Controller(optimizer, total_steps=10_000)  # policy="default": the shipped one
    ...
    optimizer.step()
    ctl.step(loss=loss.item(), val_loss=val_loss_or_None)

Every `stats_every` steps the controller samples gradient statistics; every
`total_steps / n_policy_steps` steps it builds the unitless observation, asks the policy for one
relative move per hyperparameter (and a checkpoint action) and applies it to every param_group.
Gradient clipping runs inside `optimizer.step()` through a pre-hook.

A divergence guard sits outside the learned policy (on by default, off during meta-training):
at every policy step it keeps an in-memory copy of the state with the lowest mean training loss
so far. When the mean training loss since the last policy step is non-finite or (for positive
losses) above `guard_factor` times that best one, it restores the copy and divides every
learning rate by 10 before the policy acts. (Measured against the best loss, not the first: a
run started far too high has a huge first loss, and a policy raising the rate from there would
never trip a guard measured against it.) The same check runs once more at the last step, so a
run does not end on a diverged segment when a better state was kept.
"""

from __future__ import annotations

import math
import numbers
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from metatune.lhopt.actions import DEFAULT_KNOBS, Checkpoints, GradientClipper, HyperparamActions
from metatune.lhopt.features import RunFeatures
from metatune.lhopt.policy import CHECKPOINT_ACTIONS, Policy, PolicyConfig

__all__ = ["Controller", "default_policy_path", "observation_size"]


# policies shipped inside the package, by name: "default" is the current one, "base" the first
# (2026-11-23), kept because the current one and the benchmark candidates were fine-tuned from it
SHIPPED_POLICIES = ("default", "base")


def default_policy_path(name: str = "default") -> Path:
    """Where a shipped pretrained policy (see SHIPPED_POLICIES) lives inside the package."""
    return Path(str(resources.files("metatune.lhopt").joinpath(f"policies/{name}.pt")))


def observation_size(n_knobs: int) -> int:
    """Length of the controller's observation for `n_knobs` controlled hyperparameters."""
    return RunFeatures().size_without_hparams + n_knobs + 1  # + clipped fraction


def _as_loss(value: Any, argument: str) -> float:
    """A loss as a float: a number or a one-element tensor; TypeError naming `argument`."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(
                f"{argument} must be a number or a one-element tensor, got {value.shape}"
            )
        return float(value.detach())
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        and not hasattr(value, "__float__")
    ):
        raise TypeError(f"{argument} must be a number or a one-element tensor, got {value!r}")
    return float(value)


def _resolve_policy(policy: str | Path | Policy) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str) and policy in SHIPPED_POLICIES:
        path = default_policy_path(policy)
        if not path.exists():
            raise FileNotFoundError(
                f"the shipped policy file is missing from this installation ({path}); reinstall "
                "metatune, or pass a Policy or a file written by `metatune lhopt train`"
            )
        return Policy.load(path)
    return Policy.load(policy)


class Controller:
    """Drives lr, betas, eps, weight decay and a clipping quantile of `optimizer` with `policy`."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        policy: str | Path | Policy = "default",
        n_policy_steps: int | None = None,
        stats_every: int = 4,
        clip: bool = True,
        greedy: bool = True,
        seed: int = 0,
        recorder: list[dict[str, Any]] | None = None,
        guard: bool = True,
        guard_factor: float = 1.5,
    ) -> None:
        if (
            isinstance(total_steps, bool)
            or not isinstance(total_steps, numbers.Integral)
            or total_steps < 1
        ):
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        if n_policy_steps is None:
            n_policy_steps = int(min(max(total_steps // 25, 8), 64, total_steps))
        if not isinstance(n_policy_steps, int) or not 1 <= n_policy_steps <= total_steps:
            raise ValueError(
                f"n_policy_steps must be an integer in [1, total_steps={total_steps}], "
                f"got {n_policy_steps!r}"
            )
        if not isinstance(stats_every, int) or stats_every < 1:
            raise ValueError(f"stats_every must be a positive integer, got {stats_every!r}")
        if not (isinstance(guard_factor, numbers.Real) and guard_factor > 1):
            raise ValueError(f"guard_factor must be a number > 1, got {guard_factor!r}")
        self.optimizer = optimizer
        self.total_steps = int(total_steps)
        self.interval = max(1, self.total_steps // n_policy_steps)
        self.stats_every = stats_every
        self.greedy = greedy
        # Everything that can fail is checked before the clipping hook is installed.
        self.policy = _resolve_policy(policy)
        expected = self.policy_config(clip)
        got = self.policy.config
        if (got.obs_size, list(got.n_choices)) != (expected.obs_size, expected.n_choices):
            raise ValueError(
                f"policy expects observations of size {got.obs_size} and moves {got.n_choices}; "
                f"this controller gives {expected.obs_size} and {expected.n_choices} "
                f"(clip={clip} changes the knobs)"
            )
        HyperparamActions.check_optimizer(optimizer)
        self.clipper = GradientClipper(optimizer) if clip else None
        self.actions = HyperparamActions(optimizer, self.clipper, DEFAULT_KNOBS)
        self.checkpoints = Checkpoints(optimizer)
        self.guard = Checkpoints(optimizer) if guard else None
        self.guard_factor = float(guard_factor)
        self._best_loss = math.inf
        self.features = RunFeatures()
        self._state = self.policy.initial_state()
        self._generator = torch.Generator().manual_seed(seed)
        self._t = 0
        self._loss_sum, self._loss_n, self._nonfinite = 0.0, 0, False
        self._val: float | None = None
        self.history: list[dict[str, Any]] = []
        self.recorder = recorder

    @staticmethod
    def policy_config(clip: bool = True, hidden: int = 64) -> PolicyConfig:
        """The config of a policy that fits a controller built with these options."""
        knobs = [k for k in DEFAULT_KNOBS if clip or k.name != "clip_quantile"]
        return PolicyConfig(
            observation_size(len(knobs)),
            [len(k.choices) for k in knobs],
            hidden=hidden,
            knob_names=[k.name for k in knobs],
            keep_index=[k.keep_choice for k in knobs],
        )

    def step(
        self, loss: float | torch.Tensor, val_loss: float | torch.Tensor | None = None
    ) -> None:
        """Call once per training step, after `optimizer.step()`."""
        loss = _as_loss(loss, "loss")
        val = None if val_loss is None else _as_loss(val_loss, "val_loss")  # before any change
        self._t += 1
        if math.isfinite(loss):
            self._loss_sum += loss
            self._loss_n += 1
        else:
            self._nonfinite = True
        if val is not None:
            self._val = val
        if self._t % self.stats_every == 0:
            self.features.gradients.sample(self.optimizer)
        if self._t % self.interval == 0 and self._t < self.total_steps:
            self._act()
        elif self._t == self.total_steps and self._loss_n + self._nonfinite > 0:
            self._finish()

    def _segment_loss(self) -> float:
        """Mean training loss since the last policy step (NaN if any was non-finite)."""
        return math.nan if self._nonfinite or not self._loss_n else self._loss_sum / self._loss_n

    def _reset_segment(self) -> None:
        self._loss_sum, self._loss_n, self._nonfinite, self._val = 0.0, 0, False, None

    def _act(self) -> None:
        train = self._segment_loss()
        guarded = self._check_divergence(train)
        clipped = self.clipper.clipped_fraction() if self.clipper else 0.0
        obs = self.features.observe(
            train, self._val, self._t / self.total_steps, [*self.actions.relative(), clipped]
        )
        decision = self.policy.act(obs, self._state, greedy=self.greedy, generator=self._generator)
        self._state, choices = decision.state, decision.choices
        if self.recorder is not None:  # meta-training keeps what PPO needs
            self.recorder.append(
                {"obs": obs, "choices": choices, "logp": decision.logp, "value": decision.value}
            )
        self.actions.apply(choices[:-1])
        checkpoint = CHECKPOINT_ACTIONS[choices[-1]]
        if checkpoint == "save":
            self.checkpoints.save()
        elif checkpoint == "restore":
            self.checkpoints.restore()
        self.history.append(
            {
                "step": self._t,
                "train_loss": train,
                "val_loss": self._val,
                "checkpoint": checkpoint,
                "guard_restored": guarded,
                **self.actions.values(),
            }
        )
        self._reset_segment()

    def _finish(self) -> None:
        """The last step: the guard's final check, so the run does not end diverged."""
        if self._check_divergence(self._segment_loss()) and self.history:
            self.history[-1]["guard_restored_at_end"] = True
        self._reset_segment()

    def _check_divergence(self, train: float) -> bool:
        """The guard: keep the best state; on divergence restore it and cut the lr tenfold."""
        if self.guard is None:
            return False
        best = self._best_loss
        diverged = not math.isfinite(train) or (
            math.isfinite(best) and best > 0 and train > self.guard_factor * best
        )
        if diverged:
            self.guard.restore()
            lr_knob = next(k for k in DEFAULT_KNOBS if k.name == "lr")
            for group in self.optimizer.param_groups:
                group["lr"] = max(group["lr"] * 0.1, lr_knob.low)
            return True
        if train < self._best_loss:
            self._best_loss = train
            self.guard.save()
        return False
