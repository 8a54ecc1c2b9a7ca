"""The HTML report: one self-contained file for plain, pipeline and empty studies."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from metatune import Study
from metatune.report import figures
from metatune.report.data import StudyView
from metatune.report.html import render_report, summary_rows, write_report
from metatune.report.importance import param_importance
from metatune.trial import SystemAttr, Trial, TrialState

pytest.importorskip("plotly")

SECTION = re.compile(r"<section id='([a-z-]+)'>")


def sections(text: str) -> list[str]:
    return SECTION.findall(text)


def test_report_of_a_study_with_failed_trials(tmp_path: Path, failing_study: Study) -> None:
    path = write_report(failing_study, tmp_path / "out" / "r.html")
    text = path.read_text(encoding="utf-8")
    # Self-contained: plotly.js is inside, nothing is loaded from elsewhere.
    head, lib_and_rest = text.split("<script type='text/javascript'>", 1)
    lib, rest = lib_and_rest.split("</script></head>", 1)
    assert len(lib) > 1_000_000 and "plotly" in lib[:2000].lower()
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*href=", head + rest)
    assert "Plotly.newPlot" in rest
    found = sections(text)
    for key in ("summary", "history", "history-time", "importance", "parallel", "slice"):
        assert key in found, (key, found)
    assert "history-cost" not in found and "stage-cost" not in found  # no costs recorded
    # Failed and running trials are shown: marked in the history and listed with their error.
    failed = [t for t in failing_study.trials if t.state is TrialState.FAILED]
    assert failed and f"failed trial ({len(failed)})" in text
    assert "running trial (1)" in text
    assert "diverged &lt;b&gt;&amp;&lt;/b&gt;" in text and "diverged <b>" not in text
    assert not list(path.parent.glob(".*.tmp"))


def test_report_of_a_pipeline_study(tmp_path: Path, pipeline_study: Study) -> None:
    text = render_report(pipeline_study, plotly_js="")
    found = sections(text)
    for key in ("history-cost", "budget", "stage-cost", "cache"):
        assert key in found, (key, found)
    rows = dict(summary_rows(StudyView.from_any(pipeline_study)))
    assert rows["pipeline stages"] == "prep -> train -> evaluate"
    hits = sum(
        bool(r["cache_hit"]) for t in pipeline_study.trials for r in t.stages if t.state.finished
    )
    assert hits > 0 and rows["cache"].startswith(f"{hits} of ")
    assert "of a budget of 60" in rows["cost spent"]
    # What the cache saved is stacked on the stages that ran, so a bar is the cost without it.
    stage = figures.stage_cost_figure(StudyView.from_any(pipeline_study))
    assert [tr.name for tr in stage.data] == ["prep", "train", "evaluate", "saved by the cache"]
    saved = sum(t.system_attrs[SystemAttr.COST_SAVED] for t in pipeline_study.trials)
    assert sum(stage.data[-1].y) == pytest.approx(saved) and saved > 0


def test_report_of_an_empty_study(tmp_path: Path, empty_study: Study) -> None:
    text = write_report(empty_study, tmp_path / "e.html").read_text(encoding="utf-8")
    assert sections(text) == ["summary", "no-trials"]
    assert "0 trials" in text
    assert write_report([], tmp_path / "bare.html").is_file()


def test_report_needs_trials_or_a_study(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="Study or a sequence of Trial"):
        write_report("not a study", tmp_path / "x.html")
    with pytest.raises(TypeError, match="Study or a sequence of Trial"):
        write_report([1, 2], tmp_path / "x.html")


def _trials(n: int, f, start: datetime | None = None) -> list[Trial]:
    start = start or datetime(2026, 1, 1)
    out = []
    for i in range(n):
        params = {"a": (i * 37 % 101) / 100, "b": (i * 53 % 97) / 96, "c": ["u", "v"][i % 2]}
        t0 = start + timedelta(seconds=i)
        out.append(
            Trial(
                i,
                params,
                TrialState.COMPLETE,
                value=f(params),
                started_at=t0,
                finished_at=t0 + timedelta(seconds=0.5),
            )
        )
    return out


def test_importance_finds_the_parameter_that_matters() -> None:
    view = StudyView(_trials(60, lambda p: 10 * p["a"] ** 2 + 0.01 * p["b"]))
    imp = param_importance(view)
    assert [i.name for i in imp][0] == "a"
    assert imp[0].share > 0.8 and abs(sum(i.share for i in imp) - 1) < 1e-9
    assert param_importance(StudyView(_trials(3, lambda p: p["a"]))) == []  # too few
    assert param_importance(StudyView(_trials(20, lambda p: 1.0))) == []  # nothing varies


def test_large_studies_are_thinned_but_keep_every_improvement() -> None:
    n = 10_000
    view = StudyView(_trials(n, lambda p: p["a"] + p["b"]), direction="minimize")
    fig = figures.best_so_far_figure(view, "number")
    points, best = fig.data[0], fig.data[1]
    assert len(points.x) <= figures.MAX_POINTS + len(best.x)
    improvements = []
    low = float("inf")
    for t in view.trials:
        if t.value < low:
            low = t.value
            improvements.append(t.number)
    assert set(improvements) <= set(points.x) and set(improvements) <= set(best.x)
    par = figures.parallel_figure(view)
    assert len(par.data[0].dimensions[0].values) <= figures.MAX_LINES
    assert len(figures.slice_figure(view).data[0].x) <= figures.MAX_POINTS
    assert len(json.loads(figures.timeline_figure(view).to_json())["data"][0]["x"]) <= 3 * (
        figures.MAX_POINTS + 1
    )


def test_pipeline_bars_are_binned_for_many_trials() -> None:
    trials = []
    for i in range(800):  # two trials a bin
        stages = [
            {"name": "a", "cost": 1.0, "cache_hit": i % 2 == 1, "seconds": 0.1},
            {"name": "b", "cost": 2.0, "cache_hit": False, "seconds": 0.1},
        ]
        trials.append(
            Trial(
                i,
                {"x": i / 1000},
                TrialState.COMPLETE,
                value=float(i % 7),
                finished_at=datetime(2026, 1, 1),
                system_attrs={
                    SystemAttr.STAGES: stages,
                    SystemAttr.COST: 3.0,
                    SystemAttr.COST_SAVED: 1.0 if i % 2 else 0.0,
                },
            )
        )
    view = StudyView(trials)
    fig = figures.stage_cost_figure(view)
    assert all(len(tr.x) <= figures.MAX_BARS for tr in fig.data)
    saved = next(tr for tr in fig.data if tr.name == "saved by the cache")
    assert all(abs(y - 0.5) < 0.01 for y in saved.y)  # half of each bin came from the cache
    cache = figures.cache_figure(view)
    assert cache.data[1].y[-1] == pytest.approx(400.0)  # cost saved, accumulated
