"""In-memory storage: the default for a study with no `storage`; lives as long as the process."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from metatune.exceptions import DuplicateStudyError, TrialAlreadyFinished
from metatune.storage.base import (
    BaseStorage,
    StudyRecord,
    check_finished_state,
    process_owner,
)
from metatune.trial import Trial, TrialState, utcnow


class InMemoryStorage(BaseStorage):
    """Thread-safe storage in a dict; returns copies so callers cannot mutate stored trials."""

    supports_heartbeats = False  # one process: no other owner can die or go silent

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[str, StudyRecord] = {}
        self._trials: dict[int, list[Trial]] = {}
        self._meta: dict[tuple[int, int], tuple[str, datetime]] = {}
        self._next_id = 1

    def create_study(
        self,
        name,
        direction,
        space,
        optimizer,
        optimizer_options=None,
        seed=None,
        directions=None,
    ):
        with self._lock:
            if name in self._studies:
                raise DuplicateStudyError(f"a study named {name!r} already exists")
            rec = StudyRecord(
                id=self._next_id,
                name=name,
                direction=direction,
                space=copy.deepcopy(space),
                optimizer=optimizer,
                optimizer_options=dict(optimizer_options or {}),
                seed=seed,
                directions=list(directions) if directions else None,
            )
            self._next_id += 1
            self._studies[name] = rec
            self._trials[rec.id] = []
            return copy.deepcopy(rec)

    def get_study(self, name: str) -> StudyRecord | None:
        with self._lock:
            rec = self._studies.get(name)
            return copy.deepcopy(rec) if rec else None

    def list_studies(self) -> list[StudyRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in sorted(self._studies.values(), key=lambda r: r.id)]

    def delete_study(self, name: str) -> None:
        with self._lock:
            rec = self._studies.pop(name)
            self._trials.pop(rec.id, None)

    def create_trial(self, study_id: int, params: dict[str, Any], system_attrs=None) -> Trial:
        with self._lock:
            trials = self._trials[study_id]
            t = Trial(
                number=len(trials), params=dict(params), system_attrs=dict(system_attrs or {})
            )
            trials.append(t)
            self._meta[(study_id, t.number)] = (process_owner(), utcnow())
            return copy.deepcopy(t)

    def set_trial_params(self, study_id: int, number: int, params: dict[str, Any]) -> None:
        with self._lock:
            t = self._trial(study_id, number)
            if t.state.finished:
                raise TrialAlreadyFinished(number, t.state.value)
            t.params = dict(params)

    def finish_trial(
        self,
        study_id,
        number,
        state,
        value=None,
        error=None,
        user_attrs=None,
        system_attrs=None,
        values=None,
    ) -> Trial:
        check_finished_state(state)
        with self._lock:
            t = self._trial(study_id, number)
            if t.state.finished:
                raise TrialAlreadyFinished(number, t.state.value)
            t.state = TrialState(state)
            t.value = value
            t.values = None if values is None else [float(v) for v in values]
            t.error = error
            t.finished_at = utcnow()
            t.user_attrs.update(user_attrs or {})
            t.system_attrs.update(system_attrs or {})
            return copy.deepcopy(t)

    def report_intermediate(self, study_id: int, number: int, step: int, value: float) -> None:
        with self._lock:
            t = self._trial(study_id, number)
            if t.state.finished:
                raise TrialAlreadyFinished(number, t.state.value)
            t.intermediate_values.setdefault(int(step), float(value))

    def _trial(self, study_id: int, number: int) -> Trial:
        trials = self._trials[study_id]
        if isinstance(number, bool) or not 0 <= number < len(trials):  # no negative indexing
            raise KeyError(f"study {study_id} has no trial {number}")
        return trials[number]

    def get_trials(
        self, study_id: int, states: Iterable[TrialState] | None = None, first_number: int = 0
    ) -> list[Trial]:
        with self._lock:
            wanted = None if states is None else {TrialState(s) for s in states}
            return [
                copy.deepcopy(t)
                for t in self._trials[study_id][max(first_number, 0) :]
                if wanted is None or t.state in wanted
            ]

    def heartbeat(self, study_id: int, number: int) -> None:
        with self._lock:
            owner, _ = self._meta[(study_id, number)]
            self._meta[(study_id, number)] = (owner, utcnow())

    def _running_owners(self, study_id: int):
        with self._lock:
            return [
                (t.number, *self._meta[(study_id, t.number)])
                for t in self._trials[study_id]
                if t.state is TrialState.RUNNING
            ]
