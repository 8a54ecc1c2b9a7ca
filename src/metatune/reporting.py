"""Intermediate values from inside a running objective.

`Study.optimize` makes the trial it runs the *current* one, so an objective of any form (a plain
``objective(params)``, a define-by-run ``objective(trial)``, a pipeline's stage) can call
``metatune.report_intermediate(value, step)`` and ``metatune.should_prune()`` without being
handed anything (``metatune.report`` is the HTML report's package),
as Ray Tune's ``tune.report`` works. An executor running trials in other processes sets the
current trial there the same way.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Reporter", "StudyReporter", "current_reporter", "report", "reporting", "should_prune"]


class Reporter(Protocol):
    """Where the reports of one running trial go."""

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class StudyReporter:
    """Reports of trial `number` of `study`, stored at once (so other workers' pruners see
    them) and judged by the study's pruner."""

    def __init__(self, study: Any, number: int) -> None:
        self.study = study
        self.number = number

    def report(self, value: float, step: int) -> None:
        self.study.report(self.number, value, step)

    def should_prune(self) -> bool:
        return bool(self.study.should_prune(self.number))


_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar(
    "metatune_reporter", default=None
)


@contextlib.contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Make `reporter` the current trial's for the duration of the block."""
    token = _current.set(reporter)
    try:
        yield
    finally:
        _current.reset(token)


def current_reporter() -> Reporter:
    reporter = _current.get()
    if reporter is None:
        raise RuntimeError(
            "metatune.report_intermediate / should_prune were called outside a running trial: call them "
            "from an objective that Study.optimize runs, or use study.report(trial, value, "
            "step) and study.should_prune(trial) with ask and tell"
        )
    return reporter


def report(value: float, step: int) -> None:
    """Store `value` at `step` (e.g. the validation loss after an epoch) for the running trial."""
    current_reporter().report(value, step)


def should_prune() -> bool:
    """Whether the study's pruner would stop the running trial at its latest report; if so,
    ``raise metatune.TrialPruned()``."""
    return current_reporter().should_prune()
