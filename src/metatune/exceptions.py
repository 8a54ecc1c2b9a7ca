"""Named errors, so that callers decide on the kind of failure, not on the text of a message."""

from __future__ import annotations

from metatune._registry import UnknownNameError

__all__ = [
    "MetatuneError",
    "DuplicateStudyError",
    "StudyNotFoundError",
    "TrialAlreadyFinished",
    "UnknownNameError",
    "SchemaVersionError",
    "TrialPruned",
]


class MetatuneError(Exception):
    """Base of metatune's own errors."""


class DuplicateStudyError(MetatuneError, ValueError):
    """Creating a study whose name is already taken in the storage."""


class StudyNotFoundError(MetatuneError, ValueError):
    """A study name (or id) that the storage does not hold."""


class TrialAlreadyFinished(MetatuneError, ValueError):
    """Finishing a trial that is already complete or failed (for example failed as stale by
    another process): the stored verdict stands.

    Attributes:
        number: the trial's number.
        state: the state it is stored with ("complete" or "failed").
    """

    def __init__(self, number: int, state: str) -> None:
        super().__init__(f"trial {number} is already {state}")
        self.number = number
        self.state = state


class SchemaVersionError(MetatuneError, ValueError):
    """A database stamped with a storage schema version this metatune cannot read.

    Attributes:
        found: the version stamped in the database.
        expected: the version this metatune writes and reads.
    """

    def __init__(self, url: str, found: str, expected: int) -> None:
        super().__init__(
            f"storage {url!r} has metatune schema version {found}, but this metatune reads "
            f"version {expected}; open it with the metatune that wrote it (or export its "
            "trials there with `metatune export`), or use a new database file"
        )
        self.found = found
        self.expected = expected


class TrialPruned(MetatuneError):
    """Raised by an objective to end its trial as pruned (after `trial.should_prune()` said so).

    The trial is stored as PRUNED with the values it reported; it is never a best trial.
    """
