"""Storages: in memory, or any SQLAlchemy URL (SQLite by default, PostgreSQL for many workers)."""

from __future__ import annotations

from metatune.exceptions import DuplicateStudyError
from metatune.storage.base import BaseStorage, StudyRecord, StudySummary
from metatune.storage.memory import InMemoryStorage

__all__ = [
    "BaseStorage",
    "DuplicateStudyError",
    "InMemoryStorage",
    "StudyRecord",
    "StudySummary",
    "get_storage",
]


def get_storage(storage: str | BaseStorage | None, *, read_only: bool = False) -> BaseStorage:
    """Resolve None (in memory), a SQLAlchemy URL such as ``sqlite:///runs.db``, or a storage.

    With `read_only`, a URL is opened for reading only: nothing is created or written in it.
    """
    if storage is None:
        return InMemoryStorage()
    if isinstance(storage, BaseStorage):
        return storage
    if isinstance(storage, str):
        if "://" not in storage:
            raise ValueError(
                f"storage must be a SQLAlchemy URL like 'sqlite:///study.db', got {storage!r}"
            )
        from metatune.storage.sql import SQLStorage

        return SQLStorage(storage, read_only=read_only)
    raise TypeError(f"storage must be None, a URL string or a BaseStorage, got {storage!r}")
