"""Configuration dataclasses for multilevel problems and the engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_PRECISIONS = ("fp32", "bf16", "fp16")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class Config:
    """Per-problem settings.

    ``method`` names the hypergradient method used on hops where this problem is the *lower*
    problem (its best-response Jacobian); ``options`` holds that method's settings, e.g.
    ``{"iterations": 20, "alpha": 0.1}`` for Neumann. ``unroll_steps`` optimizer steps of this
    problem (each of ``gradient_accumulation`` training steps) happen before its upper problems step.
    """

    method: str = "darts"
    options: dict[str, Any] = field(default_factory=dict)
    unroll_steps: int = 1
    gradient_accumulation: int = 1
    gradient_clipping: float | None = None
    warmup_steps: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a non-empty string, got {self.method!r}")
        if not isinstance(self.options, dict):
            raise ValueError(f"options must be a dict, got {type(self.options).__name__}")
        _check_int("unroll_steps", self.unroll_steps, 1)
        _check_int("gradient_accumulation", self.gradient_accumulation, 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        if self.gradient_clipping is not None and not self.gradient_clipping > 0:
            raise ValueError(
                f"gradient_clipping must be None or a positive float, got {self.gradient_clipping!r}"
            )
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")


@dataclass
class EngineConfig:
    """Engine settings: iterations, validation cadence and logging.

    ``logger`` is None (record only), ``"stdout"`` (print) or a callable
    ``logger(problem_name, global_step, metrics_dict)``; losses are logged every ``log_step``
    training steps of each problem. ``validation_fn(engine) -> dict | None`` runs every
    ``valid_step`` iterations unless ``Engine.validation`` is overridden.

    ``distributed=True`` trains data-parallel over the already-initialized default
    ``torch.distributed`` process group: replicas are synchronized from rank 0 when the engine is
    built and each optimizer step of each problem all-reduces its full gradient (direct plus
    hypergradient) once, as one flattened bucket averaged over the world size. See
    :mod:`metatune.mlo.distributed`.
    """

    train_iters: int = 1000
    valid_step: int | None = None
    log_step: int = 1
    logger: str | Callable[[str, int, dict[str, float]], None] | None = None
    validation_fn: Callable[[Any], dict[str, float] | None] | None = None
    distributed: bool = False

    def __post_init__(self) -> None:
        _check_int("train_iters", self.train_iters, 0)
        _check_int("log_step", self.log_step, 1)
        if self.valid_step is not None:
            _check_int("valid_step", self.valid_step, 1)
        if not isinstance(self.distributed, bool):
            raise ValueError(f"distributed must be a bool, got {self.distributed!r}")
        if not (self.logger is None or self.logger == "stdout" or callable(self.logger)):
            raise ValueError(f"logger must be None, 'stdout' or a callable, got {self.logger!r}")
