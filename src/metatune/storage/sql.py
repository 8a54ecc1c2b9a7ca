"""SQL storage through SQLAlchemy Core: SQLite by default, PostgreSQL (or any URL) the same way.

Every method runs in its own transaction, committed before it returns, so a process killed at
any moment loses no finished trial. Trial numbers are `max(number) + 1` computed inside the
inserting transaction; SQLite write transactions start with ``BEGIN IMMEDIATE`` so concurrent
writers queue on the database lock (busy timeout) instead of failing, and other databases lock
the study row and retry on the unique (study_id, number) constraint.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from metatune.exceptions import DuplicateStudyError, SchemaVersionError, TrialAlreadyFinished
from metatune.storage.base import (
    BaseStorage,
    StudyRecord,
    StudySummary,
    check_finished_state,
    process_owner,
)
from metatune.trial import Trial, TrialState, utcnow

__all__ = ["SQLStorage", "SCHEMA_VERSION"]

_SQLITE_BUSY_TIMEOUT_S = 30.0
_CREATE_TRIAL_RETRIES = 20

_metadata = MetaData()

_studies = Table(
    "studies",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(512), nullable=False, unique=True),
    Column("direction", String(16), nullable=False),
    Column("space", JSON, nullable=False),
    Column("optimizer", String(255), nullable=False),
    Column("optimizer_options", JSON, nullable=False),
    Column("seed", BigInteger, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("directions", JSON, nullable=True),  # version 2: a multi-objective study's
)

_trials = Table(
    "trials",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", Integer, ForeignKey("studies.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("value", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime, nullable=True),
    Column("heartbeat_at", DateTime, nullable=True),
    Column("owner", String(255), nullable=True),
    Column("user_attrs", JSON, nullable=False),
    Column("system_attrs", JSON, nullable=False),
    # version 2: reports ({"step": value}) and a multi-objective trial's values
    Column("intermediate", JSON, nullable=True),
    Column("objective_values", JSON, nullable=True),
    UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
)

# The layout of the tables above. Bump it with any change to them, and teach
# `_check_schema_version` to migrate (or refuse) databases stamped with an older one.
SCHEMA_VERSION = 2
_SCHEMA_KEY = "schema_version"
# Columns added since version 1, by table: a version-1 database gains them when opened for writing.
_ADDED_COLUMNS = {
    "studies": ("directions",),
    "trials": ("intermediate", "objective_values"),
}

_meta = Table(
    "metatune_meta",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

_RUNNING = TrialState.RUNNING.value


def _json_default(obj: Any) -> Any:
    """Store numpy scalars (e.g. np.int64 from a sampler) as the Python numbers they hold."""
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable: {obj!r}")


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default)


def _is_memory_sqlite(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or url.query.get("mode") == "memory"


class SQLStorage(BaseStorage):
    """Studies and trials in a SQL database given by a SQLAlchemy URL, e.g. ``sqlite:///runs.db``.

    Tables are created on first use. Raises ValueError naming the URL if it is malformed, its
    driver is missing, or the database cannot be opened.
    """

    def __init__(self, url: str, echo: bool = False, read_only: bool = False) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a string like 'sqlite:///study.db', got {url!r}")
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ValueError(
                f"storage URL {url!r} is not a valid SQLAlchemy URL "
                f"(expected e.g. 'sqlite:///study.db'): {exc}"
            ) from exc
        self.url = parsed.render_as_string(hide_password=True)
        self.read_only = bool(read_only)
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        memory = self._is_sqlite and _is_memory_sqlite(parsed)
        # One shared connection for an in-memory SQLite database, so every use is serialized.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if memory else contextlib.nullcontext()
        )

        kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps}
        if self._is_sqlite:
            kwargs["connect_args"] = {
                "timeout": _SQLITE_BUSY_TIMEOUT_S,
                "check_same_thread": False,
            }
            if memory:
                kwargs["poolclass"] = StaticPool
            elif self.read_only:
                kwargs["creator"] = _read_only_sqlite(parsed, self.url)
            else:
                self._make_parent_dir(parsed)
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self._engine: Engine = create_engine(parsed, **kwargs)
        except (NoSuchModuleError, ImportError) as exc:
            raise ValueError(
                f"cannot use storage URL {self.url!r}: unknown dialect or missing database "
                f"driver ({type(exc).__name__}: {exc})"
            ) from exc
        except (ArgumentError, TypeError) as exc:
            raise ValueError(f"cannot use storage URL {self.url!r}: {exc}") from exc
        if self._is_sqlite:
            on_connect = _sqlite_on_connect_read_only if self.read_only else _sqlite_on_connect
            event.listen(self._engine, "connect", on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        if self.read_only:
            self._check_readable()
        else:
            self._create_tables()
        self._register_fork_handler()

    # Setup ------------------------------------------------------------------------------------
    def _make_parent_dir(self, url: URL) -> None:
        db = url.database or ""
        if db.startswith("file:"):  # a sqlite URI (uri=true): leave it to sqlite
            return
        parent = os.path.dirname(os.path.abspath(db))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"cannot open storage {self.url!r}: cannot create folder {parent!r}: {exc}"
            ) from exc

    def _create_tables(self) -> None:
        """Create missing tables; tolerate another process creating them at the same time."""
        attempts = 5
        for attempt in range(attempts):
            try:
                with self._tx(write=True) as conn:
                    _metadata.create_all(conn, checkfirst=True)
                    self._check_schema_version(conn)
                return
            except DBAPIError as exc:
                # A concurrent CREATE TABLE elsewhere (not possible under SQLite's IMMEDIATE lock,
                # possible on other databases): tables exist now, so checkfirst will pass.
                if (
                    attempt < attempts - 1
                    and not exc.connection_invalidated
                    and self._tables_race(exc)
                ):
                    time.sleep(0.05 + 0.1 * random.random())
                    continue
                self._engine.dispose()
                raise ValueError(
                    f"cannot open storage {self.url!r}: {type(exc.orig).__name__}: {exc.orig}"
                ) from exc

    def _check_readable(self) -> None:
        """For a read-only storage: metatune's tables must be there (nothing is created), and
        the schema version, if stamped, must be ours."""
        try:
            with self._tx() as conn:
                names = set(inspect(conn).get_table_names())
                if not {"studies", "trials"} <= names:
                    raise ValueError(
                        f"storage {self.url!r} holds no metatune studies (it has no metatune "
                        "tables); check the --storage URL"
                    )
                if "metatune_meta" in names:
                    self._check_schema_version(conn, stamp=False)
                elif _missing_columns(conn):
                    raise ValueError(
                        f"storage {self.url!r} was written by an older metatune (schema "
                        "version 1); open it once for writing to upgrade it in place"
                    )
        except DBAPIError as exc:
            self._engine.dispose()
            raise ValueError(
                f"cannot open storage {self.url!r}: {type(exc.orig).__name__}: {exc.orig}"
            ) from exc

    def _check_schema_version(self, conn: Connection, stamp: bool = True) -> None:
        """Refuse a database stamped with another version than SCHEMA_VERSION; with `stamp`,
        stamp one that has no version yet (a new one, or one from before the stamp existed,
        which has the tables of version 1)."""
        found = conn.scalar(select(_meta.c.value).where(_meta.c.key == _SCHEMA_KEY))
        if found not in (None, "1", str(SCHEMA_VERSION)):
            raise SchemaVersionError(self.url, found, SCHEMA_VERSION)
        missing = _missing_columns(conn)
        if missing and not stamp:
            raise ValueError(
                f"storage {self.url!r} was written by an older metatune (schema version 1); "
                "open it once for writing (for example with Study or `metatune trials`) to "
                "upgrade it in place"
            )
        if not stamp:
            return
        for table, column in missing:  # version 1 -> 2: only nullable columns were added
            col = (_studies if table == "studies" else _trials).c[column]
            kind = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        if found is None:
            conn.execute(insert(_meta).values(key=_SCHEMA_KEY, value=str(SCHEMA_VERSION)))
        elif found != str(SCHEMA_VERSION):
            conn.execute(
                update(_meta).where(_meta.c.key == _SCHEMA_KEY).values(value=str(SCHEMA_VERSION))
            )

    def _tables_race(self, exc: DBAPIError) -> bool:
        text = str(exc.orig).lower()
        return "already exists" in text or "duplicate" in text or "unique" in text

    def _register_fork_handler(self) -> None:
        # A forked child must not reuse the parent's pooled connections (sqlite forbids it).
        if not hasattr(os, "register_at_fork"):
            return
        ref = weakref.ref(self)

        def _after_fork() -> None:
            storage = ref()
            if storage is not None:
                storage._engine.dispose(close=False)

        os.register_at_fork(after_in_child=_after_fork)

    @contextlib.contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        """A transaction committed on exit; SQLite writes take the write lock up front."""
        if write and self.read_only:
            raise ValueError(f"storage {self.url!r} is open read-only: nothing can be written")
        with self._lock, self._engine.connect() as conn:
            if write and self._is_sqlite:
                conn = conn.execution_options(metatune_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn

    def close(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SQLStorage({self.url!r})"

    # Studies ----------------------------------------------------------------------------------
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
        values = {
            "name": name,
            "direction": direction,
            "space": space,
            "optimizer": optimizer,
            "optimizer_options": dict(optimizer_options or {}),
            "seed": seed,
            "created_at": utcnow(),
            "directions": list(directions) if directions else None,
        }
        try:
            with self._tx(write=True) as conn:
                study_id = conn.execute(insert(_studies).values(**values)).inserted_primary_key[0]
        except IntegrityError as exc:
            if self.get_study(name) is None:  # some other constraint, e.g. a NULL name
                raise
            raise DuplicateStudyError(f"a study named {name!r} already exists") from exc
        return self._get_study_by_id(int(study_id))

    def get_study(self, name: str) -> StudyRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(_studies).where(_studies.c.name == name)).one_or_none()
        return None if row is None else _study_record(row)

    def _get_study_by_id(self, study_id: int) -> StudyRecord:
        with self._tx() as conn:
            row = conn.execute(select(_studies).where(_studies.c.id == study_id)).one_or_none()
        if row is None:
            raise KeyError(f"no study with id {study_id}")
        return _study_record(row)

    def list_studies(self) -> list[StudyRecord]:
        with self._tx() as conn:
            rows = conn.execute(select(_studies).order_by(_studies.c.id)).all()
        return [_study_record(r) for r in rows]

    def delete_study(self, name: str) -> None:
        with self._tx(write=True) as conn:
            study_id = conn.scalar(select(_studies.c.id).where(_studies.c.name == name))
            if study_id is None:
                raise KeyError(f"no study named {name!r}")
            conn.execute(delete(_trials).where(_trials.c.study_id == study_id))
            conn.execute(delete(_studies).where(_studies.c.id == study_id))

    # Trials -----------------------------------------------------------------------------------
    def create_trial(
        self,
        study_id: int,
        params: dict[str, Any],
        system_attrs: dict[str, Any] | None = None,
    ) -> Trial:
        for attempt in range(_CREATE_TRIAL_RETRIES):
            try:
                with self._tx(write=True) as conn:
                    # Locks the study row where the database supports it (not SQLite, which
                    # already holds the database write lock): creators of one study queue here.
                    locked = select(_studies.c.id).where(_studies.c.id == study_id)
                    if conn.scalar(locked.with_for_update()) is None:
                        raise KeyError(f"no study with id {study_id}")
                    last = conn.scalar(
                        select(func.max(_trials.c.number)).where(_trials.c.study_id == study_id)
                    )
                    now = utcnow()
                    trial = Trial(
                        number=0 if last is None else int(last) + 1,
                        params=dict(params),
                        started_at=now,
                        system_attrs=dict(system_attrs or {}),
                    )
                    conn.execute(
                        insert(_trials).values(
                            study_id=study_id,
                            number=trial.number,
                            state=_RUNNING,
                            params=trial.params,
                            started_at=now,
                            heartbeat_at=now,
                            owner=process_owner(),
                            user_attrs={},
                            system_attrs=trial.system_attrs,
                        )
                    )
                return trial
            except IntegrityError:  # another process took that number first: try the next
                if attempt == _CREATE_TRIAL_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.0, 0.01 * (attempt + 1)))
        raise AssertionError("unreachable")

    def set_trial_params(self, study_id: int, number: int, params: dict[str, Any]) -> None:
        with self._tx(write=True) as conn:
            done = conn.execute(
                update(_trials)
                .where(*_trial_key(study_id, number), _trials.c.state == _RUNNING)
                .values(params=dict(params))
            )
            if done.rowcount != 1:
                _raise_not_running(conn, study_id, number)

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
        check_finished_state(state)
        with self._tx(write=True) as conn:
            row = conn.execute(select(_trials).where(*_trial_key(study_id, number))).one_or_none()
            if row is None or row.state != _RUNNING:
                _raise_not_running(conn, study_id, number)
            # The state condition makes this atomic: of two finishers only one updates the row.
            done = conn.execute(
                update(_trials)
                .where(*_trial_key(study_id, number), _trials.c.state == _RUNNING)
                .values(
                    state=TrialState(state).value,
                    value=None if value is None else float(value),
                    objective_values=None if values is None else [float(v) for v in values],
                    error=error,
                    finished_at=utcnow(),
                    user_attrs={**(row.user_attrs or {}), **(user_attrs or {})},
                    system_attrs={**(row.system_attrs or {}), **(system_attrs or {})},
                )
            )
            if done.rowcount != 1:
                _raise_not_running(conn, study_id, number)
            row = conn.execute(select(_trials).where(*_trial_key(study_id, number))).one()
        return _trial(row)

    def report_intermediate(self, study_id: int, number: int, step: int, value: float) -> None:
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(_trials.c.state, _trials.c.intermediate).where(*_trial_key(study_id, number))
            ).one_or_none()
            if row is None or row.state != _RUNNING:
                _raise_not_running(conn, study_id, number)
            reports = dict(row.intermediate or {})
            if str(int(step)) in reports:
                return
            reports[str(int(step))] = float(value)
            conn.execute(
                update(_trials)
                .where(*_trial_key(study_id, number), _trials.c.state == _RUNNING)
                .values(intermediate=reports, heartbeat_at=utcnow())
            )

    def get_trials(
        self, study_id: int, states: Iterable[TrialState] | None = None, first_number: int = 0
    ) -> list[Trial]:
        query = select(_trials).where(_trials.c.study_id == study_id).order_by(_trials.c.number)
        if first_number > 0:  # the (study_id, number) index makes this read O(returned rows)
            query = query.where(_trials.c.number >= first_number)
        if states is not None:
            query = query.where(_trials.c.state.in_([TrialState(s).value for s in states]))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [_trial(r) for r in rows]

    def summarize_study(self, study: StudyRecord) -> StudySummary:
        # Two aggregate queries instead of reading every trial: a study list stays fast at
        # tens of thousands of trials.
        counts = {s.value: 0 for s in TrialState}
        mine = _trials.c.study_id == study.id
        with self._tx() as conn:
            for state, n in conn.execute(
                select(_trials.c.state, func.count()).where(mine).group_by(_trials.c.state)
            ):
                counts[state] = int(n)
            best = None
            if not study.directions:
                order = _trials.c.value.desc() if study.direction == "maximize" else _trials.c.value
                best = conn.execute(
                    select(_trials.c.number, _trials.c.value)
                    .where(mine, _trials.c.state == TrialState.COMPLETE.value)
                    .where(_trials.c.value.is_not(None))
                    .order_by(order, _trials.c.number)
                    .limit(1)
                ).one_or_none()
        if best is None:
            return StudySummary(counts)
        return StudySummary(counts, int(best.number), float(best.value))

    def heartbeat(self, study_id: int, number: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                update(_trials)
                .where(*_trial_key(study_id, number), _trials.c.state == _RUNNING)
                .values(heartbeat_at=utcnow())
            )

    def _running_owners(self, study_id: int):
        query = (
            select(_trials.c.number, _trials.c.owner, _trials.c.heartbeat_at)
            .where(_trials.c.study_id == study_id, _trials.c.state == _RUNNING)
            .order_by(_trials.c.number)
        )
        with self._tx() as conn:
            return [(int(n), owner, beat) for n, owner, beat in conn.execute(query)]


# Helpers ----------------------------------------------------------------------------------------
def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Let SQLAlchemy emit BEGIN (see _sqlite_on_begin) instead of the sqlite3 module.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the database to WAL once (the mode is stored in the file, so later connections
    find it set). The switch needs the database to itself: connections opened at the same moment
    on a new file can get "database is locked" at once, whatever the busy timeout, so retry for a
    few seconds, then go on without (WAL only lets readers and a writer overlap)."""
    mode = cursor.execute("PRAGMA journal_mode").fetchone()
    if mode and str(mode[0]).lower() in ("wal", "memory"):
        return
    deadline = time.monotonic() + 10.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                return
            time.sleep(0.02 + 0.05 * random.random())


def _sqlite_on_connect_read_only(dbapi_connection: Any, connection_record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


def _read_only_sqlite(url: URL, shown: str) -> Any:
    """A connection factory that opens the SQLite file read-only (it must exist)."""
    db = url.database or ""
    if db.startswith("file:"):
        raise ValueError(f"read-only storage needs a plain SQLite file path, got {shown!r}")
    path = os.path.abspath(db)
    if not os.path.isfile(path):
        raise ValueError(f"no database file at {path} (storage {shown!r})")
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(
            uri, uri=True, timeout=_SQLITE_BUSY_TIMEOUT_S, check_same_thread=False
        )

    return connect


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("metatune_begin", "BEGIN"))


def _trial_key(study_id: int, number: int) -> tuple[Any, Any]:
    return (_trials.c.study_id == study_id, _trials.c.number == number)


def _raise_not_running(conn: Connection, study_id: int, number: int) -> None:
    state = conn.scalar(select(_trials.c.state).where(*_trial_key(study_id, number)))
    if state is None:
        raise KeyError(f"study {study_id} has no trial {number}")
    raise TrialAlreadyFinished(number, str(state))


def _study_record(row: Any) -> StudyRecord:
    return StudyRecord(
        id=int(row.id),
        name=row.name,
        direction=row.direction,
        space=row.space,
        optimizer=row.optimizer,
        optimizer_options=dict(row.optimizer_options or {}),
        seed=None if row.seed is None else int(row.seed),
        created_at=row.created_at,
        directions=list(row.directions) if row.directions else None,
    )


def _trial(row: Any) -> Trial:
    return Trial(
        number=int(row.number),
        params=dict(row.params or {}),
        state=TrialState(row.state),
        value=None if row.value is None else float(row.value),
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        user_attrs=dict(row.user_attrs or {}),
        system_attrs=dict(row.system_attrs or {}),
        intermediate_values={int(k): float(v) for k, v in (row.intermediate or {}).items()},
        values=None if row.objective_values is None else [float(v) for v in row.objective_values],
    )


def _missing_columns(conn: Connection) -> list[tuple[str, str]]:
    """(table, column) of the columns added since version 1 that the database lacks."""
    found = inspect(conn)
    return [
        (table, column)
        for table, columns in _ADDED_COLUMNS.items()
        for column in columns
        if column not in {c["name"] for c in found.get_columns(table)}
    ]
