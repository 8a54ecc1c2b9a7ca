"""A study as one self-contained HTML file: Plotly's JavaScript is embedded, so the report opens
offline and can be mailed or archived as it is.

``write_report(study_or_trials, "report.html")`` (or ``metatune report``) writes it: a summary
table, the best trials (a multi-objective study: its Pareto front), the failed and pruned ones
with their errors or last reports, and the figures of `metatune.report.figures` (best so far
against trials, wall time and cost; a Pareto front; learning curves and the LHOPT controller's
learning rate when trials recorded them; for pipelines the cost per stage, cache hits and the
budget curve; parameter importance, parallel coordinates, slices and a timeline).
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metatune.report.data import StudyView, numeric_value
from metatune.report.figures import all_figures, require_plotly
from metatune.trial import SystemAttr, Trial, TrialState

__all__ = ["render_report", "summary_rows", "write_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #f6f7f9; }
header { background: #1f2937; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #cbd5e1; font-size: 13px; }
main { padding: 16px 32px 40px; max-width: 1280px; }
section { background: #fff; border-radius: 8px; padding: 14px 18px; margin: 14px 0;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section h2 { font-size: 17px; margin: 0 0 4px; }
p.caption { color: #555; font-size: 13px; margin: 0 0 6px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left;
         vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 14px; }
.state-complete { color: #1f77b4; } .state-failed { color: #d62728; }
.state-running { color: #ff7f0e; } .state-pruned { color: #7f7f7f; }
.empty { color: #555; font-style: italic; }
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _esc(v: Any) -> str:
    return html.escape(_fmt(v), quote=True)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def summary_rows(view: StudyView) -> list[tuple[str, str]]:
    """(label, text) rows of the summary table: counts by state, the best trial, time, cost and
    what the cache saved."""
    counts = view.counts()
    rows = [
        ("study", view.name or "(unnamed)"),
        (
            ("directions", ", ".join(view.directions))
            if view.directions
            else ("direction", view.direction)
        ),
    ]
    if view.optimizer:
        rows.append(("optimizer", view.optimizer))
    states = ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "pruned")
    rows.append(("trials", f"{len(view.trials)} ({states})"))
    best = view.best()
    if view.constraints:
        rows.append(("constraints", ", ".join(str(c) for c in view.constraints)))
    if view.is_multi_objective:
        front = view.pareto()
        if front:
            numbers = ", ".join(f"#{t.number}" for t in front[:20])
            more = "" if len(front) <= 20 else f" and {len(front) - 20} more"
            rows.append(("Pareto front", f"{len(front)} trials ({numbers}{more})"))
    elif best is not None:
        rows.append(("best value", f"{_fmt(best.value)} (trial #{best.number})"))
        rows.append(("best parameters", _params_text(best.params)))
    curves = [t for t in view.trials if t.intermediate_values]
    if curves:
        pruned = [t for t in curves if t.state is TrialState.PRUNED]
        longest = max(t.last_step for t in curves)  # type: ignore[type-var]
        text = f"{len(curves)} trials reported intermediate values (up to step {longest})"
        if pruned:
            mean = sum(t.last_step for t in pruned) / len(pruned)  # type: ignore[misc]
            text += f"; {len(pruned)} pruned, at step {mean:.1f} on average"
        rows.append(("learning curves", text))
    if view.trials:
        start = min(t.started_at for t in view.trials)
        ends = [t.finished_at for t in view.trials if t.finished_at is not None]
        rows.append(("first trial started", _utc(start)))
        if ends:
            rows.append(("last trial finished", _utc(max(ends))))
            rows.append(("wall time", _duration((max(ends) - start).total_seconds())))
    if view.is_pipeline:
        stages = view.stage_names()
        finished = [t for t in view.trials if t.state.finished]
        cost = sum(numeric_value(t.system_attrs.get(SystemAttr.COST)) or 0.0 for t in finished)
        saved = sum(
            numeric_value(t.system_attrs.get(SystemAttr.COST_SAVED)) or 0.0 for t in finished
        )
        secs = sum(
            numeric_value(t.system_attrs.get(SystemAttr.SECONDS_SAVED)) or 0.0 for t in finished
        )
        runs = [r for t in finished for r in t.system_attrs.get(SystemAttr.STAGES) or []]
        hits = sum(bool(r.get("cache_hit")) for r in runs)
        reused = sum(
            any(r.get("cache_hit") for r in t.system_attrs.get(SystemAttr.STAGES) or [])
            for t in finished
        )
        budget = next(
            (
                t.system_attrs[SystemAttr.BUDGET]
                for t in reversed(finished)
                if t.system_attrs.get(SystemAttr.BUDGET) is not None
            ),
            None,
        )
        rows.append(("pipeline stages", " -> ".join(stages)))
        rows.append(
            ("cost spent", _fmt(cost) + (f" of a budget of {_fmt(budget)}" if budget else ""))
        )
        rows.append(
            (
                "cache",
                f"{hits} of {len(runs)} stage runs served from the cache; {reused} trials reused "
                f"a cached prefix; cost saved {_fmt(saved)}, {_duration(secs)} of wall time saved",
            )
        )
    return rows


def _utc(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _table(
    header: Sequence[str] | None, rows: Sequence[Sequence[str]], num: Sequence[int] = ()
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header or ())
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


def _state(t: Trial) -> str:
    s = t.state.value
    return f'<span class="state-{html.escape(s)}">{html.escape(s)}</span>'


def _best_table(view: StudyView, n: int = 10) -> str:
    if view.is_multi_objective:
        return _front_table(view)
    ranked = sorted(view.completed(), key=lambda t: view.sign * float(t.value))[:n]  # type: ignore[arg-type]
    if not ranked:
        return '<p class="empty">No completed trial yet.</p>'
    pipeline = view.is_pipeline
    curves = view.has_intermediate()
    header = ["#", "value", "parameters", "duration"]
    header += ["cost", "cached stages"] if pipeline else []
    header += ["last step"] if curves else []
    rows = []
    for t in ranked:
        row = [_esc(t.number), _esc(t.value), _esc(_params_text(t.params)), _esc(_dur(t))]
        if pipeline:
            row += [_esc(t.cost), _esc(t.system_attrs.get(SystemAttr.CACHE_DEPTH))]
        if curves:
            row.append(_esc(t.last_step))
        rows.append(row)
    return _table(header, rows, num=tuple(i for i, h in enumerate(header) if h != "parameters"))


def _front_table(view: StudyView, n: int = 50) -> str:
    """The Pareto front of a multi-objective study, one column per objective."""
    front = sorted(view.pareto(), key=lambda t: view.sign * view.values_of(t)[0])  # type: ignore[index]
    if not front:
        return '<p class="empty">No completed trial yet.</p>'
    k = view.n_objectives
    header = ["#", *[view.objective_label(j) for j in range(k)], "parameters", "duration"]
    rows = [
        [
            _esc(t.number),
            *[_esc(v) for v in view.values_of(t)],  # type: ignore[union-attr]
            _esc(_params_text(t.params)),
            _esc(_dur(t)),
        ]
        for t in front[:n]
    ]
    note = "" if len(front) <= n else f"<p class='caption'>The first {n} of {len(front)}.</p>"
    return note + _table(header, rows, num=(0, *range(1, k + 1), k + 2))


def _dur(t: Trial) -> str | None:
    d = t.duration
    return None if d is None else _duration(d)


def _unfinished_table(view: StudyView, n: int = 20) -> str:
    bad = [t for t in view.trials if t.state is not TrialState.COMPLETE]
    if not bad:
        return '<p class="empty">Every trial completed.</p>'
    shown = bad[-n:]
    rows = [
        [
            _esc(t.number),
            _state(t),
            _esc(_stopped(t)),
            _esc(_params_text(t.params)),
        ]
        for t in shown
    ]
    note = "" if len(shown) == len(bad) else f"<p class='caption'>The last {n} of {len(bad)}.</p>"
    return note + _table(["#", "state", "error or last report", "parameters"], rows, num=(0,))


def _stopped(t: Trial) -> str:
    """Why a trial did not complete: its error's first line, or where a pruner stopped it."""
    error = (t.error or "").strip()
    if error:
        return error.splitlines()[0][:300]
    last = t.last_step
    if last is not None:
        verb = "pruned" if t.state is TrialState.PRUNED else "last report"
        return f"{verb} at step {last} ({_fmt(t.intermediate_values[last])})"
    return ""


def render_report(
    study_or_trials: Any,
    *,
    direction: str | None = None,
    title: str | None = None,
    plotly_js: str | None = None,
) -> str:
    """The report's HTML text. `plotly_js` is the library's source to embed (default: the
    installed plotly's own bundle)."""
    require_plotly()
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    view = StudyView.from_any(study_or_trials, direction)
    name = view.name or "study"
    heading = title or f"metatune report: {name}"
    sections = []
    summary = _table(None, [[html.escape(a), html.escape(b)] for a, b in summary_rows(view)])
    sections.append(f"<section id='summary'><h2>Summary</h2>{summary}</section>")
    if not view.trials:
        sections.append(
            "<section id='no-trials'><h2>No trials yet</h2><p class='empty'>This study has no "
            "trials; run it and write the report again.</p></section>"
        )
    figures = []
    config = {"displaylogo": False, "responsive": True}
    for spec in all_figures():
        fig = spec.build(view)
        if fig is None:
            continue
        div = pio.to_html(
            fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{spec.key}", config=config
        )
        figures.append(
            f"<section id='{spec.key}'><h2>{html.escape(spec.title_for(view))}</h2>"
            f"<p class='caption'>{html.escape(spec.caption_for(view))}</p>{div}</section>"
        )
    sections.extend(figures)
    if view.trials:
        best_title = "Pareto front" if view.is_multi_objective else "Best trials"
        sections.append(f"<section id='best'><h2>{best_title}</h2>{_best_table(view)}</section>")
        sections.append(
            "<section id='unfinished'><h2>Failed, pruned and running trials</h2>"
            f"{_unfinished_table(view)}</section>"
        )
    js = plotly_js if plotly_js is not None else get_plotlyjs()
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(heading)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{_CSS}</style><script type='text/javascript'>{js}</script></head><body>"
        f"<header><h1>{html.escape(heading)}</h1><p>{len(view.trials)} trials, "
        f"{html.escape(', '.join(view.directions or [view.direction]))}; written {made} by metatune</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )


def write_report(
    study_or_trials: Any,
    path: str | os.PathLike[str],
    *,
    direction: str | None = None,
    title: str | None = None,
) -> Path:
    """Write the HTML report of a `Study`, a `StudyView` or a sequence of `Trial` to `path`
    (its folder is created; the file is replaced whole, never left half-written)."""
    text = render_report(study_or_trials, direction=direction, title=title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return out
