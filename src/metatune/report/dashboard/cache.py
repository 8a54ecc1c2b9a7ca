"""The dashboard's memory of each study: trials read incrementally, figures kept per version.

Finished trials never change, so after the first read only trials numbered from the lowest one
still running (or past the last one) are read again. A study's figures are rebuilt only when
its trials changed, and parameter importance (a forest fit) only when enough new trials came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metatune.report.data import StudyView
from metatune.storage import BaseStorage, StudyRecord
from metatune.trial import Trial, TrialState

__all__ = ["StudyCache", "StudyEntry"]

# Importance is refitted when the completed trials grew by this share, or after this many seconds
# with any new completed trial: a fit costs about a second on a large study.
_IMPORTANCE_GROWTH = 0.1
_IMPORTANCE_MAX_AGE_S = 30.0


@dataclass
class StudyEntry:
    """What is known of one study: its trials by number and from where to read again."""

    record: StudyRecord
    trials: dict[int, Trial] = field(default_factory=dict)
    reread_from: int = 0
    version: str = ""
    figures: bytes | None = None  # the /api/study answer for `figures_version`
    figures_version: str = ""
    importance: Any = None
    importance_done: int = -1
    importance_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)  # trials and memos
    build_lock: threading.Lock = field(default_factory=threading.Lock)  # figure builds

    def view(self) -> StudyView:
        return StudyView.from_record(self.record, list(self.trials.values()))


class StudyCache:
    """Trials of every study of `storage`, refreshed on demand (thread-safe)."""

    def __init__(self, storage: BaseStorage, clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self._clock = clock
        self._entries: dict[str, StudyEntry] = {}
        self._lock = threading.Lock()
        self.reads = 0  # trials read from the storage so far (for tests of incremental reading)

    def studies(self) -> list[StudyRecord]:
        return self.storage.list_studies()

    def entry(self, name: str) -> StudyEntry | None:
        """The study called `name` with its trials brought up to date, or None if there is none."""
        with self._lock:
            entry = self._entries.get(name)
        if entry is None:
            record = self.storage.get_study(name)
            if record is None:
                return None
            with self._lock:
                entry = self._entries.setdefault(name, StudyEntry(record))
        with entry.lock:
            self._refresh(entry)
        return entry

    def read_entry(self, name: str) -> StudyEntry | None:
        """The study's entry brought up to date if its trials were read before and no read is
        under way now; else None at once (and a read of the study starts in the background)."""
        with self._lock:
            entry = self._entries.get(name)
        if entry is None or not entry.version or not entry.lock.acquire(blocking=False):
            if entry is None:
                threading.Thread(target=self.entry, args=(name,), daemon=True).start()
            return None
        try:
            self._refresh(entry)
        finally:
            entry.lock.release()
        return entry

    def _refresh(self, entry: StudyEntry) -> None:
        new = self.storage.get_trials(entry.record.id, first_number=entry.reread_from)
        self.reads += len(new)
        for t in new:
            entry.trials[t.number] = t
        running = [n for n, t in entry.trials.items() if t.state is TrialState.RUNNING]
        entry.reread_from = min(running) if running else (max(entry.trials, default=-1) + 1)
        finished = len(entry.trials) - len(running)
        # Running trials' reports count too: a page's learning curves grow while they run.
        reports = sum(len(entry.trials[n].intermediate_values) for n in running)
        entry.version = f"{len(entry.trials)}-{finished}-{reports}"

    def importance(self, entry: StudyEntry, view: StudyView, objective: int = 0) -> Any:
        """Parameter importance of the study (of one of its objectives), refitted only when
        enough trials came since."""
        from metatune.report.importance import param_importance

        done = len(view.completed())
        now = self._clock()
        grown = done >= entry.importance_done * (1 + _IMPORTANCE_GROWTH)
        stale = done > entry.importance_done and now - entry.importance_at > _IMPORTANCE_MAX_AGE_S
        if entry.importance is None or grown or stale:
            # Lighter than the report's fit: a page waits for it while workers keep adding.
            entry.importance = [
                param_importance(view, objective=k, max_trials=1000, n_estimators=32, n_repeats=3)
                for k in range(view.n_objectives)
            ]
            entry.importance_done = done
            entry.importance_at = now
        return entry.importance[objective] if objective < len(entry.importance) else []
