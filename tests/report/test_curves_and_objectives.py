"""The report and the dashboard on what the core grew: learning curves and pruned trials,
multi-objective studies, define-by-run studies with conditional parameters, and the LHOPT
controller's learning-rate record."""

from __future__ import annotations

import io
import json
import math
import re
from datetime import datetime, timedelta

import numpy as np
import pytest

from metatune import Study
from metatune.integrations.schedule import LR_SCHEDULE_ATTR, read_schedule
from metatune.pareto import dominates, pareto_front
from metatune.report import figures
from metatune.report.data import StudyView
from metatune.report.export import trial_columns, trial_rows, write_csv
from metatune.report.html import render_report, summary_rows
from metatune.report.importance import param_importance
from metatune.trial import Trial, TrialState

pytest.importorskip("plotly")

SECTION = re.compile(r"<section id='([a-z-]+)'>")


def _traces(fig) -> dict[str, object]:
    return {tr.name: tr for tr in fig.data if tr.name}


# Learning curves and pruned trials -------------------------------------------------------------
def test_curve_study_has_pruned_and_complete_trials(curve_study: Study) -> None:
    states = [t.state for t in curve_study.trials]
    assert states.count(TrialState.PRUNED) >= 5 and states.count(TrialState.COMPLETE) >= 3


def test_intermediate_values_plot_marks_pruned_trials(curve_study: Study) -> None:
    view = StudyView.from_any(curve_study)
    fig = figures.intermediate_figure(view)
    pruned = [t for t in view.trials if t.state is TrialState.PRUNED]
    done = [t for t in view.trials if t.state is TrialState.COMPLETE]
    traces = _traces(fig)
    assert set(traces) >= {f"pruned ({len(pruned)})", f"complete ({len(done)})", "pruned here"}
    # Every pruned curve ends with a mark at the step its pruner stopped it.
    ends = traces["pruned here"]
    assert sorted(zip(ends.x, ends.y, strict=True)) == sorted(
        (t.last_step, t.intermediate_values[t.last_step]) for t in pruned
    )
    # One polyline per trial in its state's trace (None separates them), all its steps.
    xs = list(traces[f"complete ({len(done)})"].x)
    assert xs.count(None) == len(done)
    assert len(xs) - len(done) == sum(len(t.intermediate_values) for t in done)
    best = curve_study.best
    line = traces[f"best trial #{best.number}"]
    assert list(line.y) == [best.intermediate_values[s] for s in sorted(best.intermediate_values)]


def test_report_shows_curves_pruned_counts_and_where_trials_stopped(curve_study: Study) -> None:
    text = render_report(curve_study, plotly_js="")
    found = SECTION.findall(text)
    assert "intermediate" in found and "lr-schedule" in found and "pareto" not in found
    rows = dict(summary_rows(StudyView.from_any(curve_study)))
    n_pruned = sum(t.state is TrialState.PRUNED for t in curve_study.trials)
    assert f"{n_pruned} pruned" in rows["trials"]
    assert f"{n_pruned} pruned, at step" in rows["learning curves"]
    pruned = next(t for t in curve_study.trials if t.state is TrialState.PRUNED)
    assert f"pruned at step {pruned.last_step}" in text  # the table of unfinished trials
    assert '<span class="state-pruned">pruned</span>' in text or "state-pruned" in text
    history = figures.best_so_far_figure(StudyView.from_any(curve_study))
    assert f"pruned trial ({n_pruned})" in _traces(history)


def test_curves_are_thinned_for_large_studies() -> None:
    t0 = datetime(2026, 1, 1)
    trials = []
    for n in range(1500):
        state = (
            TrialState.RUNNING if n >= 1495 else TrialState.PRUNED if n % 3 else TrialState.COMPLETE
        )
        steps = 500 if n == 7 else 40
        iv = {
            s: 1.0 / (s + 1) + n * 1e-4
            for s in range(steps if state is not TrialState.PRUNED else 10)
        }
        trials.append(
            Trial(
                n,
                {"x": n / 1500},
                state,
                value=iv[max(iv)] if state is not TrialState.RUNNING else None,
                started_at=t0 + timedelta(seconds=n),
                finished_at=None if state is TrialState.RUNNING else t0 + timedelta(seconds=n + 1),
                intermediate_values=iv,
            )
        )
    view = StudyView(trials)
    drawn = figures._curve_sample(view, figures.MAX_CURVES)
    assert len(drawn) <= figures.MAX_CURVES + 5
    numbers = {t.number for t in drawn}
    assert {1495, 1496, 1497, 1498, 1499} <= numbers  # the running ones
    assert view.best().number in numbers and 0 in numbers  # the best (lowest) curve
    fig = figures.intermediate_figure(view)
    n_points = sum(sum(v is not None for v in tr.x) for tr in fig.data if tr.mode == "lines")
    assert n_points <= (figures.MAX_CURVES + 5) * (figures.MAX_CURVE_POINTS + 1) + 40
    assert "of 1500 curves" in fig.layout.title.text


# Define-by-run studies with conditional parameters ----------------------------------------------
def test_define_by_run_params_are_inferred_from_what_trials_suggested(curve_study: Study) -> None:
    view = StudyView.from_any(curve_study)
    assert view.space is None
    kinds = {p.name: (p.kind, p.log) for p in view.params()}
    assert kinds == {
        "optimizer": ("categorical", False),
        "lr": ("float", True),
        "weight_decay": ("float", True),
        "width": ("int", False),
    }
    assert any("weight_decay" not in t.params for t in view.completed())


def test_parallel_coordinates_put_absent_params_on_their_own_tick(curve_study: Study) -> None:
    view = StudyView.from_any(curve_study)
    fig = figures.parallel_figure(view)
    dims = {d.label: d for d in fig.data[0].dimensions}
    wd = dims["weight_decay"]
    done = figures._sample_for_lines(view, figures.MAX_LINES)
    assert len(wd.values) == len(done) and None not in wd.values
    assert wd.ticktext[0] == "absent"
    absent = [v == wd.tickvals[0] for v in wd.values]
    assert absent == ["weight_decay" not in t.params for t in done]
    present = [v for v, a in zip(wd.values, absent, strict=True) if not a]
    assert min(present) > wd.tickvals[0]  # below every real value (log10 of it)


def test_slices_and_importance_cope_with_absent_params(curve_study: Study) -> None:
    view = StudyView.from_any(curve_study)
    fig = figures.slice_figure(view)
    by_panel = {a.text: i for i, a in enumerate(fig.layout.annotations)}
    wd_trace = fig.data[by_panel["weight_decay"]]
    assert len(wd_trace.x) == sum("weight_decay" in t.params for t in view.completed())
    # the importance is computed on every trial, an absent value coded as its own level
    many = make_many_conditional_trials()
    imp = {i.name: i.share for i in param_importance(StudyView(many))}
    assert set(imp) == {"kind", "x", "y"}
    assert imp["x"] > imp["y"]


def make_many_conditional_trials(n: int = 80) -> list[Trial]:
    """x matters and exists only for kind "a"; y is noise and exists only for kind "b"."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        kind = "a" if k % 2 else "b"
        params = {"kind": kind}
        if kind == "a":
            params["x"] = float(rng.uniform(0, 1))
            value = 4 * (params["x"] - 0.5) ** 2
        else:
            params["y"] = float(rng.uniform(0, 1))
            value = 0.5 + 0.01 * rng.normal()
        out.append(Trial(k, params, TrialState.COMPLETE, value=value))
    return out


# Multi-objective studies ------------------------------------------------------------------------
def test_multi_objective_view_has_a_front_and_no_best(two_objective_study: Study) -> None:
    view = StudyView.from_any(two_objective_study)
    assert view.is_multi_objective and view.best() is None
    assert [t.number for t in view.pareto()] == [t.number for t in two_objective_study.best_trials]
    rows = dict(summary_rows(view))
    assert rows["directions"] == "minimize, minimize" and "best value" not in rows
    assert rows["Pareto front"].startswith(f"{len(view.pareto())} trials (#")


def test_pareto_figure_highlights_the_front(two_objective_study: Study) -> None:
    view = StudyView.from_any(two_objective_study)
    fig = figures.pareto_figure(view)
    traces = _traces(fig)
    front = traces[f"Pareto front ({len(view.pareto())})"]
    assert sorted(zip(front.x, front.y, strict=True)) == sorted(
        tuple(t.values) for t in view.pareto()
    )
    assert len(traces["dominated trial"].x) == len(view.completed()) - len(view.pareto())
    assert fig.layout.xaxis.title.text == "objective 0 (minimize)"
    assert fig.layout.yaxis.title.text == "objective 1 (minimize)"
    assert figures.pareto_figure(StudyView(view.trials)) is None  # one objective: none


def test_multi_objective_report_and_dashboard_summary(two_objective_study: Study) -> None:
    text = render_report(two_objective_study, plotly_js="")
    found = SECTION.findall(text)
    assert found[:3] == ["summary", "history", "pareto"]
    assert "history-time" not in found  # no single best to follow over time
    assert "<h2>Pareto front</h2>" in text and "objective 1 (minimize)</th>" in text
    assert "<h2>Each objective, by trial</h2>" in text and "Best so far" not in text
    view = StudyView.from_any(two_objective_study)
    par = figures.parallel_figure(view)
    labels = [d.label for d in par.data[0].dimensions]
    assert labels[-2:] == ["objective 0 (minimize)", "objective 1 (minimize)"]


def test_three_objectives_get_a_scatter_matrix() -> None:
    rng = np.random.default_rng(1)
    trials = []
    for n in range(25):
        vals = rng.uniform(0, 1, 3).tolist()
        trials.append(Trial(n, {"x": n}, TrialState.COMPLETE, value=vals[0], values=vals))
    view = StudyView(trials, directions=["minimize", "maximize", "minimize"])
    fig = figures.pareto_figure(view)
    assert fig.data[0].type == "splom" and len(fig.data[0].dimensions) == 3
    red = sum(c == "#d62728" for c in fig.data[0].marker.color)
    assert red == len(view.pareto()) > 0


def test_the_linear_memory_front_agrees_with_pairwise_dominance() -> None:
    for seed in range(20):
        rng = np.random.default_rng(seed)
        for k in (2, 3, 4):
            y = np.round(rng.uniform(0, 1, (60, k)), 1)  # many ties and duplicates
            y[7] = y[3]
            brute = [i for i in range(len(y)) if not any(dominates(o, y[i]) for o in y)]
            assert pareto_front(y) == brute, (seed, k)
    assert pareto_front(np.empty((0, 2))) == []


# Exports --------------------------------------------------------------------------------------
def test_dataframe_carries_pruned_state_and_last_report(curve_study: Study) -> None:
    pytest.importorskip("pandas")
    frame = curve_study.trials_dataframe()
    assert set(frame["state"]) == {"complete", "pruned"}
    pruned = frame[frame["state"] == "pruned"]
    trials = {t.number: t for t in curve_study.trials}
    for _, row in pruned.iterrows():
        t = trials[row["number"]]
        assert row["last_step"] == t.last_step
        assert row["last_intermediate"] == pytest.approx(t.intermediate_values[t.last_step])
    # conditional parameter: empty where the trial did not have it
    adam = frame[frame["params.optimizer"] == "adam"]
    assert adam["params.weight_decay"].isna().all()


def test_dataframe_of_a_multi_objective_study_has_values_columns(
    two_objective_study: Study,
) -> None:
    pytest.importorskip("pandas")
    frame = two_objective_study.trials_dataframe()
    cols = list(frame.columns)
    assert cols[:5] == ["number", "state", "value", "values_0", "values_1"]
    for _, row in frame.iterrows():
        t = two_objective_study.trials[row["number"]]
        assert [row["values_0"], row["values_1"]] == t.values
    buf = io.StringIO()
    write_csv(two_objective_study.trials, buf)
    assert buf.getvalue().splitlines()[0].startswith("number,state,value,values_0,values_1,")


def test_plain_trials_get_no_extra_columns() -> None:
    t = Trial(0, {"x": 1}, TrialState.COMPLETE, value=1.0, values=[1.0])
    assert "values_0" not in trial_columns([t]) and "last_step" not in trial_columns([t])
    assert trial_rows([t])[0]["value"] == 1.0


# The LHOPT controller's learning-rate record -----------------------------------------------------
def test_lr_schedule_plot_shows_each_trials_rates(curve_study: Study) -> None:
    view = StudyView.from_any(curve_study)
    fig = figures.lr_schedule_figure(view)
    lines = [tr for tr in fig.data if tr.mode == "lines+markers"]
    with_record = [t for t in view.trials if read_schedule(t.user_attrs)]
    assert len(lines) == len(with_record) == len(view.trials)
    for tr, t in zip(lines, with_record, strict=True):
        rec = t.user_attrs[LR_SCHEDULE_ATTR]
        assert list(tr.x) == rec["step"] and list(tr.y) == pytest.approx(rec["lr"])
        assert tr.y[0] == pytest.approx(t.params["lr"])  # starts from the trial's lr
    assert fig.layout.yaxis.type == "log"
    # the controller really moved some rates
    assert any(len(set(tr.y)) > 1 for tr in lines)


def test_lr_schedule_records_that_cannot_be_plotted_are_ignored() -> None:
    good = {"step": [0, 5], "lr": [0.1, 0.05], "guard": [5]}
    assert read_schedule({LR_SCHEDULE_ATTR: good}) == good
    for bad in (
        None,
        "text",
        {"step": [0, 1], "lr": [0.1]},
        {"step": [0, 1], "lr": [0.1, -1.0]},
        {"step": [0, "x"], "lr": [0.1, 0.2]},
        {"step": [], "lr": []},
        {"step": [0], "lr": [math.nan]},
    ):
        assert read_schedule({LR_SCHEDULE_ATTR: bad}) is None
    t = Trial(0, {}, TrialState.COMPLETE, value=1.0, user_attrs={LR_SCHEDULE_ATTR: "junk"})
    assert figures.lr_schedule_figure(StudyView([t])) is None
    guarded = Trial(1, {}, TrialState.COMPLETE, value=1.0, user_attrs={LR_SCHEDULE_ATTR: good})
    fig = figures.lr_schedule_figure(StudyView([guarded]))
    marks = _traces(fig)["guard restored (lr / 10)"]
    assert list(marks.x) == [5] and list(marks.y) == [0.05]


def test_lr_schedules_are_thinned() -> None:
    trials = [
        Trial(
            n,
            {},
            TrialState.COMPLETE,
            value=float(n),
            user_attrs={LR_SCHEDULE_ATTR: {"step": [0, 10], "lr": [0.1, 0.2]}},
        )
        for n in range(200)
    ]
    fig = figures.lr_schedule_figure(StudyView(trials))
    names = [tr.name for tr in fig.data]
    assert len(names) <= figures.MAX_SCHEDULES
    assert any(name.startswith("trial #0 ") for name in names)  # the best is kept


# The dashboard ----------------------------------------------------------------------------------
def test_dashboard_counts_pruned_and_redraws_while_a_trial_reports(
    tmp_path, curve_makers: tuple
) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from metatune.report.dashboard import create_app
    from metatune.storage import get_storage

    _, make_two_objective_study = curve_makers
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    study = Study(optimizer="random", seed=0, name="live", storage=url, pruner="none")

    def objective(trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        trial.report(x, 0)
        return x

    study.optimize(objective, n_trials=3, show_progress=False)
    running = study.ask()
    study.report(running, 0.5, 0)
    make_two_objective_study(url, n_trials=12)
    client = TestClient(create_app(get_storage(url, read_only=True), poll_seconds=0.5))
    studies = {s["name"]: s for s in client.get("/api/studies").json()["studies"]}
    assert studies["live"]["counts"]["pruned"] == 0 and studies["live"]["counts"]["running"] == 1
    two = studies["two"]
    assert two["best_value"] is None and two["directions"] == ["minimize", "minimize"]
    assert two["n_pareto"] == len(Study(name="two", storage=url).best_trials)
    assert "<th>pruned</th>" in client.get("/").text
    imp = client.get("/api/importance", params={"name": "two"}).json()["figure"]["figure"]
    assert [tr["name"] for tr in imp["data"]] == [
        "objective 0 (minimize)",
        "objective 1 (minimize)",
    ]

    titles = {f["key"]: f["title"] for f in client.get("/api/study?name=two").json()["figures"]}
    assert titles["history"] == "Each objective, by trial"
    first = client.get("/api/study", params={"name": "live"}).json()
    keys = [f["key"] for f in first["figures"]]
    assert "intermediate" in keys
    study.report(running, 0.4, 1)  # the running trial reports again: the page must redraw
    again = client.get("/api/study", params={"name": "live", "version": first["version"]}).json()
    assert again["changed"] is True
    curve = next(f for f in again["figures"] if f["key"] == "intermediate")["figure"]
    running_line = next(tr for tr in curve["data"] if tr["name"].startswith("running"))
    assert [v for v in running_line["y"] if v is not None] == [0.5, 0.4]
    study.tell(running, 0.4)

    pruned = Study(name="live", storage=url)
    t = pruned.ask()
    pruned.report(t, 0.9, 0)
    pruned.tell(t, state="pruned")
    rows = client.get("/api/trials", params={"name": "live", "state": "pruned"}).json()
    assert rows["total"] == 1 and rows["rows"][0]["state"] == "pruned"
    assert rows["rows"][0]["last_step"] == 0
    assert json.dumps(rows)  # plain JSON


def test_studies_with_nothing_completed_still_render() -> None:
    t0 = datetime(2026, 1, 1)
    pruned = [
        Trial(
            n,
            {"x": n},
            TrialState.PRUNED,
            value=1.0,
            started_at=t0,
            finished_at=t0 + timedelta(seconds=1),
            intermediate_values={0: 1.0},
        )
        for n in range(3)
    ]
    text = render_report(pruned, plotly_js="")
    assert "intermediate" in SECTION.findall(text) and "No completed trial yet" in text
    failed = [Trial(0, {"x": 1}, TrialState.FAILED, error="boom", started_at=t0, finished_at=t0)]
    view = StudyView(failed, directions=["minimize", "maximize"])
    assert view.pareto() == [] and figures.pareto_figure(view) is None
    text = render_report(view, plotly_js="")
    assert "boom" in text and "Pareto front" in text


def test_importance_of_each_objective() -> None:
    rng = np.random.default_rng(3)
    trials = []
    for n in range(60):
        a, b = float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
        vals = [(a - 0.5) ** 2, (b - 0.2) ** 2]  # a drives the first objective, b the second
        trials.append(Trial(n, {"a": a, "b": b}, TrialState.COMPLETE, value=vals[0], values=vals))
    view = StudyView(trials, directions=["minimize", "minimize"])
    first = {i.name: i.share for i in param_importance(view, objective=0)}
    second = {i.name: i.share for i in param_importance(view, objective=1)}
    assert first["a"] > first["b"] and second["b"] > second["a"]
    with pytest.raises(ValueError, match=r"objective must be in \[0, 1\]"):
        param_importance(view, objective=2)
    fig = figures.importance_figure(view)
    assert [tr.name for tr in fig.data] == ["objective 0 (minimize)", "objective 1 (minimize)"]
    shares = {tr.name: dict(zip(tr.y, tr.x, strict=True)) for tr in fig.data}
    assert shares["objective 0 (minimize)"]["a"] == pytest.approx(first["a"])
    assert shares["objective 1 (minimize)"]["b"] == pytest.approx(second["b"])
