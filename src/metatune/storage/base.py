"""The storage protocol: where studies and trials live, shared by every backend.

A backend must make `create_trial` hand out dense, unique trial numbers even when several
processes share it, and must make `finish_trial` durable before it returns, so that a process
killed at any moment loses no completed trial.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metatune._process import identity_is_dead, process_identity
from metatune.exceptions import TrialAlreadyFinished
from metatune.trial import Trial, TrialState, utcnow

__all__ = ["BaseStorage", "StudyRecord", "StudySummary", "process_owner", "owner_is_dead"]


@dataclass
class StudyRecord:
    """What a storage keeps about a study besides its trials."""

    id: int
    name: str
    direction: str
    space: dict[str, Any]
    optimizer: str
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    directions: list[str] | None = None  # every objective's direction, for a multi-objective study


@dataclass
class StudySummary:
    """Trial counts and the best trial of a study: what a list of studies shows, cheap to get
    from a database without reading every trial."""

    counts: dict[str, int]  # trials per state, every TrialState included
    best_number: int | None = None  # a single-objective study's best complete trial
    best_value: float | None = None

    @property
    def n_trials(self) -> int:
        return sum(self.counts.values())


def process_owner() -> str:
    """An identifier of this process, stored with every trial it runs (see `_process`)."""
    return process_identity()


def owner_is_dead(owner: str | None) -> bool:
    """True when `owner` provably names a process that no longer runs."""
    return identity_is_dead(owner)


def check_finished_state(state: TrialState | str) -> TrialState:
    """The state a trial is finished with; ValueError unless complete or failed."""
    if not TrialState(state).finished:
        raise ValueError(f"state must be complete, failed or pruned, got {state!r}")
    return TrialState(state)


class BaseStorage(abc.ABC):
    """Abstract storage; see `InMemoryStorage` and `SQLStorage`.

    `supports_heartbeats` says whether trials in this storage may be run by other processes, so
    that a study sends heartbeats while a trial runs and fails trials whose owner is gone.
    """

    supports_heartbeats: bool = True

    # Studies ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_study(
        self,
        name: str,
        direction: str,
        space: dict[str, Any],
        optimizer: str,
        optimizer_options: dict[str, Any] | None = None,
        seed: int | None = None,
        directions: list[str] | None = None,
    ) -> StudyRecord:
        """Create a study; raise DuplicateStudyError if `name` exists. `directions` is set for
        a multi-objective study (`direction` is then its first)."""

    @abc.abstractmethod
    def get_study(self, name: str) -> StudyRecord | None:
        """The study called `name`, or None."""

    @abc.abstractmethod
    def list_studies(self) -> list[StudyRecord]:
        """All studies, oldest first."""

    @abc.abstractmethod
    def delete_study(self, name: str) -> None:
        """Remove a study and its trials; KeyError if absent."""

    # Trials -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_trial(
        self,
        study_id: int,
        params: dict[str, Any],
        system_attrs: dict[str, Any] | None = None,
    ) -> Trial:
        """Insert a RUNNING trial owned by this process with the next free number."""

    @abc.abstractmethod
    def set_trial_params(self, study_id: int, number: int, params: dict[str, Any]) -> None:
        """Set the parameters of a RUNNING trial (a trial is numbered first, then suggested)."""

    @abc.abstractmethod
    def finish_trial(
        self,
        study_id: int,
        number: int,
        state: TrialState,
        value: float | None = None,
        error: str | None = None,
        user_attrs: dict[str, Any] | None = None,
        system_attrs: dict[str, Any] | None = None,
        values: list[float] | None = None,
    ) -> Trial:
        """Mark a RUNNING trial finished, durably; TrialAlreadyFinished if it is finished.
        `values` are a multi-objective trial's values (`value` is then the first)."""

    @abc.abstractmethod
    def report_intermediate(self, study_id: int, number: int, step: int, value: float) -> None:
        """Store `value` at `step` for a RUNNING trial, durably (TrialAlreadyFinished if it is
        finished). A second report at the same step is ignored: the first one stands."""

    @abc.abstractmethod
    def get_trials(
        self, study_id: int, states: Iterable[TrialState] | None = None, first_number: int = 0
    ) -> list[Trial]:
        """Trials of a study ordered by number, optionally filtered by state; only those numbered
        `first_number` or more (a study re-reads only what may have changed since its last read,
        since finished trials never change)."""

    @abc.abstractmethod
    def heartbeat(self, study_id: int, number: int) -> None:
        """Record that the trial's owner is still alive."""

    @abc.abstractmethod
    def _running_owners(self, study_id: int) -> list[tuple[int, str | None, datetime | None]]:
        """(number, owner, last heartbeat) of every RUNNING trial."""

    def summarize_study(self, study: StudyRecord) -> StudySummary:
        """Counts by state and the best complete trial (none for a multi-objective study).
        This default reads every trial; a database answers it with aggregate queries."""
        counts = {s.value: 0 for s in TrialState}
        best: Trial | None = None
        sign = -1.0 if study.direction == "maximize" else 1.0
        for t in self.get_trials(study.id):
            counts[t.state.value] = counts.get(t.state.value, 0) + 1
            candidate = t.state is TrialState.COMPLETE and t.value is not None
            if (
                candidate
                and not study.directions
                and (best is None or sign * t.value < sign * best.value)
            ):  # type: ignore[operator]
                best = t
        if best is None:
            return StudySummary(counts)
        return StudySummary(counts, best.number, float(best.value))  # type: ignore[arg-type]

    def fail_stale_trials(self, study_id: int, grace_seconds: float = 60.0) -> list[int]:
        """Fail RUNNING trials whose owner is gone: a dead local process or a stale heartbeat.

        A trial is stale when its owner process on this host no longer exists, or when no
        heartbeat arrived for `grace_seconds` (for owners on other machines). Returns the numbers
        of the trials failed.
        """
        now = utcnow()
        failed = []
        for number, owner, beat in self._running_owners(study_id):
            dead = owner_is_dead(owner)
            stale = beat is not None and (now - beat).total_seconds() > grace_seconds
            if dead or stale:
                reason = (
                    f"owner process {owner} died"
                    if dead
                    else f"no heartbeat from {owner} for {grace_seconds:g}s"
                )
                try:
                    self.finish_trial(
                        study_id, number, TrialState.FAILED, error=f"stale trial: {reason}"
                    )
                except TrialAlreadyFinished:  # finished by its owner in the meantime
                    continue
                failed.append(number)
        return failed

    def close(self) -> None:  # noqa: B027  (an optional hook, not abstract)
        """Release connections; the default does nothing."""
