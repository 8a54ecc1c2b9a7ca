"""Rich tables of trials and studies, shared by the CLI and by notebooks.

The builders take plain trials and summaries (not a Study), so they work on anything read from
a storage without opening the study for writing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from metatune._text import printable
from metatune.constraints import OutcomeConstraint
from metatune.direction import Direction
from metatune.pareto import front_trials, pareto_ranks, trial_losses
from metatune.trial import SystemAttr, Trial, TrialState

__all__ = [
    "StudySummary",
    "best_trial",
    "directions_label",
    "format_duration",
    "format_params",
    "format_value",
    "param_names",
    "rank_trials",
    "studies_table",
    "summarize_study",
    "trial_table",
    "trials_table",
]

_STATE_STYLE = {
    TrialState.COMPLETE: "green",
    TrialState.FAILED: "red",
    TrialState.RUNNING: "yellow",
    TrialState.PRUNED: "magenta",
}
_MAX_PARAM_COLUMNS = 6  # more parameters than this are shown in one "params" column


def directions_label(record: Any) -> str:
    """ "minimize", or "minimize, maximize" for a multi-objective study's record."""
    return ", ".join(getattr(record, "directions", None) or [record.direction])


def best_trial(trials: Iterable[Trial], direction: str) -> Trial | None:
    """The best completed trial (the earliest among ties), or None if none completed."""
    return Direction.parse(direction).best(trials)


def rank_trials(
    trials: Iterable[Trial], direction: str, directions: Sequence[str] | None = None
) -> list[Trial]:
    """Completed trials best first (ties by number), then the others by number; with several
    `directions`, by non-dominated rank (the Pareto front first)."""
    trials = list(trials)
    if directions and len(directions) > 1:
        done, losses = trial_losses(trials, directions)
        ranks = pareto_ranks(losses)
        done = [
            t
            for _, t in sorted(zip(ranks, done, strict=True), key=lambda rt: (rt[0], rt[1].number))
        ]
    else:
        done = Direction.parse(direction).best_first(trials)
    ranked = {t.number for t in done}
    return done + sorted((t for t in trials if t.number not in ranked), key=lambda t: t.number)


def param_names(trials: Iterable[Trial]) -> list[str]:
    """Parameter names in order of first appearance across `trials`."""
    names: dict[str, None] = {}
    for t in trials:
        for k in t.params:
            names.setdefault(k, None)
    return list(names)


def format_value(value: Any) -> str:
    """A number in 6 significant digits; other values as their repr-free string."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return str(value)
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return str(value)


def format_params(params: dict[str, Any]) -> str:
    """``C=3.2, gamma=0.01, kernel=rbf``: compact, for one table cell or one line."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in params.items())


def format_duration(seconds: float | None) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``2h03m``; ``-`` while unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _text(value: object, style: str = "") -> Text:
    """A cell or title shown as given: never parsed as rich markup, and with control characters
    escaped, so a name holding terminal escapes prints as text."""
    return Text(printable(value), style=style)


def _plain(text: str | None) -> Text | None:
    return None if text is None else _text(text)


def _format_time(dt: datetime | None) -> str:
    return "-" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


def _first_line(text: str | None) -> str:
    return "" if not text else text.strip().splitlines()[0]


def trials_table(
    trials: Sequence[Trial],
    direction: str,
    *,
    title: str | None = None,
    best_number: int | None = None,
    show_started: bool = False,
    caption: str | None = None,
    directions: Sequence[str] | None = None,
    constraints: Sequence[OutcomeConstraint] = (),
) -> Table:
    """A table with number, state, value, one column per parameter, duration (and errors).

    The row of `best_number` (by default the best completed trial among `trials`) is
    highlighted; with several `directions`, every trial on the Pareto front of the trials that
    meet `constraints` is, and the values
    column holds every objective's value. An "error" column (first line only) appears when a shown trial failed; "cost"
    and "cached" (leading stages served from the cache) columns when trials record costs.
    """
    multi = bool(directions) and len(directions) > 1  # type: ignore[arg-type]
    if multi:
        marked = {t.number for t in front_trials(trials, directions, constraints)}  # type: ignore[arg-type]
    else:
        if best_number is None:
            best = best_trial(trials, direction)
            best_number = best.number if best is not None else None
        marked = {best_number} if best_number is not None else set()
    names = param_names(trials)
    split_params = 0 < len(names) <= _MAX_PARAM_COLUMNS
    show_error = any(t.state is TrialState.FAILED for t in trials)
    show_cost = any(t.system_attrs.get(SystemAttr.COST) is not None for t in trials)

    table = Table(
        title=_plain(title), caption=_plain(caption), header_style="bold", title_justify="left"
    )
    table.add_column("#", justify="right")
    table.add_column("state")
    if multi:
        label = ", ".join(d[:3] for d in directions)  # type: ignore[union-attr]
        table.add_column(f"values ({label})", justify="right")
    else:
        table.add_column(f"value ({direction[:3]})", justify="right")
    if split_params:
        for name in names:
            table.add_column(_text(name), justify="right", overflow="fold")
    else:
        table.add_column("params", overflow="fold")
    table.add_column("duration", justify="right")
    if show_cost:
        table.add_column("cost", justify="right")
        table.add_column("cached", justify="right")
    if show_started:
        table.add_column("started (UTC)", no_wrap=True)
    if show_error:
        table.add_column("error", overflow="fold", max_width=60)

    for t in trials:
        is_best = t.number in marked
        shown = ", ".join(format_value(v) for v in t.values) if multi and t.values else t.value
        row: list[Any] = [
            _text(f"{t.number}{' *' if is_best else ''}"),
            _text(t.state.value, style=_STATE_STYLE.get(t.state, "")),
            _text(shown if isinstance(shown, str) else format_value(shown)),
        ]
        if split_params:
            row += [_text(format_value(t.params[n]) if n in t.params else "") for n in names]
        else:
            row.append(_text(format_params(t.params)))
        row.append(_text(format_duration(t.duration)))
        if show_cost:
            depth = t.system_attrs.get(SystemAttr.CACHE_DEPTH)
            row.append(_text(format_value(t.system_attrs.get(SystemAttr.COST))))
            row.append(_text(f"{depth} stages" if isinstance(depth, int) and depth else "-"))
        if show_started:
            row.append(_text(_format_time(t.started_at)))
        if show_error:
            row.append(_text(_first_line(t.error), style="red"))
        table.add_row(*row, style="bold green" if is_best else None)
    return table


def trial_table(trial: Trial, *, title: str | None = None) -> Table:
    """A field/value table describing one trial (used for the best trial)."""
    table = Table(
        title=_plain(title), show_header=False, title_justify="left", box=None, padding=(0, 2)
    )
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("trial", str(trial.number))
    table.add_row("state", _text(trial.state.value, style=_STATE_STYLE.get(trial.state, "")))
    if trial.values is not None:
        table.add_row("values", ", ".join(format_value(v) for v in trial.values))
    else:
        table.add_row("value", format_value(trial.value))
    table.add_row("params", "")
    for name, v in trial.params.items():
        table.add_row(_text(f"  {name}"), _text(format_value(v)))
    if trial.user_attrs:
        table.add_row("user attrs", "")
        for name, v in trial.user_attrs.items():
            table.add_row(_text(f"  {name}"), _text(format_value(v)))
    if trial.error:
        table.add_row("error", _text(_first_line(trial.error), style="red"))
    table.add_row("duration", format_duration(trial.duration))
    table.add_row("started (UTC)", _format_time(trial.started_at))
    table.add_row("finished (UTC)", _format_time(trial.finished_at))
    return table


@dataclass
class StudySummary:
    """Counts and best value of one study, as listed by `metatune studies`."""

    name: str
    direction: str
    optimizer: str
    n_trials: int
    n_complete: int
    n_failed: int
    n_running: int
    n_pruned: int
    best_value: float | None
    best_number: int | None
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["created_at"] = None if self.created_at is None else self.created_at.isoformat()
        return out


def summarize_study(record: Any, trials: Sequence[Trial]) -> StudySummary:
    """Summarize a stored study from its record (a `StudyRecord`) and its trials."""
    multi = len(getattr(record, "directions", None) or []) > 1
    best = None if multi else best_trial(trials, record.direction)
    count = {s: sum(t.state is s for t in trials) for s in TrialState}
    return StudySummary(
        name=record.name,
        direction=directions_label(record),
        optimizer=record.optimizer,
        n_trials=len(trials),
        n_complete=count[TrialState.COMPLETE],
        n_failed=count[TrialState.FAILED],
        n_running=count[TrialState.RUNNING],
        n_pruned=count[TrialState.PRUNED],
        best_value=None if best is None else best.value,
        best_number=None if best is None else best.number,
        created_at=getattr(record, "created_at", None),
    )


def studies_table(summaries: Sequence[StudySummary], *, title: str | None = None) -> Table:
    """One row per study: direction, optimizer, trial counts by state, best value."""
    table = Table(title=_plain(title), header_style="bold", title_justify="left")
    table.add_column("study", overflow="fold")
    table.add_column("direction")
    table.add_column("optimizer")
    table.add_column("trials", justify="right")
    table.add_column("complete", justify="right", style="green")
    table.add_column("failed", justify="right", style="red")
    table.add_column("running", justify="right", style="yellow")
    table.add_column("pruned", justify="right", style="magenta")
    table.add_column("best value", justify="right")
    table.add_column("best #", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    for s in summaries:
        table.add_row(
            _text(s.name),
            s.direction,
            s.optimizer,
            str(s.n_trials),
            str(s.n_complete),
            str(s.n_failed),
            str(s.n_running),
            str(s.n_pruned),
            format_value(s.best_value),
            "-" if s.best_number is None else str(s.best_number),
            _format_time(s.created_at),
        )
    return table
