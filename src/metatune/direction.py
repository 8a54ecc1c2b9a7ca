"""Which way a study optimizes, and the one best-first ordering of trials that follows from it."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from metatune.trial import Trial, TrialState

__all__ = ["Direction"]


class Direction(str, enum.Enum):
    """ "minimize" or "maximize"; compares equal to those strings."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"

    @classmethod
    def parse(cls, value: Any, argument: str = "direction") -> Direction:
        """The direction named by `value`; ValueError naming `argument` and the allowed values."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"{argument} must be 'minimize' or 'maximize', got {value!r}"
            ) from None

    @property
    def sign(self) -> float:
        """+1 to turn stored values into a loss to minimize, -1 when the study maximizes."""
        return 1.0 if self is Direction.MINIMIZE else -1.0

    def loss(self, value: float) -> float:
        """`value` as a loss: lower is better whatever the direction."""
        return self.sign * float(value)

    def best_first(self, trials: Iterable[Trial]) -> list[Trial]:
        """The completed trials with a value, best first; ties go to the earlier trial."""
        done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
        return sorted(done, key=lambda t: (self.loss(t.value), t.number))  # type: ignore[arg-type]

    def best(self, trials: Iterable[Trial]) -> Trial | None:
        """The best completed trial, or None."""
        ranked = self.best_first(trials)
        return ranked[0] if ranked else None

    def __str__(self) -> str:
        return self.value
