"""The optimizer protocol and its registry.

An optimizer is a pure decision maker: given the finished trials, the ones still running and a
context (space, direction, seed, trial number, and whatever else the study knows), it returns the
parameters to try next. It never runs the objective and never touches storage, so the same object
serves ask/tell, `optimize` and many workers sharing one storage.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from metatune._registry import Registry, construct
from metatune.constraints import OutcomeConstraint
from metatune.direction import Direction
from metatune.pipeline.context import PipelineContext
from metatune.space import Space
from metatune.trial import Trial, TrialState

__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "SuggestContext",
    "register_optimizer",
    "make_optimizer",
    "available_optimizers",
]


@dataclass
class SuggestContext:
    """What the study tells an optimizer besides the trials themselves.

    `pipeline` is set when the study runs a pipeline (its stages, budget and cached prefixes);
    `extra` carries whatever a caller of `Study.ask(extra=...)` adds for a custom optimizer.
    """

    space: Space
    direction: str
    seed: int
    trial_number: int
    extra: dict[str, Any] = field(default_factory=dict)
    pipeline: PipelineContext | None = None
    directions: list[str] | None = None  # a multi-objective study's, each objective's direction

    @property
    def sign(self) -> float:
        """+1 to turn stored values into a loss to minimize, -1 when the study maximizes."""
        return Direction.parse(self.direction).sign


class Optimizer(abc.ABC):
    """Base class: implement `suggest`. Register subclasses with `@register_optimizer("name")`."""

    name: str = "custom"
    multi_objective: bool = False  # True when it handles studies with several directions
    # Outcome constraints a trial must meet to count in the study's result (`best_trials`).
    constraints: Sequence[OutcomeConstraint] = ()

    @abc.abstractmethod
    def suggest(
        self, history: Sequence[Trial], pending: Sequence[Trial], context: SuggestContext
    ) -> dict[str, Any]:
        """Parameters for trial `context.trial_number`, a valid point of `context.space`."""

    @staticmethod
    def completed(history: Sequence[Trial]) -> list[Trial]:
        return [t for t in history if t.state is TrialState.COMPLETE and t.value is not None]


_O = TypeVar("_O", bound=type[Optimizer])


def _check_optimizer(obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Optimizer)):
        raise TypeError(f"{obj!r} must subclass metatune.optimizers.Optimizer")


def _stamp_name(name: str, cls: type[Optimizer]) -> None:
    cls.name = name


OPTIMIZERS: Registry[type[Optimizer]] = Registry(
    "optimizer", check=_check_optimizer, on_register=_stamp_name
)
# Built-ins are imported on first use: BoTorch takes seconds to import.
for _name, _target in {
    "gp": "metatune.optimizers.gp:GPOptimizer",
    "ei": "metatune.optimizers.cost_aware:EIOptimizer",
    "eips": "metatune.optimizers.cost_aware:EIPSOptimizer",
    "carbo": "metatune.optimizers.cost_aware:CArBOOptimizer",
    "ms-carbo": "metatune.optimizers.cost_aware:MSCArBOOptimizer",
    "eeipu": "metatune.optimizers.eeipu:EEIPUOptimizer",
    "eeipu-memo": "metatune.optimizers.eeipu:EEIPUMemoOptimizer",
    "ms-bo": "metatune.optimizers.ms_bo:MSBOOptimizer",
    "mf-gp": "metatune.optimizers.multi_fidelity:MultiFidelityGPOptimizer",
    "nas-bo": "metatune.nas.searchers.nas_bo:NASBO",
    "regularized-evolution": "metatune.nas.searchers.evolution:RegularizedEvolution",
    "local-search": "metatune.nas.searchers.local_search:LocalSearch",
    "mo-gp": "metatune.optimizers.multi_objective:MultiObjectiveGP",
    "nsga2": "metatune.optimizers.nsga2:NSGA2",
}.items():
    OPTIMIZERS.register_lazy(_name, _target)


def register_optimizer(name: str, *, overwrite: bool = False) -> Callable[[_O], _O]:
    """Class decorator that makes an optimizer available as ``Study(optimizer=name)``."""
    return OPTIMIZERS.register(name, overwrite=overwrite)


def available_optimizers() -> list[str]:
    """Names accepted by ``Study(optimizer=...)``."""
    return OPTIMIZERS.names()


def make_optimizer(spec: str | Optimizer, options: dict[str, Any] | None = None) -> Optimizer:
    """Build an optimizer from a registered name and keyword options, or pass one through."""
    if isinstance(spec, Optimizer):
        if options:
            raise ValueError("optimizer_options only apply when optimizer is given by name")
        return spec
    cls = OPTIMIZERS.get(spec)
    options = dict(options or {})
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise TypeError(f"optimizer_options must be a dict of keyword options, got {options!r}")
    return construct(cls, options, f"optimizer {spec!r}")
