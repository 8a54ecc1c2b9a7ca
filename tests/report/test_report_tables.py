"""Rich table builders and the helpers the CLI uses to rank and summarize trials."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from rich.console import Console

from metatune.report.tables import (
    best_trial,
    format_duration,
    format_params,
    format_value,
    rank_trials,
    studies_table,
    summarize_study,
    trial_table,
    trials_table,
)
from metatune.storage.base import StudyRecord
from metatune.trial import Trial, TrialState

T0 = datetime(2024, 1, 2, 3, 4, 5)


def trial(number: int, value: float | None, state: str = "complete", **params) -> Trial:
    state_ = TrialState(state)
    return Trial(
        number=number,
        params=params or {"lr": 0.1 * (number + 1), "opt": "sgd"},
        state=state_,
        value=value,
        error="RuntimeError: nan loss\n  File 'train.py'" if state_ is TrialState.FAILED else None,
        started_at=T0 + timedelta(seconds=number),
        finished_at=None if state_ is TrialState.RUNNING else T0 + timedelta(seconds=number + 2),
    )


def render(table) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None).print(table)
    return buf.getvalue()


TRIALS = [
    trial(0, 3.0),
    trial(1, 1.0),
    trial(2, None, "failed"),
    trial(3, 1.0),
    trial(4, None, "running"),
]


def test_best_and_rank_follow_direction_and_break_ties_by_number() -> None:
    assert best_trial(TRIALS, "minimize").number == 1
    assert best_trial(TRIALS, "maximize").number == 0
    assert best_trial([trial(0, None, "failed")], "minimize") is None
    assert [t.number for t in rank_trials(TRIALS, "minimize")] == [1, 3, 0, 2, 4]
    assert [t.number for t in rank_trials(TRIALS, "maximize")] == [0, 1, 3, 2, 4]
    with pytest.raises(ValueError, match="direction"):
        best_trial(TRIALS, "up")


def test_trials_table_has_param_columns_best_marker_and_first_error_line() -> None:
    text = render(trials_table(TRIALS, "minimize", title="toy"))
    header = next(line for line in text.splitlines() if "state" in line)
    for col in ("#", "value (min)", "lr", "opt", "duration", "error"):
        assert col in header
    assert "1 *" in text and "3 *" not in text
    assert "RuntimeError: nan loss" in text and "train.py" not in text
    assert "running" in text and "2.00s" in text


def test_trials_table_without_failures_has_no_error_column_and_folds_many_params() -> None:
    many = {f"p{i}": i for i in range(8)}
    text = render(trials_table([trial(0, 1.0, **many)], "minimize"))
    assert "error" not in text
    assert "params" in text and "p0=0, p1=1" in text


def test_cells_and_titles_are_not_parsed_as_markup() -> None:
    t = trial(0, 1.0, label="[bold]x[/bold]")
    assert "[bold]x[/bold]" in render(trials_table([t], "minimize", title="[red]t[/red]"))
    assert "[red]t[/red]" in render(trials_table([t], "minimize", title="[red]t[/red]"))
    assert "[bold]x[/bold]" in render(trial_table(t))


def test_trial_table_lists_params_and_user_attrs() -> None:
    t = trial(5, 0.25)
    t.user_attrs = {"accuracy_std": 0.01}
    text = render(trial_table(t))
    for fragment in ("trial", "5", "0.25", "lr", "opt", "sgd", "accuracy_std", "0.01"):
        assert fragment in text


def test_formatting_helpers() -> None:
    assert format_value(None) == "-"
    assert format_value(0.123456789) == "0.123457"
    assert format_value(True) == "True" and format_value("rbf") == "rbf"
    assert format_params({"C": 1e-5, "k": "rbf"}) == "C=1e-05, k=rbf"
    assert [format_duration(s) for s in (None, 0.4, 12.34, 125, 7500)] == [
        "-", "0.40s", "12.3s", "2m05s", "2h05m",
    ]  # fmt: skip


def test_summarize_and_studies_table() -> None:
    record = StudyRecord(
        id=1, name="toy", direction="minimize", space={}, optimizer="gp", created_at=T0
    )
    s = summarize_study(record, TRIALS)
    assert (s.n_trials, s.n_complete, s.n_failed, s.n_running) == (5, 3, 1, 1)
    assert (s.best_value, s.best_number) == (1.0, 1)
    assert s.to_dict()["created_at"] == "2024-01-02T03:04:05"
    text = render(studies_table([s, summarize_study(record, [])], title="Studies"))
    assert "toy" in text and "gp" in text and "2024-01-02 03:04:05" in text


def test_pipeline_trials_show_their_cost_and_cached_stages() -> None:
    import io

    from rich.console import Console

    from metatune.report.tables import trials_table
    from metatune.trial import Trial, TrialState

    trials = [
        Trial(
            0, {"a.x": 0.5}, TrialState.COMPLETE, 1.0, system_attrs={"cost": 9.0, "cache_depth": 0}
        ),
        Trial(
            1, {"a.x": 0.5}, TrialState.COMPLETE, 0.5, system_attrs={"cost": 1.5, "cache_depth": 2}
        ),
    ]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(trials_table(trials, "minimize"))
    out = console.file.getvalue()
    assert "cost" in out and "cached" in out and "2 stages" in out and "1.5" in out
    plain = Console(file=io.StringIO(), width=200, color_system=None)
    plain.print(trials_table([Trial(0, {"x": 1.0}, TrialState.COMPLETE, 1.0)], "minimize"))
    assert "cached" not in plain.file.getvalue()
