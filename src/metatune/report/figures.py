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
    "parallel_figure",
    "require_plotly",
    "slice_figure",
    "stage_cost_figure",
    "timeline_figure",
]

MAX_POINTS = 2000  # markers per figure before thinning
MAX_LINES = 1000  # polylines in a parallel-coordinates plot
MAX_BARS = 400  # bars per figure before consecutive trials are averaged in bins
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
    if t.value is not None:
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
def _param_axis(p: ParamInfo, values: list[Any]) -> dict[str, Any]:
    """A parallel-coordinates dimension for parameter `p` (categories as ticked codes)."""
    if p.categorical:
        choices = list(p.choices)
        for v in values:
            if v is not None and v not in choices:
                choices.append(v)
        codes = [choices.index(v) if v in choices else -1 for v in values]
        return {
            "label": p.name,
            "values": codes,
            "tickvals": list(range(len(choices))),
            "ticktext": [_short(c) for c in choices],
        }
    nums = [numeric_value(v) for v in values]
    if p.log and all(n is None or n > 0 for n in nums):
        shown = [math.log10(n) if n is not None else None for n in nums]
        return {"label": f"log10 {p.name}", "values": shown}
    return {"label": p.name, "values": nums}


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
    dims = [_param_axis(p, [t.params.get(p.name) for t in trials]) for p in params]
    values = [float(t.value) for t in trials]  # type: ignore[arg-type]
    dims.append({"label": "objective", "values": values})
    fig = go.Figure(
        go.Parcoords(
            line={
                "color": values,
                "colorscale": "Viridis",
                "reversescale": view.sign > 0,  # minimize: low values darkest
                "showscale": True,
                "colorbar": {"title": {"text": "objective"}},
            },
            dimensions=dims,
        )
    )
    _layout(fig, height=420)
    fig.update_layout(margin={"l": 80, "r": 60, "t": 60, "b": 30})
    return fig


def importance_figure(
    view: StudyView, importance: Callable[[StudyView], list[Importance]] | None = None
) -> go.Figure | None:
    """Permutation importance of each parameter on a random forest fitted to the trials
    (`importance` computes it; default `param_importance`)."""
    import plotly.graph_objects as go

    from metatune.report.importance import param_importance

    imp = (importance or param_importance)(view)
    if not imp:
        return None
    imp = list(reversed(imp))  # plotly draws the first bar at the bottom
    fig = go.Figure(
        go.Bar(
            x=[i.share for i in imp],
            y=[i.name for i in imp],
            orientation="h",
            marker={"color": "#4c78a8"},
            text=[f"{i.share:.0%}" for i in imp],
            textposition="auto",
            hovertext=[
                f"{_escape(i.name)}: {i.share:.1%} of the explained variation "
                f"(R^2 drop {i.mean:.3g} ± {i.std:.2g})"
                for i in imp
            ],
            hoverinfo="text",
        )
    )
    _layout(
        fig,
        height=max(220, 60 + 34 * len(imp)),
        xaxis_title="share of the forest's R² lost when the parameter is shuffled",
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
            fig.update_yaxes(title_text="objective", row=r + 1, col=c + 1)
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
    importance: Callable[[StudyView], list[Importance]] | None = None,
) -> list[FigureSpec]:
    """The figures of a study page, in the order they are shown (`importance` computes the
    parameter importance, e.g. a cached one; default `param_importance`)."""
    return [
        FigureSpec(
            "history",
            "Best so far, by trial",
            "Each completed trial's objective and the best so far; trials that failed, were "
            "pruned or still run are marked along the bottom.",
            lambda v: best_so_far_figure(v, "number"),
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
            "(scikit-learn): how much worse the forest predicts when a parameter is shuffled.",
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
