"""`metatune demo-svm`: an SVM (C, gamma, kernel) on scikit-learn's digits, tuned by k-fold CV
accuracy for a number of trials.

Shows a live progress bar, then the top trials and a best-so-far plot (PNG in the output
folder). Running it again resumes the same study; Ctrl-C keeps every finished trial.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from metatune.demos.common import (
    DEFAULT_DIR,
    DEFAULT_STORAGE,
    Output,
    check_optimizer,
    fail,
    interrupted,
    one_line,
    open_demo_storage,
    report_best,
    torch_threads_on_free_cores,
    write_best_so_far_plot,
)

__all__ = ["DEMO_STUDY", "DEMO_TRIALS", "SvmDemoOptions", "run_svm_demo"]

DEMO_STUDY = "svm-digits"
DEMO_TRIALS = 70


@dataclass(frozen=True)
class SvmDemoOptions:
    """The options of one `metatune demo-svm` call (see its --help)."""

    trials: int = DEMO_TRIALS  # trials of this call, added on resume
    storage: str | None = None  # None: sqlite:///<out>/metatune.db
    study: str | None = None  # None: svm-digits, suffixed when cv or max_samples change
    optimizer: str | None = None  # None: gp for a new study, the stored one on resume
    seed: int | None = None  # None: 0 for a new study; a resumed study keeps its own
    out: Path = Path(DEFAULT_DIR)
    cv: int = 5
    max_samples: int | None = None
    top: int = 10  # rows of the summary table


def _study_name(options: SvmDemoOptions) -> str:
    if options.study is not None:
        if not options.study.strip():
            raise typer.BadParameter("the study name must not be empty", param_hint="'--study'")
        return options.study
    study = DEMO_STUDY
    if options.cv != 5:
        study += f"-cv{options.cv}"
    if options.max_samples is not None:
        study += f"-n{options.max_samples}"
    return study


def run_svm_demo(options: SvmDemoOptions, output: Output) -> None:
    """Run (or resume) the SVM study for `options.trials` more trials and report it."""
    from metatune.benchmarks.sklearn_tasks import SVMDigits
    from metatune.report.tables import best_trial, format_value, rank_trials, trials_table
    from metatune.space import Space
    from metatune.study import Study
    from metatune.trial import TrialState

    optimizer, seed, cv, max_samples = (
        options.optimizer,
        options.seed,
        options.cv,
        options.max_samples,
    )
    check_optimizer(optimizer)
    if max_samples is not None and max_samples < 10 * cv:
        raise typer.BadParameter(
            f"{max_samples} is too small for {cv}-fold CV; use at least {10 * cv}",
            param_hint="'--max-samples'",
        )
    study = _study_name(options)
    out = options.out
    store, url, where = open_demo_storage(options.storage, out)
    try:
        task = SVMDigits(cv=cv, max_samples=max_samples, seed=0)
        config = {"cv": cv, "n_samples": len(task.y)}
        record = store.get_study(study)
        if record is not None:
            existing = store.get_trials(record.id)
            if record.direction != task.direction or Space.from_dict(record.space) != task.space:
                fail(
                    f"study {study!r} in {where} is not an SVM-digits demo study "
                    "(different space or direction); pass --study NAME for a new one"
                )
            ran = next((t.user_attrs for t in reversed(existing) if "cv" in t.user_attrs), None)
            if ran is not None and {k: ran.get(k) for k in config} != config:
                fail(
                    f"study {study!r} was run with cv={ran.get('cv')} on {ran.get('n_samples')} "
                    f"samples, not cv={cv} on {config['n_samples']}; pass --study NAME for a new one"
                )
            done = [t for t in existing if t.state is TrialState.COMPLETE]
            best = best_trial(existing, record.direction)
            best_txt = f", best {format_value(best.value)} (#{best.number})" if best else ""
            opt_txt = optimizer or record.optimizer
            output.note(
                f"Resuming study [bold]{escape(study)}[/] in {escape(where)}: {len(existing)} trials so far "
                f"({len(done)} complete){best_txt}; adding {options.trials} with optimizer {escape(opt_txt)}."
            )
            if seed is not None and seed != record.seed:
                output.note(
                    f"--seed {seed} ignored: a resumed study keeps its seed ({record.seed})."
                )
        else:
            output.note(
                f"New study [bold]{escape(study)}[/] in {escape(where)}: {options.trials} trials, "
                f"optimizer {escape(optimizer or 'gp')}, seed {0 if seed is None else seed}."
            )
        st = Study(
            task.space,
            direction=task.direction,
            optimizer=optimizer if record is not None else (optimizer or "gp"),
            storage=store,
            name=study,
            seed=0 if seed is None else seed,
        )
    except ValueError as exc:
        fail(one_line(str(exc)))
    output.note(
        f"Objective: {cv}-fold CV accuracy of sklearn SVC(C, gamma, kernel) on digits "
        f"({len(task.y)} samples), maximized."
    )

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        return {**task(params), **config}

    try:
        with torch_threads_on_free_cores():  # the GP's linear algebra runs in torch
            st.optimize(objective, n_trials=options.trials, show_progress=output.live)
    except KeyboardInterrupt:
        interrupted(st, where)

    all_trials = st.trials
    n_failed = sum(t.state is TrialState.FAILED for t in all_trials)
    ranked = [t for t in rank_trials(all_trials, st.direction) if t.state is TrialState.COMPLETE]
    top = options.top
    console = output.results()
    console.print(
        trials_table(
            ranked[:top],
            st.direction,
            title=(
                f"{study}: top {min(top, len(ranked))} of {len(all_trials)} trials"
                + (f" ({n_failed} failed)" if n_failed else "")
            ),
        )
    )
    report_best(console, best_trial(all_trials, st.direction), "accuracy")
    write_best_so_far_plot(
        console,
        all_trials,
        out,
        study,
        st.direction,
        title=f"{study}: SVC on digits, {cv}-fold CV accuracy",
        ylabel="CV accuracy",
    )
    storage_arg = "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(where)}"
    output.note(
        escape(
            "Run the same command again to add trials to this study; inspect it with "
            f"'metatune trials{storage_arg} --study {shlex.quote(study)}'."
        )
    )
