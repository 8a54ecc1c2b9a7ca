"""The pruner protocol and its registry.

A pruner decides, each time a running trial reports an intermediate value, whether to stop it.
Like an optimizer it is a pure decision maker: it reads the trial's reports and the other
trials' (as stored, so workers sharing a storage see each other), and never writes anything.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from metatune._registry import Registry, construct
from metatune.direction import Direction
from metatune.trial import Trial

__all__ = [
    "DEFAULT_PRUNER",
    "PRUNERS",
    "Pruner",
    "NopPruner",
    "make_pruner",
    "register_pruner",
]

DEFAULT_PRUNER = "successive-halving"
"""The pruner a study uses when it is given none and its trials report."""


class Pruner(abc.ABC):
    """Base class: implement `prune`. Register subclasses with `@register_pruner("name")`."""

    name: str = "custom"

    @abc.abstractmethod
    def prune(self, trial: Trial, trials: Sequence[Trial], direction: Direction) -> bool:
        """True to stop `trial` (RUNNING, its latest report at `trial.last_step`) now.

        `trials` are every trial of the study by number (this one included), each with its
        `intermediate_values`; `direction` says whether lower or higher values are better.
        """


_P = TypeVar("_P", bound=type[Pruner])


def _check_pruner(obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, Pruner)):
        raise TypeError(f"{obj!r} must subclass metatune.pruners.Pruner")


def _stamp_name(name: str, cls: type[Pruner]) -> None:
    cls.name = name


PRUNERS: Registry[type[Pruner]] = Registry("pruner", check=_check_pruner, on_register=_stamp_name)
# Built-ins are registered lazily, like the optimizers: `make_pruner` finds them by name
# whichever module a caller imported first.
for _name, _target in {
    "median": "metatune.pruners.percentile:MedianPruner",
    "percentile": "metatune.pruners.percentile:PercentilePruner",
    "successive-halving": "metatune.pruners.successive_halving:SuccessiveHalvingPruner",
    "hyperband": "metatune.pruners.hyperband:HyperbandPruner",
}.items():
    PRUNERS.register_lazy(_name, _target)


def register_pruner(name: str, *, overwrite: bool = False) -> Callable[[_P], _P]:
    """Class decorator that makes a pruner available as ``Study(pruner=name)``."""
    return PRUNERS.register(name, overwrite=overwrite)


@register_pruner("none")
class NopPruner(Pruner):
    """Never prunes: reports are stored and shown, every trial runs to the end."""

    def prune(self, trial: Trial, trials: Sequence[Trial], direction: Direction) -> bool:
        return False


def make_pruner(spec: str | Pruner | None, options: dict[str, Any] | None = None) -> Pruner:
    """A pruner from a registered name and keyword options, or one passed through; None gives
    DEFAULT_PRUNER (a study's should_prune uses it unless told otherwise)."""
    if spec is None:
        spec = DEFAULT_PRUNER
    if isinstance(spec, Pruner):
        if options:
            raise ValueError("pruner_options only apply when pruner is given by name")
        return spec
    cls = PRUNERS.get(spec)
    if options is not None and not (
        isinstance(options, dict) and all(isinstance(k, str) for k in options)
    ):
        raise TypeError(f"pruner_options must be a dict of keyword options, got {options!r}")
    options = dict(options or {})
    return construct(cls, options, f"pruner {spec!r}")
