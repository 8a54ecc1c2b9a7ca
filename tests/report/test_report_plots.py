"""The best-so-far plot: writes an image for studies and bare trial lists, in both directions."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Float, Study
from metatune.report.plots import _focus_range, best_so_far, plot_best_so_far
from metatune.trial import Trial, TrialState

PNG = b"\x89PNG\r\n\x1a\n"


def trials(values: list[float | None]) -> list[Trial]:
    return [
        Trial(i, {"x": i}, TrialState.COMPLETE if v is not None else TrialState.FAILED, value=v)
        for i, v in enumerate(values)
    ]


def test_best_so_far_curve() -> None:
    ts = trials([3.0, None, 1.0, 2.0, 0.5])
    assert best_so_far(ts, "minimize") == [(0, 3.0), (2, 1.0), (3, 1.0), (4, 0.5)]
    assert best_so_far(ts, "maximize") == [(0, 3.0), (2, 3.0), (3, 3.0), (4, 3.0)]
    with pytest.raises(ValueError, match="direction"):
        best_so_far(ts, "best")


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_plot_from_trials_with_failures(tmp_path: Path, direction: str) -> None:
    values = [0.1, 0.98, None, 0.97, 0.12, 0.985, 0.99, None, 0.11, 0.989]
    path = plot_best_so_far(trials(values), tmp_path / "sub" / "p.png", direction)
    assert path == tmp_path / "sub" / "p.png"
    assert path.read_bytes()[:8] == PNG


def test_plot_from_study_uses_its_direction_and_name(tmp_path: Path) -> None:
    study = Study({"x": Float(-2, 2)}, direction="maximize", optimizer="random", seed=0, name="q")
    study.optimize(lambda p: -(p["x"] ** 2), n_trials=8, show_progress=False)
    path = plot_best_so_far(study, tmp_path / "q.png", ylabel="score", log_y=False)
    assert path.read_bytes()[:8] == PNG


def test_plot_with_nothing_completed(tmp_path: Path) -> None:
    assert plot_best_so_far(trials([None, None]), tmp_path / "f.png").read_bytes()[:8] == PNG
    assert plot_best_so_far([], tmp_path / "e.png").read_bytes()[:8] == PNG


def test_focus_zooms_only_when_the_worse_half_squashes_the_rest() -> None:
    squashed = [0.1, 0.12, 0.15, 0.98, 0.985, 0.99, 0.987, 0.11]
    lo, hi = _focus_range(squashed, sign=-1.0)  # maximize: the better half is 0.98..0.99
    assert 0.9 < lo < 0.98 and 0.99 < hi < 1.0
    assert _focus_range([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], sign=1.0) is None
    assert _focus_range([0.5, 0.9], sign=-1.0) is None  # too few trials


def test_plot_rejects_non_trials(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Study or a sequence of Trial"):
        plot_best_so_far([1.0, 2.0], tmp_path / "x.png")


def test_best_so_far_against_cost_marks_reused_trials(tmp_path: Path) -> None:
    from metatune.report import plots

    ts = [
        Trial(0, {"x": 0}, TrialState.COMPLETE, 3.0, system_attrs={"cost": 10.0}),
        Trial(1, {"x": 1}, TrialState.FAILED, system_attrs={"cost": 4.0}),
        Trial(2, {"x": 2}, TrialState.COMPLETE, 1.0, system_attrs={"cost": 1.0, "cache_depth": 1}),
        Trial(3, {"x": 3}, TrialState.RUNNING),
    ]
    assert plots._positions([t for t in ts if t.state.finished], "cost") == {
        0: 10.0,
        1: 14.0,
        2: 15.0,
    }
    out = plot_best_so_far(ts, tmp_path / "cost.png", "minimize", x="cost")
    assert out.read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="x must be 'number' or 'cost'"):
        plot_best_so_far(ts, tmp_path / "bad.png", "minimize", x="time")
