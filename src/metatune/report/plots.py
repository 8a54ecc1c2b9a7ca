"""Static plots (matplotlib, Agg: no display needed) of a study's progress.

Built on `matplotlib.figure.Figure` rather than pyplot, so plotting never touches global
backend state and works in threads, servers and test runs alike.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metatune.direction import Direction
from metatune.trial import SystemAttr, Trial, TrialState, counted_cost

__all__ = ["best_so_far", "plot_best_so_far"]


def best_so_far(trials: Sequence[Trial], direction: str) -> list[tuple[int, float]]:
    """(trial number, best value among completed trials up to it), for each completed trial."""
    sign = Direction.parse(direction).sign
    out: list[tuple[int, float]] = []
    best = math.inf
    for t in sorted(trials, key=lambda t: t.number):
        if t.state is TrialState.COMPLETE and t.value is not None:
            best = min(best, sign * float(t.value))
            out.append((t.number, sign * best))
    return out


def _resolve(study_or_trials: Any, direction: str | None) -> tuple[list[Trial], str, str | None]:
    """Trials, direction and a default title from a Study or a sequence of trials."""
    if hasattr(study_or_trials, "trials") and hasattr(study_or_trials, "direction"):
        study = study_or_trials
        return list(study.trials), direction or study.direction, getattr(study, "name", None)
    trials = list(study_or_trials)
    if not all(isinstance(t, Trial) for t in trials):
        raise TypeError("study_or_trials must be a Study or a sequence of Trial")
    return trials, direction or "minimize", None


def _focus_range(
    values: Sequence[float], sign: float, force: bool = False
) -> tuple[float, float] | None:
    """Y-limits around the better half of `values` when the worse half would squash it."""
    if len(values) < (2 if force else 6):
        return None
    ordered = sorted(values, key=lambda v: sign * v)  # best first
    better = ordered[: (len(ordered) + 1) // 2]
    lo, hi = min(better), max(better)
    full = max(values) - min(values)
    span = hi - lo
    if full == 0 or (span > full / 4 and not force):
        return None
    pad = 0.12 * span if span > 0 else 0.05 * (abs(hi) or 1.0)
    return lo - pad, hi + pad


def _positions(trials: Sequence[Trial], x: str) -> dict[int, float]:
    """Where each trial goes on the x-axis: its number, or the cost spent up to its end."""
    if x == "number":
        return {t.number: float(t.number) for t in trials}
    out, spent = {}, 0.0
    for t in sorted(trials, key=lambda t: t.number):
        spent += counted_cost(t)
        out[t.number] = spent
    return out


def plot_best_so_far(
    study_or_trials: Any,
    path: str | os.PathLike[str],
    direction: str | None = None,
    *,
    title: str | None = None,
    ylabel: str = "objective",
    log_y: bool = False,
    ylim: tuple[float, float] | None = None,
    focus: bool | None = None,
    dpi: int = 120,
    x: str = "number",
    xlabel: str | None = None,
) -> Path:
    """Save a PNG (or any format matplotlib knows from the suffix) of a study's progress.

    Each completed trial is a dot at its value, the best value so far a step line, the best
    trial a star, and failed trials red crosses along the worse edge. `direction` defaults to
    the study's (or "minimize" for a bare list of trials). With `focus` the y-axis shows the
    better half of the trials, and worse ones become markers on the edge; by default it is on
    when the worse half would squash the rest (e.g. accuracies of 0.1 beside 0.99), unless
    `ylim` or `log_y` is given. `x="cost"` puts each finished trial at the cost spent when it
    finished (its own included; what a budget counts) instead of at its number, and marks the
    trials that reused a cached prefix. Returns the path written.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    if x not in ("number", "cost"):
        raise ValueError(f"x must be 'number' or 'cost', got {x!r}")
    trials, direction, name = _resolve(study_or_trials, direction)
    if x == "cost":
        trials = [t for t in trials if t.state.finished]
    at = _positions(trials, x)
    sign = Direction.parse(direction).sign
    path = Path(path)
    done = [t for t in trials if t.state is TrialState.COMPLETE and t.value is not None]
    failed = [t for t in trials if t.state is TrialState.FAILED]
    values = [float(t.value) for t in done]  # type: ignore[arg-type]

    view = ylim
    if view is None and not log_y and focus is not False:
        view = _focus_range(values, sign, force=bool(focus))
    worse_edge = 0.03 if sign < 0 else 0.97  # axes fraction on the "worse" side

    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    if done:
        inside = done
        outside: list[Trial] = []
        if view is not None:
            lo, hi = min(view), max(view)
            inside = [t for t in done if lo <= float(t.value) <= hi]  # type: ignore[arg-type]
            outside = [t for t in done if t not in inside]
        ax.scatter(
            [at[t.number] for t in inside],
            [t.value for t in inside],
            s=24,
            color="tab:blue",
            alpha=0.6,
            label=f"completed trial ({len(inside)})",
            zorder=2,
        )
        if outside:
            bound = min(view) if sign < 0 else max(view)  # type: ignore[type-var]
            ax.scatter(
                [at[t.number] for t in outside],
                [worse_edge] * len(outside),
                marker="v" if sign < 0 else "^",
                s=28,
                facecolor="none",
                edgecolor="tab:blue",
                alpha=0.8,
                transform=edge,
                clip_on=False,
                label=f"{'below' if sign < 0 else 'above'} {bound:.4g} ({len(outside)})",
                zorder=2,
            )
        reused = [t for t in inside if (t.system_attrs or {}).get(SystemAttr.CACHE_DEPTH, 0) or 0]
        if x == "cost" and reused:
            ax.scatter(
                [at[t.number] for t in reused],
                [t.value for t in reused],
                s=70,
                facecolor="none",
                edgecolor="tab:green",
                linewidth=1.2,
                label=f"reused a cached prefix ({len(reused)})",
                zorder=3,
            )
        curve = best_so_far(done, direction)
        last = max(at.values())
        xs = [at[n] for n, _ in curve] + [last]
        ys = [v for _, v in curve] + [curve[-1][1]]
        ax.step(xs, ys, where="post", color="tab:orange", lw=2, label="best so far", zorder=3)
        best = Direction.parse(direction).best_first(done)[0]
        ax.scatter(
            [at[best.number]],
            [best.value],
            marker="*",
            s=220,
            color="tab:orange",
            edgecolor="black",
            linewidth=0.8,
            zorder=4,
            label=f"best: #{best.number} = {best.value:.6g}",
        )
    else:
        ax.text(
            0.5, 0.5, "no completed trial yet", ha="center", va="center", transform=ax.transAxes
        )
    if failed:
        # Failed trials have no value: mark them on the worse edge, at their trial number.
        ax.scatter(
            [at[t.number] for t in failed],
            [worse_edge] * len(failed),
            marker="x",
            s=40,
            color="tab:red",
            transform=edge,
            clip_on=False,
            label=f"failed trial ({len(failed)})",
            zorder=4,
        )
    if log_y:
        ax.set_yscale("log")
    if view is not None:
        ax.set_ylim(*view)
    if trials:
        numbers = list(at.values())
        pad = max(0.5 if x == "number" else 0.0, 0.02 * (max(numbers) - min(numbers)))
        ax.set_xlim(min(numbers) - pad, max(numbers) + pad)
    if x == "number":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel or ("trial number" if x == "number" else "cost spent"))
    ax.set_ylabel(f"{ylabel} ({'higher' if sign < 0 else 'lower'} is better)")
    if title is None:
        title = f"{name}: best so far" if name else "Best so far"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if done or failed:
        ax.legend(loc="best", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
