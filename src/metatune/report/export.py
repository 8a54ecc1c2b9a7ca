"""Flat exports of trials (CSV or JSON), one row per trial, one column per parameter.

Columns: number, state (running, complete, failed or pruned), value, then ``values_0`` ..
``values_<k-1>`` when trials carry several objectives' values (a multi-objective study), error
(first line), started_at, finished_at (ISO 8601, UTC), duration (seconds), ``last_step`` and
``last_intermediate`` when trials reported intermediate values (a pruned trial's last report),
a pipeline's cost columns, then ``params.<name>`` for every parameter (empty where a trial did
not have it: a conditional or define-by-run parameter) and ``user_attrs.<name>`` for every extra
metric a trial reported.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import IO, Any

from metatune.trial import SystemAttr, Trial, json_float

__all__ = [
    "FORMATS",
    "iso_utc",
    "jsonable",
    "trial_columns",
    "trial_rows",
    "write_csv",
    "write_json",
    "write_trials",
]

FORMATS = ("csv", "json")
_BASE_COLUMNS = ["number", "state", "value", "error", "started_at", "finished_at", "duration"]


def iso_utc(dt: datetime | None) -> str | None:
    """`dt` as ISO 8601 in UTC with microseconds and a ``Z`` (naive times are taken as UTC)."""
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds") + "Z"


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = text.strip().splitlines()
    return lines[0] if lines else None


def _names(dicts: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for k in d:
            seen.setdefault(k, None)
    return list(seen)


# What a pipeline trial records besides its value: what it cost, how many leading stages the
# cache served, and the seconds that saved. Exported when any trial has a recorded cost.
_PIPELINE_COLUMNS = {
    "cost": SystemAttr.COST,
    "cache_depth": SystemAttr.CACHE_DEPTH,
    "seconds_saved": SystemAttr.SECONDS_SAVED,
}


def _has_costs(trials: Sequence[Trial]) -> bool:
    return any(t.system_attrs.get(SystemAttr.COST) is not None for t in trials)


def _n_values(trials: Sequence[Trial]) -> int:
    """How many objectives' values the trials carry (0 when none carries more than one)."""
    n = max((len(t.values) for t in trials if t.values is not None), default=0)
    return n if n > 1 else 0


def trial_columns(trials: Sequence[Trial]) -> list[str]:
    """Column names for `trials`: the fixed ones (values_0.. for several objectives, last_step
    and last_intermediate for reported learning curves, cost, cache_depth and seconds_saved for
    pipeline trials), then params.*, then user_attrs.*."""
    params = _names(t.params for t in trials)
    attrs = _names(t.user_attrs for t in trials)
    base = _BASE_COLUMNS[:3] + [f"values_{k}" for k in range(_n_values(trials))]
    base += _BASE_COLUMNS[3:]
    if any(t.intermediate_values for t in trials):
        base += _CURVE_COLUMNS
    base += list(_PIPELINE_COLUMNS) if _has_costs(trials) else []
    return base + [f"params.{n}" for n in params] + [f"user_attrs.{n}" for n in attrs]


_CURVE_COLUMNS = ["last_step", "last_intermediate"]


def trial_rows(trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """One flat dict per trial with every column of `trial_columns` (missing ones are None)."""
    columns = trial_columns(trials)
    rows = []
    for t in trials:
        duration = t.duration
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.value,
            "value": t.value,
            "error": _first_line(t.error),
            "started_at": iso_utc(t.started_at),
            "finished_at": iso_utc(t.finished_at),
            "duration": None if duration is None else round(duration, 6),
        }
        for k, v in enumerate(t.values or ()):
            row[f"values_{k}"] = v
        last = t.last_step
        if last is not None:
            row["last_step"] = last
            row["last_intermediate"] = t.intermediate_values[last]
        row.update({c: jsonable(t.system_attrs.get(k)) for c, k in _PIPELINE_COLUMNS.items()})
        row.update({f"params.{k}": v for k, v in t.params.items()})
        row.update({f"user_attrs.{k}": jsonable(v) for k, v in t.user_attrs.items()})
        rows.append({c: row.get(c) for c in columns})
    return rows


def jsonable(v: Any) -> Any:
    """`v` as a JSON value: numbers and strings as they are (a non-finite float as "nan",
    "inf" or "-inf", which JSON has no number for), numpy scalars as Python ones, containers
    that serialize as they are, anything else as its str."""
    if isinstance(v, float):
        return json_float(v)
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    item = getattr(v, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return str(v)
    return v


# A cell a spreadsheet would run as a formula: text starting with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _neutral(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote before a formula-looking cell."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or math.isfinite(v) else str(v)
    if isinstance(v, (dict, list)):
        return _neutral(json.dumps(v))
    return _neutral(str(v))


def write_csv(trials: Sequence[Trial], fp: IO[str]) -> None:
    """Write `trials` as CSV with a header row; empty cells for missing values."""
    columns = trial_columns(trials)
    writer = csv.writer(fp, lineterminator="\n")
    writer.writerow([_neutral(c) for c in columns])
    for row in trial_rows(trials):
        writer.writerow([_csv_cell(row[c]) for c in columns])


def write_json(trials: Sequence[Trial], fp: IO[str]) -> None:
    """Write `trials` as a JSON list of flat objects (null for missing values)."""
    json.dump(trial_rows(trials), fp, indent=2, allow_nan=False)
    fp.write("\n")


def write_trials(trials: Sequence[Trial], fp: IO[str], format: str) -> None:
    """Write `trials` in `format` ("csv" or "json")."""
    if format == "csv":
        write_csv(trials, fp)
    elif format == "json":
        write_json(trials, fp)
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
