"""The optimizer protocol and its registry.

An optimizer is a pure decision maker: given the finished trials, the ones still running and a
context (space, direction, seed, trial number, and whatever else the study knows), it returns the
parameters to try next. It never runs the objective and never touches storage, so the same object
serves ask/tell, `optimize` and many workers sharing one storage.
"""

from __future__ import annotations

import abc
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from metatune.space import Space
from metatune.trial import Trial, TrialState

__all__ = [
    "Optimizer",
    "SuggestContext",
    "register_optimizer",
    "make_optimizer",
    "available_optimizers",
]


@dataclass
class SuggestContext:
    """What the study tells an optimizer besides the trials themselves."""

    space: Space
    direction: str
    seed: int
    trial_number: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sign(self) -> float:
        """+1 to turn stored values into a loss to minimize, -1 when the study maximizes."""
        return 1.0 if self.direction == "minimize" else -1.0


class Optimizer(abc.ABC):
    """Base class: implement `suggest`. Register subclasses with `@register_optimizer("name")`."""

    name: str = "custom"

    @abc.abstractmethod
    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        """Parameters for trial `context.trial_number`, a valid point of `context.space`."""

    @staticmethod
    def completed(history: Sequence[Trial]) -> list[Trial]:
        return [t for t in history if t.state is TrialState.COMPLETE and t.value is not None]


_O = TypeVar("_O", bound=type[Optimizer])
# name -> class, or "module:Class" for built-ins imported on first use (BoTorch is slow to import)
_REGISTRY: dict[str, type[Optimizer] | str] = {
    "gp": "metatune.optimizers.gp:GPOptimizer",
    "ei": "metatune.optimizers.cost_aware:EIOptimizer",
    "eips": "metatune.optimizers.cost_aware:EIPSOptimizer",
    "carbo": "metatune.optimizers.cost_aware:CArBOOptimizer",
    "ms-carbo": "metatune.optimizers.cost_aware:MSCArBOOptimizer",
    "eeipu": "metatune.optimizers.eeipu:EEIPUOptimizer",
    "eeipu-memo": "metatune.optimizers.eeipu:EEIPUMemoOptimizer",
    "ms-bo": "metatune.optimizers.eeipu:MSBOOptimizer",
}


def register_optimizer(name: str) -> Callable[[_O], _O]:
    """Class decorator that makes an optimizer available as ``Study(optimizer=name)``."""

    if not isinstance(name, str) or not name:
        raise ValueError(f"optimizer name must be a non-empty string, got {name!r}")

    def deco(cls: _O) -> _O:
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
            raise TypeError(f"{cls!r} must subclass metatune.optimizers.Optimizer")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def _resolve(name: str) -> type[Optimizer]:
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        _REGISTRY[name] = entry
    return entry


def available_optimizers() -> list[str]:
    """Names accepted by ``Study(optimizer=...)``."""
    return sorted(_REGISTRY)


def make_optimizer(spec: str | Optimizer, options: dict[str, Any] | None = None) -> Optimizer:
    """Build an optimizer from a registered name and keyword options, or pass one through."""
    if isinstance(spec, Optimizer):
        if options:
            raise ValueError("optimizer_options only apply when optimizer is given by name")
        return spec
    if not isinstance(spec, str) or spec not in _REGISTRY:
        raise ValueError(
            f"unknown optimizer {spec!r}; available: {', '.join(available_optimizers())}"
        )
    cls = _resolve(spec)
    options = dict(options or {})
    accepted = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        bad = sorted(set(options) - set(accepted) - {"self"})
        if bad:
            allowed = sorted(set(accepted) - {"self"})
            raise ValueError(f"unknown option(s) {bad} for optimizer {spec!r}; allowed: {allowed}")
    return cls(**options)
