"""Plotly figures of a study, shared by the HTML report and the dashboard.

Every builder takes a `StudyView` and returns a `plotly.graph_objects.Figure`, or None when the
study has nothing to show there (no completed trial, no pipeline stages...). Large studies are
thinned here, on the server side, so a figure never carries more than about `max_points`
markers: every improvement of the best value is kept, the rest is an even sample (or, for
per-trial bars, consecutive trials averaged in bins).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from metatune.report.data import ParamInfo, StudyView, numeric_value
from metatune.trial import SystemAttr, Trial, TrialState, counted_cost

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from metatune.report.importance import Importance

__all__ = [
    "FigureSpec",
    "MAX_POINTS",
    "STATE_COLORS",
    "all_figures",
    "best_so_far_figure",
    "budget_figure",
    "cache_figure",
    "importance_figure",
    "intermediate_figure",
    "lr_schedule_figure",
    "parallel_figure",
    "pareto_figure",
    "require_plotly",
    "slice_figure",
    "stage_cost_figure",
    "timeline_figure",
]

MAX_POINTS = 2000  # markers per figure before thinning
MAX_LINES = 1000  # polylines in a parallel-coordinates plot
MAX_BARS = 400  # bars per figure before consecutive trials are averaged in bins
MAX_CURVES = 300  # learning curves per figure before thinning
MAX_CURVE_POINTS = 200  # steps per learning curve before thinning
MAX_SCHEDULES = 40  # learning-rate schedules per figure before thinning
STATE_COLORS = {
    "complete": "#1f77b4",
    "failed": "#d62728",
    "running": "#ff7f0e",
    "pruned": "#7f7f7f",
}
_OTHER_STATE_COLOR = "#8c564b"
_LOG_RATIO = 30.0  # positive objectives spanning more than this factor get a log axis
_STAGE_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b"]
_SYMBOLS = {"failed": "x", "running": "circle-open", "pruned": "triangle-down"}


def require_plotly() -> None:
    """ImportError with the install line when plotly is missing."""
    try:
        import plotly  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "the HTML report and the dashboard need plotly: pip install 'metatune[report]'"
        ) from exc


@dataclass(frozen=True)
class FigureSpec:
    """One figure of a page: a stable `key` (HTML id, dashboard slot), a title, what it shows."""

    key: str
    title: str
    caption: str
    build: Callable[[StudyView], go.Figure | None]
    mo_title: str | None = None  # the title for a multi-objective study, when it differs
    mo_caption: str | None = None

    def title_for(self, view: StudyView) -> str:
        return (self.mo_title or self.title) if view.is_multi_objective else self.title

    def caption_for(self, view: StudyView) -> str:
        return (self.mo_caption or self.caption) if view.is_multi_objective else self.caption


# Helpers --------------------------------------------------------------------------------------
def _layout(fig: go.Figure, *, title: str | None = None, height: int = 380, **kw: Any) -> None:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 40 if title else 20, "b": 50},
        title={"text": title} if title else None,
        legend={"orientation": "h", "y": -0.2, "traceorder": "normal"},
        **kw,
    )


def thin(n: int, k: int, keep: Sequence[int] = ()) -> list[int]:
    """Indices of an even sample of at most about `k` of `n` items, plus every index in `keep`."""
    if n <= k:
        return list(range(n))
    picked = set(np.linspace(0, n - 1, num=k).round().astype(int).tolist())
    picked.update(i for i in keep if 0 <= i < n)
    return sorted(picked)


def _hover(t: Trial, params: Sequence[ParamInfo], limit: int = 8) -> str:
    lines = [f"trial #{t.number} ({t.state.value})"]
    if t.values is not None and len(t.values) > 1:
        lines.append("values " + ", ".join(f"{v:.6g}" for v in t.values))
    elif t.value is not None:
        lines.append(f"value {t.value:.6g}")
    for p in params[:limit]:
        if p.name in t.params:
            lines.append(f"{_escape(p.name)} = {_escape(_short(t.params[p.name]))}")
    if t.error:
        lines.append(_escape(t.error.strip().splitlines()[0][:120]) if t.error.strip() else "")
    return "<br>".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _escape(text: str) -> str:
    """Plotly renders hover text as HTML: escape what a parameter name or error may hold."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _elapsed(trials: Sequence[Trial]) -> tuple[dict[int, float], str, float]:
    """Seconds from the first start to each finished trial's end, and a unit to show them in."""
    if not trials:
        return {}, "s", 1.0
    t0 = min(t.started_at for t in trials)
    out = {
        t.number: (t.finished_at - t0).total_seconds() for t in trials if t.finished_at is not None
    }
    span = max(out.values(), default=0.0)
    unit, scale = ("h", 3600.0) if span > 3 * 3600 else ("min", 60.0) if span > 180 else ("s", 1.0)
    return out, unit, scale


def _cost_positions(trials: Sequence[Trial]) -> dict[int, float]:
    """Cost spent up to and including each trial, in trial-number order (as budgets count)."""
    out, spent = {}, 0.0
    for t in trials:
        if t.state.finished:
            spent += counted_cost(t)
        out[t.number] = spent
    return out


def _has_costs(view: StudyView) -> bool:
    return any(t.system_attrs.get(SystemAttr.COST) is not None for t in view.trials)


# History --------------------------------------------------------------------------------------
def best_so_far_figure(view: StudyView, x: str = "number") -> go.Figure | None:
    """Every completed trial's value and the best so far against trial number (`x="number"`),
    wall time since the first trial started (`"elapsed"`) or cost spent (`"cost"`); failed,
    pruned and running trials as marks along the bottom."""
    import plotly.graph_objects as go

    trials = view.trials
    done = view.completed()
    if not trials or (x == "cost" and not _has_costs(view)):
        return None
    if view.is_multi_objective:  # no single best: each objective against trials instead
        return objectives_figure(view) if x == "number" else None
    if x == "number":
        pos = {t.number: float(t.number) for t in trials}
        xlabel = "trial number"
    elif x == "elapsed":
        secs, unit, scale = _elapsed(trials)
        pos = {n: s / scale for n, s in secs.items()}
        xlabel = f"wall time since the first trial started ({unit})"
    elif x == "cost":
        pos = _cost_positions(trials)
        xlabel = "cost spent (the budget's units)"
    else:
        raise ValueError(f"x must be 'number', 'elapsed' or 'cost', got {x!r}")
    params = view.params()
    done = [t for t in done if t.number in pos]
    if x == "elapsed":  # in the order they finished: the best so far at each moment
        done.sort(key=lambda t: pos[t.number])
    sign = view.sign
    best, improved, curve = math.inf, [], []
    for i, t in enumerate(done):
        v = sign * float(t.value)  # type: ignore[arg-type]
        if v < best:
            best = v
            improved.append(i)
        curve.append(sign * best)
    fig = go.Figure()
    if done:
        idx = thin(len(done), MAX_POINTS, improved)
        fig.add_trace(
            go.Scatter(
                x=[pos[done[i].number] for i in idx],
                y=[done[i].value for i in idx],
                mode="markers",
                name="completed trial",
                marker={"color": STATE_COLORS["complete"], "size": 6, "opacity": 0.55},
                hovertext=[_hover(done[i], params) for i in idx],
                hoverinfo="text",
            )
        )
        # The best so far as a step line through every improvement, out to the last trial.
        steps = improved + ([len(done) - 1] if improved[-1] != len(done) - 1 else [])
        fig.add_trace(
            go.Scatter(
                x=[pos[done[i].number] for i in steps],
                y=[curve[i] for i in steps],
                mode="lines+markers",
                line={"shape": "hv", "color": "#2ca02c", "width": 2.5},
                marker={"size": [7 if i in set(improved) else 0 for i in steps]},
                name="best so far",
                hovertext=[f"best so far {curve[i]:.6g} (trial #{done[i].number})" for i in steps],
                hoverinfo="text",
            )
        )
    _add_unfinished_rug(fig, view, pos, params)
    _layout(fig, xaxis_title=xlabel, yaxis_title="objective")
    values = [float(t.value) for t in done]  # type: ignore[arg-type]
    if values and min(values) > 0 and max(values) / min(values) > _LOG_RATIO:
        # Positive values over orders of magnitude (losses, errors): on a linear axis the
        # first poor trials flatten every later improvement into the floor.
        fig.update_yaxes(type="log", title_text="objective (log scale)")
    fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1], "visible": False})
    if not done:
        fig.add_annotation(
            text="no completed trial yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    return fig


def objectives_figure(view: StudyView) -> go.Figure | None:
    """A multi-objective study's history: each objective against trial number (one panel per
    objective), the trials on the Pareto front highlighted."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    done = view.completed()
    if not view.trials:
        return None
    front = {t.number for t in view.pareto()}
    params = view.params()
    k = view.n_objectives
    fig = make_subplots(rows=k, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    idx = thin(len(done), MAX_POINTS, [i for i, t in enumerate(done) if t.number in front])
    for j in range(k):
        for on_front in (False, True):
            pts = [done[i] for i in idx if (done[i].number in front) == on_front]
            fig.add_trace(
                go.Scatter(
                    x=[t.number for t in pts],
                    y=[view.values_of(t)[j] for t in pts],  # type: ignore[index]
                    mode="markers",
                    name="on the Pareto front" if on_front else "completed trial",
                    legendgroup="front" if on_front else "done",
                    showlegend=j == 0,
                    marker={
                        "color": "#d62728" if on_front else STATE_COLORS["complete"],
                        "size": 8 if on_front else 6,
                        "opacity": 0.9 if on_front else 0.5,
                    },
                    hovertext=[_hover(t, params) for t in pts],
                    hoverinfo="text",
                ),
                row=j + 1,
                col=1,
            )
        fig.update_yaxes(title_text=view.objective_label(j), row=j + 1, col=1)
    fig.update_xaxes(title_text="trial number", row=k, col=1)
    _layout(
        fig,
        height=80 + 230 * k,
        title="Each objective by trial (several objectives: no single best)",
    )
    return fig


def pareto_figure(view: StudyView) -> go.Figure | None:
    """A multi-objective study's completed trials in objective space, the Pareto front (the
    trials no other beats on every objective) highlighted; two objectives as a scatter with
    the front joined, more as a scatter matrix."""
    import plotly.graph_objects as go

    if not view.is_multi_objective:
        return None
    done = view.completed()
    if not done:
        return None
    front = view.pareto()
    numbers_on_front = {t.number for t in front}
    rest = [t for t in done if t.number not in numbers_on_front]
    rest = [rest[i] for i in thin(len(rest), MAX_POINTS)]
    params = view.params()
    k = view.n_objectives
    labels = [view.objective_label(j) for j in range(k)]
    fig = go.Figure()
    if k == 2:
        for pts, name, color, size in (
            (rest, "dominated trial", STATE_COLORS["complete"], 6),
            (front, f"Pareto front ({len(front)})", "#d62728", 9),
        ):
            fig.add_trace(
                go.Scatter(
                    x=[view.values_of(t)[0] for t in pts],  # type: ignore[index]
                    y=[view.values_of(t)[1] for t in pts],  # type: ignore[index]
                    mode="markers",
                    name=name,
                    marker={"color": color, "size": size, "opacity": 0.6 if size < 9 else 0.95},
                    hovertext=[_hover(t, params) for t in pts],
                    hoverinfo="text",
                )
            )
        ordered = sorted(front, key=lambda t: view.values_of(t)[0])  # type: ignore[index]
        fig.add_trace(
            go.Scatter(
                x=[view.values_of(t)[0] for t in ordered],  # type: ignore[index]
                y=[view.values_of(t)[1] for t in ordered],  # type: ignore[index]
                mode="lines",
                line={"color": "#d62728", "width": 1.5, "dash": "dot"},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        _layout(fig, xaxis_title=labels[0], yaxis_title=labels[1], height=420)
        return fig
    pts = front + rest
    fig.add_trace(
        go.Splom(
            dimensions=[
                {"label": labels[j], "values": [view.values_of(t)[j] for t in pts]}  # type: ignore[index]
                for j in range(k)
            ],
            marker={
                "color": ["#d62728" if t.number in numbers_on_front else "#1f77b4" for t in pts],
                "size": 6,
                "opacity": 0.7,
            },
            text=[_hover(t, params) for t in pts],
            hoverinfo="text",
            diagonal={"visible": False},
            showupperhalf=False,
        )
    )
    _layout(fig, height=140 + 200 * k, title=f"Pareto front: {len(front)} trials (red)")
    return fig


# Learning curves ------------------------------------------------------------------------------
def _curve_sample(view: StudyView, k: int) -> list[Trial]:
    """Trials with reported curves to draw: all, or when there are more than `k` the best
    fifth by their last report, the running ones (up to a fifth) and an even sample of the
    rest."""
    curves = [t for t in view.trials if t.intermediate_values]
    if len(curves) <= k:
        return curves
    sign = view.sign

    def last(t: Trial) -> float:
        return sign * t.intermediate_values[max(t.intermediate_values)]

    ranked = sorted(range(len(curves)), key=lambda i: last(curves[i]))
    keep = set(ranked[: k // 5])
    keep |= set([i for i, t in enumerate(curves) if t.state is TrialState.RUNNING][-(k // 5) :])
    best = view.best()
    if best is not None:
        keep |= {i for i, t in enumerate(curves) if t.number == best.number}
    rest = [i for i in range(len(curves)) if i not in keep]
    keep |= {rest[j] for j in thin(len(rest), max(k - len(keep), 1))}
    return [curves[i] for i in sorted(keep)]


_CURVE_COLORS = {
    "complete": "rgba(31,119,180,0.55)",
    "pruned": "rgba(127,127,127,0.55)",
    "failed": "rgba(214,39,40,0.6)",
    "running": "rgba(255,127,14,0.9)",
}


def intermediate_figure(view: StudyView) -> go.Figure | None:
    """Each trial's intermediate values (what it reported step by step: its learning curve),
    by state; pruned trials end with a mark where the pruner stopped them, the best trial in
    green on top. Large studies show the best curves, the running ones and an even sample."""
    import plotly.graph_objects as go

    trials = _curve_sample(view, MAX_CURVES)
    if not trials:
        return None
    total = sum(1 for t in view.trials if t.intermediate_values)
    counts: dict[str, int] = {}
    for t in view.trials:
        if t.intermediate_values:
            counts[t.state.value] = counts.get(t.state.value, 0) + 1
    best = view.best()
    by_state: dict[str, tuple[list[Any], list[Any], list[Any]]] = {}
    ends: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    values: list[float] = []
    for t in trials:
        steps = sorted(t.intermediate_values)
        idx = thin(len(steps), MAX_CURVE_POINTS, [len(steps) - 1])
        xs_t = [steps[i] for i in idx]
        ys_t = [t.intermediate_values[s] for s in xs_t]
        values += ys_t
        xs, ys, text = by_state.setdefault(t.state.value, ([], [], []))
        label = f"trial #{t.number} ({t.state.value})"
        xs += [*xs_t, None]
        ys += [*ys_t, None]
        text += [f"{label}<br>step {s}: {v:.6g}" for s, v in zip(xs_t, ys_t, strict=True)] + [""]
        if t.state is TrialState.PRUNED:
            ends[0].append(xs_t[-1])
            ends[1].append(ys_t[-1])
            ends[2].append(f"{label} pruned at step {xs_t[-1]}: {ys_t[-1]:.6g}")
    fig = go.Figure()
    order = ["complete", "pruned", "failed", "running"]
    for state in sorted(by_state, key=lambda s: order.index(s) if s in order else len(order)):
        xs, ys, text = by_state[state]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=f"{state} ({counts.get(state, 0)})",
                line={"color": _CURVE_COLORS.get(state, _OTHER_STATE_COLOR), "width": 1.2},
                hovertext=text,
                hoverinfo="text",
                connectgaps=False,
            )
        )
    if ends[0]:
        fig.add_trace(
            go.Scatter(
                x=ends[0],
                y=ends[1],
                mode="markers",
                name="pruned here",
                marker={"symbol": "x", "color": "#555", "size": 7},
                hovertext=ends[2],
                hoverinfo="text",
            )
        )
    if best is not None and best.intermediate_values:
        steps = sorted(best.intermediate_values)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=[best.intermediate_values[s] for s in steps],
                mode="lines",
                name=f"best trial #{best.number}",
                line={"color": "#2ca02c", "width": 3},
                hoverinfo="x+y+name",
            )
        )
    title = (
        None
        if len(trials) == total
        else f"{len(trials)} of {total} curves: the best, the running ones and an even sample"
    )
    _layout(fig, title=title, xaxis_title="step", yaxis_title="intermediate value")
    if values and min(values) > 0 and max(values) / min(values) > _LOG_RATIO:
        fig.update_yaxes(type="log", title_text="intermediate value (log scale)")
    return fig


def lr_schedule_figure(view: StudyView) -> go.Figure | None:
    """The learning rate an LHOPT controller chose over the training steps of each trial that
    recorded it (see `metatune.integrations.schedule`), log scale; the divergence guard's
    restores marked. Many trials: the best ones and an even sample."""
    import plotly.graph_objects as go

    from metatune.integrations.schedule import read_schedule

    recs = [(t, r) for t in view.trials if (r := read_schedule(t.user_attrs)) is not None]
    if not recs:
        return None
    if len(recs) > MAX_SCHEDULES:
        sign = view.sign
        ranked = sorted(
            range(len(recs)),
            key=lambda i: (
                sign * v if (v := numeric_value(recs[i][0].value)) is not None else math.inf
            ),
        )
        keep = set(ranked[: MAX_SCHEDULES // 2])
        rest = [i for i in range(len(recs)) if i not in keep]
        keep |= {rest[j] for j in thin(len(rest), MAX_SCHEDULES - len(keep))}
        recs = [recs[i] for i in sorted(keep)]
    best = view.best()
    legend = len(recs) <= 12
    guard_shown = False
    fig = go.Figure()
    for k, (t, r) in enumerate(recs):
        is_best = best is not None and t.number == best.number
        value = "" if t.value is None else f", value {t.value:.4g}"
        name = f"trial #{t.number} ({t.state.value}{value})" + (" best" if is_best else "")
        color = "#2ca02c" if is_best else _STAGE_COLORS[k % len(_STAGE_COLORS)]
        fig.add_trace(
            go.Scatter(
                x=r["step"],
                y=r["lr"],
                mode="lines+markers",
                line={
                    "shape": "hv",
                    "color": color,
                    "width": 3 if is_best else 1.5,
                    "dash": "dot" if t.state is TrialState.PRUNED else "solid",
                },
                marker={"size": 4},
                name=name,
                showlegend=legend or is_best,
                hovertemplate=f"{_escape(name)}<br>step %{{x}}: lr %{{y:.3g}}<extra></extra>",
            )
        )
        if r["guard"]:
            at = dict(zip(r["step"], r["lr"], strict=True))
            fig.add_trace(
                go.Scatter(
                    x=r["guard"],
                    y=[at.get(g) for g in r["guard"]],
                    mode="markers",
                    marker={"symbol": "x", "color": "#d62728", "size": 9},
                    name="guard restored (lr / 10)",
                    legendgroup="guard",
                    showlegend=legend and not guard_shown,
                    hovertemplate="divergence guard at step %{x}<extra></extra>",
                )
            )
            guard_shown = True
    _layout(fig, xaxis_title="training step", yaxis_title="learning rate (log scale)")
    fig.update_yaxes(type="log")
    return fig


def _add_unfinished_rug(
    fig: go.Figure, view: StudyView, pos: dict[int, float], params: Sequence[ParamInfo]
) -> None:
    """Trials that did not complete, as marks along the bottom (they have no value to plot)."""
    import plotly.graph_objects as go

    by_state: dict[str, list[Trial]] = {}
    for t in view.trials:
        if t.state is not TrialState.COMPLETE and t.number in pos:
            by_state.setdefault(t.state.value, []).append(t)
    for k, (state, ts) in enumerate(sorted(by_state.items())):
        idx = thin(len(ts), MAX_POINTS)
        fig.add_trace(
            go.Scatter(
                x=[pos[ts[i].number] for i in idx],
                y=[0.03 + 0.04 * k] * len(idx),
                yaxis="y2",
                mode="markers",
                name=f"{state} trial ({len(ts)})",
                marker={
                    "color": STATE_COLORS.get(state, _OTHER_STATE_COLOR),
                    "symbol": _SYMBOLS.get(state, "diamond"),
                    "size": 8,
                },
                hovertext=[_hover(ts[i], params) for i in idx],
                hoverinfo="text",
            )
        )


def timeline_figure(view: StudyView) -> go.Figure | None:
    """Each trial as a bar from its start to its end (running ones to now), by state: shows
    how many workers ran at once and where failures clustered."""
    import plotly.graph_objects as go

    trials = view.trials
    if not trials:
        return None
    t0 = min(t.started_at for t in trials)
    last = max((t.finished_at or t.started_at) for t in trials)
    idx = thin(len(trials), MAX_POINTS, [i for i, t in enumerate(trials) if not t.state.finished])
    fig = go.Figure()
    groups: dict[str, tuple[list[Any], list[Any]]] = {}
    for i in idx:
        t = trials[i]
        end = t.finished_at or last
        xs, ys = groups.setdefault(t.state.value, ([], []))
        xs += [(t.started_at - t0).total_seconds(), (end - t0).total_seconds(), None]
        ys += [t.number, t.number, None]
    for state, (xs, ys) in sorted(groups.items()):
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name=state,
                line={"color": STATE_COLORS.get(state, _OTHER_STATE_COLOR), "width": 3},
                hoverinfo="x+y+name",
            )
        )
    _layout(fig, xaxis_title="seconds since the first trial started", yaxis_title="trial number")
    return fig


# Parameters -----------------------------------------------------------------------------------
_ABSENT = object()  # a parameter a trial did not have (conditional, define-by-run)


def _param_axis(p: ParamInfo, values: list[Any]) -> dict[str, Any]:
    """A parallel-coordinates dimension for parameter `p` (categories as ticked codes; trials
    without the parameter, `_ABSENT`, on a tick of their own labelled "absent")."""
    absent = any(v is _ABSENT for v in values)
    if p.categorical:
        choices = list(p.choices)
        for v in values:
            if v is not _ABSENT and v not in choices:
                choices.append(v)
        codes = [choices.index(v) if v is not _ABSENT else -1 for v in values]
        tickvals = list(range(len(choices)))
        ticktext = [_short(c) for c in choices]
        if absent:
            tickvals, ticktext = [-1, *tickvals], ["absent", *ticktext]
        return {"label": p.name, "values": codes, "tickvals": tickvals, "ticktext": ticktext}
    nums = [None if v is _ABSENT else numeric_value(v) for v in values]
    log = p.log and all(n is None or n > 0 for n in nums)
    shown = [math.log10(n) if log and n is not None else n for n in nums]
    label = f"log10 {p.name}" if log else p.name
    if not absent and all(v is not None for v in shown):
        return {"label": label, "values": shown}
    # Trials without a value sit on an "absent" tick below the range (a missing value would
    # drop the whole line from the plot).
    present = [v for v in shown if v is not None]
    lo, hi = (min(present), max(present)) if present else (0.0, 1.0)
    span = (hi - lo) or 1.0
    where = lo - 0.15 * span
    ticks = list(np.linspace(lo, hi, 5)) if hi > lo else [lo]
    return {
        "label": p.name,
        "values": [where if v is None else v for v in shown],
        "range": [where, hi],
        "tickvals": [where, *ticks],
        "ticktext": ["absent", *[_short(10**t if log else t) for t in ticks]],
    }


def _sample_for_lines(view: StudyView, k: int) -> list[Trial]:
    """Completed trials for a parallel-coordinates plot: all, or the best tenth and an even
    sample of the rest when there are more than `k`."""
    done = view.completed()
    if len(done) <= k:
        return done
    ranked = sorted(range(len(done)), key=lambda i: view.sign * float(done[i].value))  # type: ignore[arg-type]
    best = ranked[: k // 10]
    rest = [i for i in range(len(done)) if i not in set(best)]
    picked = set(best) | {rest[j] for j in thin(len(rest), k - len(best))}
    return [done[i] for i in sorted(picked)]


def parallel_figure(view: StudyView) -> go.Figure | None:
    """Parallel coordinates of the completed trials: one axis per parameter, the objective last,
    lines coloured by objective (the best darkest)."""
    import plotly.graph_objects as go

    trials = _sample_for_lines(view, MAX_LINES)
    params = [p for p in view.params() if any(p.name in t.params for t in trials)]
    if len(trials) < 2 or not params:
        return None
    dims = [_param_axis(p, [t.params.get(p.name, _ABSENT) for t in trials]) for p in params]
    values = [float(t.value) for t in trials]  # type: ignore[arg-type]
    for j in range(view.n_objectives):
        dims.append(
            {
                "label": view.objective_label(j),
                "values": [view.values_of(t)[j] for t in trials],  # type: ignore[index]
            }
        )
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": values,
                "colorscale": "Viridis",
                "reversescale": view.sign > 0,  # minimize: low values darkest
                "showscale": True,
                "colorbar": {
                    "title": {"text": "objective" if view.n_objectives == 1 else "obj. 0"}
                },
            },
            dimensions=dims,
        )
    )
    _layout(fig, height=420)
    fig.update_layout(margin={"l": 80, "r": 60, "t": 60, "b": 30})
    return fig


def importance_figure(
    view: StudyView, importance: Callable[[StudyView, int], list[Importance]] | None = None
) -> go.Figure | None:
    """Permutation importance of each parameter on a random forest fitted to the trials
    (`importance(view, objective)` computes it; default `param_importance`); a
    multi-objective study gets a bar per objective for each parameter."""
    import plotly.graph_objects as go

    from metatune.report.importance import param_importance

    def default(v: StudyView, k: int) -> list[Importance]:
        return param_importance(v, objective=k)

    fn = importance or default
    per_objective = [fn(view, k) for k in range(view.n_objectives)]
    if not any(per_objective):
        return None
    names: dict[str, float] = {}
    for imp in per_objective:
        for i in imp:
            names[i.name] = names.get(i.name, 0.0) + i.share
    order = sorted(names, key=lambda n: names[n])  # plotly draws the first bar at the bottom
    several = view.n_objectives > 1
    fig = go.Figure()
    for k, imp in enumerate(per_objective):
        by_name = {i.name: i for i in imp}
        shown = [n for n in order if n in by_name] if not several else order
        bars = [by_name.get(n) for n in shown]
        label = view.objective_label(k)
        fig.add_trace(
            go.Bar(
                x=[0.0 if i is None else i.share for i in bars],
                y=shown,
                orientation="h",
                name=label,
                showlegend=several,
                marker={"color": _STAGE_COLORS[k % len(_STAGE_COLORS)]},
                text=["" if i is None else f"{i.share:.0%}" for i in bars],
                textposition="auto",
                hovertext=[
                    f"{_escape(n)}: not enough data"
                    if i is None
                    else f"{_escape(n)}: {i.share:.1%} of the explained variation of "
                    f"{label} (R^2 drop {i.mean:.3g} ± {i.std:.2g})"
                    for n, i in zip(shown, bars, strict=True)
                ],
                hoverinfo="text",
            )
        )
    per_bar = 34 * (view.n_objectives if several else 1)
    _layout(
        fig,
        height=max(220, 60 + per_bar * len(order) + (40 if several else 0)),
        xaxis_title="share of the forest's R² lost when the parameter is shuffled",
        barmode="group",
    )
    fig.update_xaxes(tickformat=".0%", rangemode="tozero")
    return fig


def slice_figure(view: StudyView) -> go.Figure | None:
    """The objective against each parameter on its own (one panel per parameter), points
    coloured by trial number: where along each axis the good trials lie."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    done = view.completed()
    params = [p for p in view.params() if any(p.name in t.params for t in done)]
    if not done or not params:
        return None
    idx = thin(len(done), MAX_POINTS)
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[p.name for p in params],
        shared_yaxes=True,
        horizontal_spacing=0.05,
        vertical_spacing=0.5 / rows if rows > 1 else 0.1,
    )
    for k, p in enumerate(params):
        r, c = divmod(k, cols)
        pts = [done[i] for i in idx if p.name in done[i].params]
        xs = [t.params[p.name] for t in pts]
        if p.categorical:
            xs = [_short(v) for v in xs]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[t.value for t in pts],
                mode="markers",
                marker={
                    "color": [t.number for t in pts],
                    "colorscale": "Blues",
                    "size": 6,
                    "line": {"width": 0.5, "color": "#333"},
                    "showscale": k == 0,
                    "colorbar": {"title": {"text": "trial"}, "len": 0.6},
                },
                hovertext=[_hover(t, [p]) for t in pts],  # the panel's parameter only
                hoverinfo="text",
                showlegend=False,
            ),
            row=r + 1,
            col=c + 1,
        )
        if p.log:
            fig.update_xaxes(type="log", row=r + 1, col=c + 1)
        elif p.categorical:
            fig.update_xaxes(type="category", row=r + 1, col=c + 1)
        if c == 0:
            fig.update_yaxes(title_text=view.objective_label(0), row=r + 1, col=c + 1)
    _layout(fig, height=60 + 280 * rows)
    return fig


# Pipelines ------------------------------------------------------------------------------------
def _bins(trials: Sequence[Trial], k: int) -> list[list[Trial]]:
    """Consecutive trials in at most `k` bins (one trial each when there are few)."""
    if len(trials) <= k:
        return [[t] for t in trials]
    edges = np.linspace(0, len(trials), num=k + 1).round().astype(int)
    return [list(trials[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _bin_label(b: list[Trial]) -> str:
    return f"#{b[0].number}" if len(b) == 1 else f"#{b[0].number}-{b[-1].number}"


def _stage_trials(view: StudyView) -> list[Trial]:
    return [t for t in view.trials if t.state.finished and t.system_attrs.get(SystemAttr.STAGES)]


def stage_cost_figure(view: StudyView) -> go.Figure | None:
    """Each pipeline trial's cost split by the stages it ran (a stage the cache served costs
    what loading its output cost, usually nothing), with the cost the cache saved stacked on
    top, hatched: the whole bar is what the trial would have cost without the cache. Many
    trials: the mean over bins of consecutive ones."""
    import plotly.graph_objects as go

    trials = _stage_trials(view)
    if not trials:
        return None
    stages = view.stage_names()
    bins = _bins(trials, MAX_BARS)
    x = [b[0].number for b in bins]
    labels = [_bin_label(b) for b in bins]
    fig = go.Figure()
    for s, name in enumerate(stages):
        ys = []
        for b in bins:
            total = 0.0
            for t in b:
                for r in t.system_attrs.get(SystemAttr.STAGES) or []:
                    if r.get("name") == name:
                        total += numeric_value(r.get("cost")) or 0.0
            ys.append(total / len(b))
        fig.add_trace(
            go.Bar(
                x=x,
                y=ys,
                name=name,
                marker={"color": _STAGE_COLORS[s % len(_STAGE_COLORS)]},
                customdata=labels,
                hovertemplate=f"{_escape(name)}: %{{y:.3g}}<br>trial %{{customdata}}<extra></extra>",
            )
        )
    saved = [
        sum(numeric_value(t.system_attrs.get(SystemAttr.COST_SAVED)) or 0.0 for t in b) / len(b)
        for b in bins
    ]
    if any(saved):
        fig.add_trace(
            go.Bar(
                x=x,
                y=saved,
                name="saved by the cache",
                marker={
                    "color": "rgba(120,120,120,0.25)",
                    "line": {"color": "#777", "width": 0.5},
                    "pattern": {"shape": "/", "fgcolor": "#555"},
                },
                customdata=labels,
                hovertemplate="saved by the cache: %{y:.3g}<br>trial %{customdata}<extra></extra>",
            )
        )
    title = "trial number" + ("" if len(bins) == len(trials) else " (mean over consecutive trials)")
    _layout(fig, xaxis_title=title, yaxis_title="cost", barmode="stack", bargap=0.1)
    return fig


def cache_figure(view: StudyView) -> go.Figure | None:
    """How many leading stages the cache served for each trial (bars) and the cost the cache
    saved so far (line, right axis)."""
    import plotly.graph_objects as go

    trials = _stage_trials(view)
    if not trials:
        return None
    bins = _bins(trials, MAX_BARS)
    hits = [
        float(
            np.mean(
                [
                    sum(bool(r.get("cache_hit")) for r in t.system_attrs[SystemAttr.STAGES])
                    for t in b
                ]
            )
        )
        for b in bins
    ]
    saved, total = [], 0.0
    for b in bins:
        for t in b:
            total += numeric_value(t.system_attrs.get(SystemAttr.COST_SAVED)) or 0.0
        saved.append(total)
    x = [b[0].number for b in bins]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=x,
            y=hits,
            name="stages served from the cache",
            marker={"color": "#17becf"},
            customdata=[_bin_label(b) for b in bins],
            hovertemplate="trial %{customdata}: %{y:.2g} stages from the cache<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=saved,
            name="cost saved by the cache so far",
            yaxis="y2",
            mode="lines",
            line={"color": "#9467bd", "width": 2.5},
        )
    )
    n_stages = max(len(view.stage_names()), 1)
    _layout(fig, xaxis_title="trial number", yaxis_title="stages from the cache")
    fig.update_layout(
        yaxis={"range": [0, n_stages + 0.2], "dtick": 1},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "title": {"text": "cost saved"},
            "rangemode": "tozero",
        },
    )
    return fig


def budget_figure(view: StudyView) -> go.Figure | None:
    """Cost spent against trials, what it would have been without the cache, and each cost
    budget the study ran under."""
    import plotly.graph_objects as go

    if not _has_costs(view):
        return None
    finished = [t for t in view.trials if t.state.finished]
    if not finished:
        return None
    spent, without, s, w = [], [], 0.0, 0.0
    for t in finished:
        c = counted_cost(t)
        s += c
        w += c + (numeric_value(t.system_attrs.get(SystemAttr.COST_SAVED)) or 0.0)
        spent.append(s)
        without.append(w)
    idx = thin(len(finished), MAX_POINTS)
    x = [finished[i].number for i in idx]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x, y=[spent[i] for i in idx], name="cost spent", line={"color": "#1f77b4", "width": 3}
        )
    )
    if w > s:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[without[i] for i in idx],
                name="cost without the cache",
                line={"color": "#7f7f7f", "dash": "dot", "width": 2},
            )
        )
    budgets: dict[float, int] = {}
    for t in finished:
        b = numeric_value(t.system_attrs.get(SystemAttr.BUDGET))
        if b is not None:
            budgets.setdefault(b, t.number)
    for b, first in budgets.items():
        fig.add_hline(
            y=b,
            line={"color": "#d62728", "dash": "dash", "width": 1.5},
            annotation_text=f"budget {b:g} (from trial #{first})",
            annotation_position="top left",
        )
    _layout(fig, xaxis_title="trial number", yaxis_title="cost")
    return fig


# The page's figures, in order ------------------------------------------------------------------
def all_figures(
    importance: Callable[[StudyView, int], list[Importance]] | None = None,
) -> list[FigureSpec]:
    """The figures of a study page, in the order they are shown (`importance(view, objective)`
    computes the parameter importance, e.g. a cached one; default `param_importance`)."""
    return [
        FigureSpec(
            "history",
            "Best so far, by trial",
            "Each completed trial's objective and the best so far; trials that failed, were "
            "pruned or still run are marked along the bottom.",
            lambda v: best_so_far_figure(v, "number"),
            mo_title="Each objective, by trial",
            mo_caption="Each completed trial's value of every objective; red: the trials on "
            "the Pareto front (several objectives have no single best).",
        ),
        FigureSpec(
            "pareto",
            "Pareto front",
            "Completed trials in objective space; red: the Pareto front, the trials no other "
            "trial beats on every objective.",
            pareto_figure,
        ),
        FigureSpec(
            "intermediate",
            "Intermediate values",
            "What each trial reported step by step (its learning curve); grey: pruned trials, "
            "x where the pruner stopped them; green: the best trial.",
            intermediate_figure,
        ),
        FigureSpec(
            "lr-schedule",
            "Learning rate chosen by the LHOPT controller",
            "The learning rate the controller set over the training steps of each trial that "
            "recorded it (dotted: pruned trials; green: the best trial); x: the divergence "
            "guard restored a state and cut the rate tenfold.",
            lr_schedule_figure,
        ),
        FigureSpec(
            "history-time",
            "Best so far, by wall time",
            "The same against the wall time since the first trial started.",
            lambda v: best_so_far_figure(v, "elapsed"),
        ),
        FigureSpec(
            "history-cost",
            "Best so far, by cost spent",
            "The same against the cost spent so far, as a cost budget counts it.",
            lambda v: best_so_far_figure(v, "cost"),
        ),
        FigureSpec(
            "budget",
            "Cost budget",
            "Cost spent after each trial, what it would have been without the cache, and the "
            "budget of each optimize() call.",
            budget_figure,
        ),
        FigureSpec(
            "stage-cost",
            "Cost per stage",
            "Each trial's cost by the pipeline stages it ran; hatched on top: the cost the "
            "cache saved (what the stages it served cost when they ran).",
            stage_cost_figure,
        ),
        FigureSpec(
            "cache",
            "Cache hits",
            "Leading stages each trial took from the cache, and the cost the cache saved.",
            cache_figure,
        ),
        FigureSpec(
            "importance",
            "Parameter importance",
            "Permutation importance on a random forest fitted to parameters -> objective "
            "(scikit-learn): how much worse the forest predicts when a parameter is shuffled "
            "(several objectives: a bar for each).",
            lambda v: importance_figure(v, importance),
        ),
        FigureSpec(
            "parallel",
            "Parallel coordinates",
            "Each completed trial as a line through its parameter values to its objective.",
            parallel_figure,
        ),
        FigureSpec(
            "slice",
            "Slices",
            "The objective against each parameter on its own.",
            slice_figure,
        ),
        FigureSpec(
            "timeline",
            "Timeline",
            "Each trial from start to end, coloured by state.",
            timeline_figure,
        ),
    ]
