"""The hyperparameter-control policy: a small recurrent network with one head per knob.

Observations are normalized by running statistics (so meta-training can feed features of any
spread) and clipped; an MLP feeds an LSTM cell with layer norm; each controlled knob gets a
categorical head over its relative moves, one more head chooses a checkpoint action
(keep going / save / restore), and a value head serves PPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["PolicyConfig", "Policy", "Decision", "RunningNorm", "CHECKPOINT_ACTIONS"]

CHECKPOINT_ACTIONS = ("none", "save", "restore")


@dataclass
class Decision:
    """One policy step: the move per head, its log-probability, the value estimate, new state."""

    choices: list[int]
    logp: float
    value: float
    state: tuple[torch.Tensor, torch.Tensor]


class RunningNorm(nn.Module):
    """Running mean and variance of observations (updated only when asked), clipped output."""

    def __init__(self, size: int, clip: float = 5.0) -> None:
        super().__init__()
        self.clip = clip
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("var", torch.ones(size))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1])
        n, mean, var = x.shape[0], x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / (self.var.sqrt() + 1e-8)).clamp(-self.clip, self.clip)


@dataclass
class PolicyConfig:
    obs_size: int
    n_choices: list[int]  # per knob, in the controller's knob order
    hidden: int = 64
    knob_names: list[str] = field(default_factory=list)
    # index of the "keep" move per knob head; the untrained policy leans towards it (keep_bias
    # on its logit) so that early exploration is a perturbation of a sane run, not a random walk
    keep_index: list[int] = field(default_factory=list)
    keep_bias: float = 2.0


class Policy(nn.Module):
    """Recurrent actor-critic. `forward(obs, state)` -> (logits per head, value, new state)."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if config.obs_size < 1 or not config.n_choices or min(config.n_choices) < 1:
            raise ValueError(f"bad policy config: {config}")
        self.config = config
        h = config.hidden
        self.norm = RunningNorm(config.obs_size)
        self.pre = nn.Sequential(nn.Linear(config.obs_size, h), nn.Tanh())
        self.cell = nn.LSTMCell(h, h)
        self.ln = nn.LayerNorm(h)
        self.post = nn.Sequential(nn.Linear(h, h), nn.Tanh())
        sizes = [*config.n_choices, len(CHECKPOINT_ACTIONS)]
        self.heads = nn.ModuleList(nn.Linear(h, n) for n in sizes)
        self.value = nn.Linear(h, 1)
        if config.keep_index and len(config.keep_index) != len(config.n_choices):
            raise ValueError(f"keep_index needs one entry per knob head: {config}")
        keep = dict(enumerate(config.keep_index))
        keep[len(sizes) - 1] = CHECKPOINT_ACTIONS.index("none")
        for i, head in enumerate(self.heads):  # start near uniform, leaning towards "keep"
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            if i in keep:
                with torch.no_grad():
                    head.bias[keep[i]] = config.keep_bias

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.config.hidden
        return torch.zeros(batch, h), torch.zeros(batch, h)

    def forward(
        self, obs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[list[torch.Tensor], torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        x = self.pre(self.norm(obs))
        hx, cx = self.cell(x, state)
        z = self.post(self.ln(hx))
        return [head(z) for head in self.heads], self.value(z).squeeze(-1), (hx, cx)

    @torch.no_grad()
    def act(
        self,
        obs: Sequence[float],
        state: tuple[torch.Tensor, torch.Tensor],
        greedy: bool = True,
        generator: torch.Generator | None = None,
    ) -> Decision:
        """Choose one move per head for one observation (the last head is the checkpoint action)."""
        logits, value, state = self(torch.tensor([list(obs)], dtype=torch.float32), state)
        if greedy:
            choices = [int(lg.argmax(-1)) for lg in logits]
        else:
            choices = [
                int(torch.multinomial(lg.softmax(-1)[0], 1, generator=generator)) for lg in logits
            ]
        logp = sum(float(lg.log_softmax(-1)[0, c]) for lg, c in zip(logits, choices, strict=True))
        return Decision(choices, logp, float(value[0]), state)

    # Persistence -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write config and weights (a plain dict of tensors and lists: loads with weights_only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save({"config": asdict(self.config), "state_dict": self.state_dict()}, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """A policy written by `save`; ValueError naming the file if it is not one."""
        try:
            blob: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"no policy file at {path}") from None
        except Exception as exc:  # not a torch file, truncated, or pickled objects refused
            raise ValueError(
                f"{path} is not a metatune policy file ({type(exc).__name__}); "
                "give a file written by Policy.save or `metatune lhopt train`"
            ) from None
        try:
            policy = cls(PolicyConfig(**blob["config"]))
            policy.load_state_dict(blob["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"{path} is not a metatune policy file: {type(exc).__name__}: {exc}"
            ) from None
        return policy.eval()
