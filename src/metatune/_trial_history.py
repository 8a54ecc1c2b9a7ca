"""The trials of one study as a study last read them, re-reading only what may have changed.

A finished trial never changes, so the leading run of finished trials is kept and only trials
from the first unfinished one on are read again at each ask: asking stays cheap as a study grows
to many thousands of trials, on every storage.
"""

from __future__ import annotations

from metatune.storage.base import BaseStorage
from metatune.trial import Trial, counted_cost

__all__ = ["TrialHistory"]


class TrialHistory:
    """Trials 0..k-1 (all finished) are kept; trials from k on are read anew by `refresh`."""

    def __init__(self, storage: BaseStorage, study_id: int) -> None:
        self._storage = storage
        self._study_id = study_id
        self._finished: list[Trial] = []
        self._cost = 0.0
        self._rest: list[Trial] = []

    def refresh(self) -> None:
        fresh = self._storage.get_trials(self._study_id, first_number=len(self._finished))
        i = 0
        while i < len(fresh) and fresh[i].state.finished and fresh[i].number == len(self._finished):
            self._finished.append(fresh[i])
            self._cost += counted_cost(fresh[i])
            i += 1
        self._rest = fresh[i:]

    def trials(self) -> list[Trial]:
        """Every trial as of the last refresh, by number (shared objects: do not modify)."""
        return self._finished + self._rest

    def split(self) -> tuple[list[Trial], list[Trial]]:
        """(finished, running) trials as of the last refresh, each by number."""
        rest_done = [t for t in self._rest if t.state.finished]
        running = [t for t in self._rest if not t.state.finished]
        return self._finished + rest_done, running

    def cost_spent(self) -> float:
        """The recorded cost of the finished trials (see `pipeline.cost_spent`)."""
        return self._cost + sum(counted_cost(t) for t in self._rest if t.state.finished)
