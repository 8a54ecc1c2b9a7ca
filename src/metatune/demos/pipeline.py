"""`metatune demo`: EEIPU (or another optimizer) on a cached multi-stage ML pipeline, on a cost
budget in stage seconds.

Stage outputs are cached in ``<out>/cache``, so a candidate that shares earlier stages with a
previous one only runs the rest. Each trial prints which stages ran and which came from the
cache; the end shows candidates, cache hits, seconds saved, the best configuration and a plot.
Running it again resumes the study with a new budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from metatune.demos.common import (
    DEFAULT_DIR,
    Output,
    check_optimizer,
    fail,
    interrupted,
    one_line,
    open_demo_storage,
    report_best,
    torch_threads_on_free_cores,
    write_best_so_far_plot,
    write_html_report,
)
from metatune.trial import SystemAttr

__all__ = ["PIPELINES", "PipelineDemoOptions", "run_pipeline_demo"]

PIPELINES = ("vision", "stacking")  # of metatune.benchmarks.ml_pipelines.ML_PIPELINES


@dataclass(frozen=True)
class PipelineDemoOptions:
    """The options of one `metatune demo` call (see its --help)."""

    budget: float = 100.0  # stage seconds of this call, on top of what the study spent
    pipeline: str = "vision"
    optimizer: str | None = None  # None: eeipu
    storage: str | None = None  # None: sqlite:///<out>/metatune.db
    study: str | None = None  # None: <pipeline>-<optimizer>
    seed: int = 0
    out: Path = Path(DEFAULT_DIR)


def run_pipeline_demo(
    options: PipelineDemoOptions,
    output: Output,
    *,
    stage_clock: Callable[[], float] | None = None,
) -> None:
    """Run (or resume) the demo study for `options.budget` more stage seconds and report it.

    `stage_clock` charges every stage its reading after the stage minus before instead of its
    wall seconds (a simulated clock makes the number of trials a budget buys independent of the
    machine, for tests); None measures wall seconds.
    """
    from metatune.benchmarks.ml_pipelines import ML_PIPELINES, with_stage_clock
    from metatune.pipeline import summarize
    from metatune.report.tables import best_trial
    from metatune.study import Study
    from metatune.trial import TrialState

    if options.pipeline not in PIPELINES:
        raise typer.BadParameter(
            f"{options.pipeline!r} is not one of {', '.join(map(repr, PIPELINES))}",
            param_hint="'--pipeline'",
        )
    optimizer = options.optimizer or "eeipu"
    check_optimizer(optimizer)
    study = options.study or f"{options.pipeline}-{optimizer}"
    out = options.out
    store, _, where = open_demo_storage(options.storage, out)
    pipe = ML_PIPELINES[options.pipeline](cache=out / "cache")
    if stage_clock is not None:
        pipe = with_stage_clock(pipe, stage_clock)
    try:
        st = Study(pipe, optimizer=optimizer, storage=store, name=study, seed=options.seed)
    except ValueError as exc:
        fail(one_line(str(exc)))
    spent_before = st.cost_spent
    total = spent_before + options.budget
    output.note(
        f"Study [bold]{escape(study)}[/] in {escape(where)}: pipeline {options.pipeline} "
        f"({' -> '.join(pipe.stage_names)}), optimizer {escape(st.optimizer.name)}, "
        f"budget {options.budget:g} s of stage time (the tuner's own time comes on top)"
        + (f" (after {spent_before:.0f} s already spent)" if spent_before else "")
        + f"; cache in {escape(str(out / 'cache'))}."
    )
    err = output.progress()
    show = output.live
    best_value = [math.inf]

    def report(s: Study, t: Any) -> None:
        if not show:
            return
        marks = " ".join(
            f"[cyan]{escape(r['name'])}:cache[/]"
            if r.get("cache_hit")
            else f"{escape(r['name'])}:ran"
            for r in t.system_attrs.get(SystemAttr.STAGES, [])
        )
        if t.state is TrialState.COMPLETE and t.value is not None:
            best_value[0] = min(best_value[0], t.value)
            outcome = f"loss {t.value:.4f} (best {best_value[0]:.4f})"
        else:
            outcome = f"[red]failed[/]: {escape((t.error or '').splitlines()[0][:60])}"
        cost = float(t.system_attrs.get(SystemAttr.COST, 0.0))
        err.print(
            f"#{t.number:<4} {marks}  {cost:6.2f} s  {outcome}  [dim]{s.cost_spent:.0f}/{total:.0f} s[/]"
        )

    started = time.monotonic()
    try:
        with torch_threads_on_free_cores():
            st.optimize(pipe, budget=total, callbacks=[report], show_progress=False)
    except KeyboardInterrupt:
        interrupted(st, where)
    wall = time.monotonic() - started

    trials = st.trials
    summary = summarize(trials)
    console = output.results()
    console.print(
        f"{summary['candidates']} candidates in {summary['cost_spent']:.0f} s of stage time "
        f"({summary['completed']} completed, {summary['failed']} failed); "
        f"{summary['trials_with_cache_hits']} reused a cached prefix, "
        f"{summary['stage_cache_hits']} stage runs served from the cache, "
        f"{summary['seconds_saved']:.0f} s saved; {wall:.0f} s of wall time with the tuner's own."
    )
    best = best_trial(trials, st.direction)
    acc = best.user_attrs.get("accuracy") if best is not None else None
    acc_txt = f", accuracy {acc:.4f}" if isinstance(acc, (int, float)) else ""
    report_best(console, best, "validation loss", acc_txt)
    write_best_so_far_plot(
        console,
        trials,
        out,
        study,
        st.direction,
        title=f"{study}: {options.pipeline} pipeline",
        ylabel="validation loss",
        x="cost",
        xlabel="stage seconds spent",
    )
    write_html_report(console, st, out, study)
